// The webhook page: show the test delivery's result.
document.addEventListener("api:done", (event) => {
  if (event.target.id !== "test-hook") return;
  const r = event.detail, box = document.getElementById("test-result");
  box.hidden = false;
  box.className = `banner ${r.ok ? "ok" : "bad"}`;
  box.textContent = r.ok ? `The receiver answered ${r.status_code} in ${r.latency_ms} ms.` : `Test failed: ${r.error ?? r.status_code}`;
});

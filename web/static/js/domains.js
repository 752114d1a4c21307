// The domain page: show each record's verification result in place, and the verdict.
document.addEventListener("api:done", (event) => {
  if (event.target.id !== "verify") return;
  const result = event.detail;
  const message = document.getElementById("verify-message");
  message.hidden = false;
  message.className = `banner ${result.verified ? "ok" : "bad"}`;
  message.textContent = result.message;
  for (const check of result.records) {
    const row = document.querySelector(
      `#records [data-type="${check.type}"][data-host="${CSS.escape(check.host)}"][data-pending="${check.pending}"]`);
    if (!row) continue;
    const cell = row.querySelector(".check");
    cell.replaceChildren();
    const badge = document.createElement("span");
    badge.className = `badge ${check.status}`;
    badge.textContent = check.status;
    cell.append(badge);
    const why = row.querySelector(".reason");
    why.textContent = check.reason ?? "";
    why.hidden = !check.reason;
  }
  const status = document.getElementById("domain-status");
  if (result.can_send) status.innerHTML = '<span class="badge ok">verified</span> Mail can be sent from this domain.';
});

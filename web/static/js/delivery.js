// IP pools & relays: edit dialogs, and the relay test's steps with the failing one marked.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-open]");
  if (opener) document.querySelector(opener.dataset.open)?.showModal();
  const closer = event.target.closest("dialog [data-close]");
  if (closer) closer.closest("dialog").close();
});

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text ?? "";
  row.append(td);
  return td;
}

function showRelayTest(result) {
  const box = document.getElementById("relay-test-result");
  if (!box) return;
  box.hidden = false;
  const message = document.getElementById("relay-test-message");
  message.className = `banner ${result.ok ? "ok" : "bad"}`;
  message.textContent = result.message;
  const body = document.querySelector("#relay-test-steps tbody");
  body.replaceChildren();
  for (const step of result.steps) {
    const row = document.createElement("tr");
    row.dataset.step = step.step;
    const failed = !step.ok;
    if (failed) { row.className = "failed"; row.setAttribute("aria-current", "step"); }
    const name = cell(row, step.step.toUpperCase(), "nowrap");
    name.style.fontWeight = "600";
    const badge = document.createElement("span");
    badge.className = `badge ${step.ok ? "ok" : "bad"}`;
    badge.textContent = step.ok ? "ok" : "failed";
    cell(row, "").append(badge);
    cell(row, step.reply ?? "", "mono");
    cell(row, step.detail, "hide-narrow");
    cell(row, `${step.elapsed_ms} ms`, "hide-narrow nowrap");
    body.append(row);
  }
  box.scrollIntoView({ block: "nearest" });
  message.focus?.();
}

document.addEventListener("api:done", (event) => {
  const source = event.target;
  if (source.id === "relay-test-form" || source.dataset?.relayTest !== undefined) showRelayTest(event.detail);
});

// The domain page: show each record's verification result in place, and the verdict.
import { ApiError, showErrors } from "/admin/static/js/api.js";

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

// "Send a test message": a SendGrid v3 body through /v3/mail/send, then the message's page.

const testForm = document.getElementById("test-send-form");
testForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = new FormData(testForm);
  const body = {
    personalizations: [{ to: [{ email: f.get("to") }] }],
    from: { email: testForm.dataset.from },
    subject: f.get("subject"),
    content: [{ type: "text/plain", value: f.get("text") }],
  };
  const button = testForm.querySelector("[type=submit]");
  button.disabled = true;
  testForm.querySelectorAll(".field-error").forEach((e) => e.remove());
  try {
    const response = await fetch("/v3/mail/send", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new ApiError(response.status, data.errors ?? [{ message: `HTTP ${response.status}` }]);
    }
    location.assign(`/admin/messages?x_message_id=${encodeURIComponent(response.headers.get("X-Message-Id"))}`);
  } catch (error) {
    // The API names SendGrid's fields; show them at this form's fields.
    for (const e of error.errors ?? []) {
      if (e.field?.startsWith("personalizations")) e.field = "to";
      else if (e.field?.startsWith("content")) e.field = "text";
    }
    showErrors(testForm, error);
  } finally {
    button.disabled = false;
  }
});

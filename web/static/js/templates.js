// The template page: show a preview's rendered subject, HTML (in a sandboxed iframe: no
// scripts, no access to this page) and plain text.
document.addEventListener("api:done", (event) => {
  if (event.target.id !== "preview-form") return;
  const result = event.detail;
  const box = document.getElementById("preview");
  box.hidden = false;
  document.getElementById("preview-subject").textContent = result.subject || "(empty)";
  const frame = document.getElementById("preview-html");
  frame.srcdoc = result.html_content || "<p style='font-family:sans-serif;color:#5b6470'>(no HTML part)</p>";
  document.getElementById("preview-text").textContent = result.plain_content || "(no plain text part)";
  box.scrollIntoView({ block: "nearest" });
});

// A new preview replaces the last one: hide it while the request runs (or fails).
document.addEventListener("submit", (event) => {
  if (event.target.id === "preview-form") document.getElementById("preview").hidden = true;
}, true);

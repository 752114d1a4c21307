// The key form: the access preset decides the scopes sent (custom shows the checkboxes).
const form = document.getElementById("create-key");
if (form) {
  const picker = document.getElementById("scope-picker");
  const sync = () => {
    const preset = form.querySelector("input[name=preset]:checked")?.value;
    picker.hidden = preset !== "custom";
    for (const box of picker.querySelectorAll("input[name=scopes]")) {
      box.disabled = preset === "full";
      if (preset === "mail.send") box.checked = box.value === "mail.send";
    }
  };
  form.addEventListener("change", sync);
  sync();
  // "full" sends no scopes at all: the API then grants every scope the caller holds.
  form.addEventListener("submit", () => {
    for (const radio of form.querySelectorAll("input[name=preset]")) radio.disabled = true;
    setTimeout(() => { for (const radio of form.querySelectorAll("input[name=preset]")) radio.disabled = false; });
  }, true);
}

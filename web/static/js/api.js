// Postyard admin UI: every change goes through the JSON API with the session cookie.
//
// <form data-api="POST /api/admin/domains" data-done="reload"> sends its fields as JSON
// (checkbox groups with data-list become arrays, type=number becomes a number,
// data-json textareas are parsed, empty fields marked data-optional are left out,
// "a.b" names nest). <button data-api="DELETE /v3/api_keys/x" data-confirm="…"> sends
// no body. On success: data-done="reload" | "go:/admin/x/{id}" | "show" (the form's
// [data-result] element gets the JSON, [data-field=name] children get its fields);
// an "api:done" event carries the JSON for page scripts. Errors in SendGrid's shape
// are shown at the field they name, or in the form's [role=alert] box.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => e.message).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

export async function api(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { raw: text }; }
  if (!response.ok) {
    const errors = data?.errors ?? [{ message: `HTTP ${response.status}`, field: null, help: null }];
    throw new ApiError(response.status, errors);
  }
  return data;
}

function setPath(target, name, value) {
  const parts = name.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] ??= {};
  node[parts.at(-1)] = value;
}

export function formBody(form) {
  const body = {};
  const lists = new Set();
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit" || el.name === "csrf_token") continue;
    if (el.dataset.list !== undefined) {
      if (!lists.has(el.name)) { lists.add(el.name); setPath(body, el.name, []); }
      if (el.checked) getPath(body, el.name).push(el.value);
      continue;
    }
    let value;
    if (el.type === "checkbox") value = el.checked;
    else if (el.type === "radio") { if (!el.checked) continue; value = el.value; }
    else if (el.value === "" && el.dataset.optional !== undefined) continue;
    else if (el.type === "number") value = el.value === "" ? null : Number(el.value);
    else if (el.dataset.json !== undefined) {
      try { value = el.value.trim() ? JSON.parse(el.value) : {}; }
      catch (e) { throw new ApiError(400, [{ message: `not valid JSON: ${e.message}`, field: el.name, help: null }]); }
    } else if (el.dataset.split !== undefined) value = el.value.split(/[\s,]+/).filter(Boolean);
    else value = el.value;
    setPath(body, el.name, value);
  }
  return body;
}

function getPath(obj, name) {
  return name.split(".").reduce((node, part) => node?.[part], obj);
}

function clearErrors(root) {
  root.querySelectorAll(".field-error").forEach((el) => el.remove());
  root.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  const box = root.querySelector("[role=alert].form-errors");
  if (box) box.textContent = "";
  const page = document.querySelector("#page-errors");
  if (page) { page.textContent = ""; page.hidden = true; }
}

export function showErrors(root, error) {
  const box = (root.tagName === "FORM" && root.querySelector("[role=alert].form-errors")) || document.querySelector("#page-errors");
  const general = [];
  for (const e of error.errors ?? [{ message: String(error.message) }]) {
    const text = e.help ? `${e.message} — ${e.help}` : e.message;
    const field = e.field && root.querySelector?.(`[name="${CSS.escape(e.field)}"], [data-field-for="${CSS.escape(e.field)}"]`);
    if (field) {
      field.setAttribute("aria-invalid", "true");
      const p = document.createElement("p");
      p.className = "field-error";
      p.id = `err-${Math.random().toString(36).slice(2)}`;
      p.textContent = text;
      field.setAttribute("aria-describedby", p.id);
      (field.closest("fieldset, .field") ?? field).after(p);
    } else {
      general.push(e.field ? `${e.field}: ${text}` : text);
    }
  }
  if (general.length) {
    if (box) { box.textContent = general.join("\n"); box.hidden = false; box.focus?.(); }
    else alert(general.join("\n"));
  }
}

function fill(root, data) {
  const target = root.querySelector("[data-result]") ?? document.querySelector(root.dataset.resultIn ?? "#result");
  if (!target) return;
  target.hidden = false;
  for (const el of target.querySelectorAll("[data-field]")) {
    const value = getPath(data, el.dataset.field);
    el.textContent = typeof value === "object" ? JSON.stringify(value, null, 2) : String(value ?? "");
  }
  target.querySelector("[data-focus]")?.focus();
}

function done(root, data) {
  root.dispatchEvent(new CustomEvent("api:done", { detail: data, bubbles: true }));
  const how = root.dataset.done ?? "reload";
  if (how === "reload") location.reload();
  else if (how.startsWith("go:")) location.assign(how.slice(3).replace(/\{([\w.]+)\}/g, (_, k) => encodeURIComponent(getPath(data, k) ?? "")));
  else if (how === "show") fill(root, data);
}

async function run(root, method, url, body) {
  const button = root.tagName === "FORM" ? root.querySelector("[type=submit]") : root;
  if (root.dataset.confirm && !confirm(root.dataset.confirm)) return;
  clearErrors(root.tagName === "FORM" ? root : document);
  if (button) button.disabled = true;
  try {
    const data = await api(method, url, body);
    done(root, data);
  } catch (error) {
    showErrors(root.tagName === "FORM" ? root : document.body, error);
  } finally {
    if (button) button.disabled = false;
  }
}

function split(spec) {
  const [method, ...rest] = spec.trim().split(/\s+/);
  return [method.toUpperCase(), rest.join(" ")];
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const [method, url] = split(form.dataset.api);
  let body;
  try { body = formBody(form); } catch (error) { clearErrors(form); showErrors(form, error); return; }
  run(form, method, url, method === "DELETE" && !Object.keys(body).length ? undefined : body);
});

document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const source = document.querySelector(copy.dataset.copy);
    const text = source?.value ?? source?.textContent ?? "";
    navigator.clipboard?.writeText(text.trim()).then(() => {
      const old = copy.textContent;
      copy.textContent = "Copied";
      setTimeout(() => { copy.textContent = old; }, 1500);
    });
    return;
  }
  const button = event.target.closest("button[data-api]");
  if (!button || (button.type === "submit" && button.form?.dataset.api)) return;
  event.preventDefault();
  const [method, url] = split(button.dataset.api);
  const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
  run(button, method, url, body);
});

document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// The menu is a <details>: folded on a phone, always open on a wide screen (its summary is
// hidden there), also when the window is resized across the breakpoint.
const narrow = matchMedia("(max-width: 760px)");
const fitMenu = () => { document.querySelector(".nav-toggle")?.toggleAttribute("open", !narrow.matches); };
narrow.addEventListener("change", fitMenu);
fitMenu();

// <details data-load="/url">: the first time it opens, its <pre> gets the URL's text.
document.addEventListener("toggle", async (event) => {
  const details = event.target;
  if (!(details instanceof HTMLDetailsElement) || !details.open || !details.dataset.load || details.dataset.loaded) return;
  details.dataset.loaded = "1";
  const pre = details.querySelector("pre");
  const response = await fetch(details.dataset.load, { credentials: "same-origin" });
  pre.textContent = await response.text();
}, true);

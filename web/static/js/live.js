// Live feed: the websocket /v3/events/stream with the session cookie; reconnects with back-off.
const KEEP = 200;
const body = document.querySelector("#live-events tbody");
const status = document.getElementById("live-status");
const form = document.getElementById("live-filter");
let socket = null, delay = 1000, closing = false;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text ?? "";
  return td;
}

function show(event) {
  const row = document.createElement("tr");
  row.dataset.event = event.event_type;
  const time = new Date((event.timestamp ?? Date.now() / 1000) * 1000);
  row.append(cell(time.toISOString().replace("T", " ").slice(0, 19)));
  const type = cell("");
  const badge = document.createElement("span");
  badge.className = `badge ${event.event_type}`;
  badge.textContent = event.event_type + (event.bounce_type ? ` (${event.bounce_type})` : "");
  type.append(badge);
  row.append(type, cell(event.recipient_email, "wrap"));
  const msg = cell("", "hide-narrow mono");
  if (event.message_id) {
    const a = document.createElement("a");
    a.href = `/admin/messages/${encodeURIComponent(event.message_id)}`;
    a.textContent = event.message_id;
    msg.append(a);
  }
  row.append(msg, cell(event.smtp_response ?? event.reason ?? event.bounce_reason ?? "", "hide-narrow wrap"));
  body.prepend(row);
  while (body.rows.length > KEEP) body.deleteRow(-1);
}

function connect() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/v3/events/stream?${params}`);
  setStatus("connecting", "connecting…");
  socket.onopen = () => { delay = 1000; setStatus("open", "live"); };
  socket.onmessage = (m) => show(JSON.parse(m.data));
  socket.onclose = (e) => {
    if (closing) { closing = false; return; }
    setStatus("closed", `disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); retrying in ${delay / 1000} s`);
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  };
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  closing = true;
  socket?.close(1000);
  connect();
});
document.getElementById("live-clear").addEventListener("click", () => body.replaceChildren());
connect();

// Line charts as inline SVG, from the page's <script type="application/json" id="chart-data">.
// <figure data-chart data-series="key:Label,key2:Label 2" data-unit="%"> is filled in place;
// the same numbers are in the page's table for screen readers and without JavaScript.

const COLORS = ["#1f5eff", "#137a3a", "#b42318", "#b7791f", "#6b21a8"];
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(figure, rows) {
  const series = figure.dataset.series.split(",").map((s) => s.split(":"));
  const unit = figure.dataset.unit ?? "";
  const W = 720, H = 220, L = 44, B = 24, T = 10, R = 10;
  const max = Math.max(1, ...rows.flatMap((r) => series.map(([k]) => r[k] ?? 0)));
  const x = (i) => L + (rows.length < 2 ? 0 : (i * (W - L - R)) / (rows.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${series.map(([, l]) => l).join(", ")} per day` });
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    svg.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
    svg.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `${+v.toFixed(2)}${unit}`));
  }
  const step = Math.max(1, Math.ceil(rows.length / 6));
  rows.forEach((r, i) => {
    if (i % step === 0 || i === rows.length - 1)
      svg.append(el("text", { x: x(i), y: H - 6, "text-anchor": "middle" }, r.day.slice(5)));
  });
  series.forEach(([key, label], n) => {
    const points = rows.map((r, i) => `${x(i).toFixed(1)},${y(r[key] ?? 0).toFixed(1)}`).join(" ");
    const line = el("polyline", { points, fill: "none", stroke: COLORS[n % COLORS.length], "stroke-width": 2 });
    line.append(el("title", {}, label));
    svg.append(line);
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach(([, label], n) => {
    const span = document.createElement("span");
    span.style.setProperty("--c", COLORS[n % COLORS.length]);
    span.textContent = label;
    legend.append(span);
  });
  figure.replaceChildren(svg, legend);
}

const data = JSON.parse(document.getElementById("chart-data")?.textContent ?? "[]");
document.querySelectorAll("figure[data-chart]").forEach((f) => draw(f, data));

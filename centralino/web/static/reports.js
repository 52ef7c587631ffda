// Reports: today by hour and the last 4 weeks by day, for one team, queue or agent at a time,
// as inline SVG bar charts, with each period's totals per key and a CSV download.
// Every string from data goes through textContent (el/text); the SVG is built node by node.
import { api, clear, el, fmtDuration, fmtNumber, fmtPercent, isNum, text } from "/static/ui.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 480;
const H = 170;
const PAD = { left: 48, right: 8, top: 10, bottom: 24 };
const SL_GOAL = 0.8; // the dashed line; queues' own goals are on the wallboard
const WEEKS_DAYS = 28;

const ui = {
  group: document.getElementById("group"),
  key: document.getElementById("key"),
  status: document.getElementById("status"),
  zone: document.getElementById("zone"),
};

const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const hourFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
const dayFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: zone });

// Local calendar date as YYYY-MM-DD (the API reads it as midnight in `zone`).
function isoDate(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function periods() {
  const today = new Date();
  today.setHours(12, 0, 0, 0); // noon: adding days never crosses a DST edge into the wrong date
  const tomorrow = new Date(today);
  tomorrow.setDate(today.getDate() + 1);
  const start = new Date(today);
  start.setDate(today.getDate() - (WEEKS_DAYS - 1));
  return {
    today: { interval: "1h", from: isoDate(today), to: isoDate(tomorrow), label: (s) => hourFmt.format(new Date(s)) },
    weeks: { interval: "1d", from: isoDate(start), to: isoDate(tomorrow), label: (s) => dayFmt.format(new Date(s)) },
  };
}

function query(group, p) {
  return new URLSearchParams({ group, interval: p.interval, from: p.from, to: p.to, tz: zone }).toString();
}

// --- SVG ----------------------------------------------------------------------------------------

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The axis top: the next of 1, 2, 4, 5 x 10^k at or above `v`, so that its half is round too.
function niceTop(v) {
  const base = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 4, 5, 10].map((m) => m * base).find((t) => t >= v - 1e-9);
}

// Grouped bars: series [{cls, values, name}], values may be null (no calls: no bar).
function barChart({ title, labels, series, max, format, goal, testid, empty = "No calls" }) {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const found = series.flatMap((s) => s.values).filter(isNum);
  const top = max ?? niceTop(Math.max(1, ...found));
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (const frac of [0, 0.5, 1]) {
    const v = top * frac;
    root.append(svg("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    root.append(svg("text", { class: "tick", x: PAD.left - 4, y: y(v) + 3, "text-anchor": "end" }, format(v)));
  }
  if (isNum(goal)) {
    root.append(svg("line", { class: "goal", x1: PAD.left, x2: W - PAD.right, y1: y(goal), y2: y(goal) }));
  }
  const slot = plotW / Math.max(1, labels.length);
  const barW = Math.max(1, (slot * 0.8) / series.length);
  const every = Math.ceil(labels.length / 8);
  labels.forEach((label, i) => {
    const x0 = PAD.left + i * slot + slot * 0.1;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (!isNum(v) || (v <= 0 && !s.showZero)) return; // no calls, or nothing to draw
      const cls = typeof s.cls === "function" ? s.cls(v) : s.cls;
      // A 0 % service level is news, not an absence: a sliver shows it.
      const h = Math.max(v <= 0 ? 2 : 0, y(0) - y(v));
      const bar = svg("rect", { class: cls, x: x0 + j * barW, y: y(0) - h, width: Math.max(0.5, barW - 0.5), height: h });
      bar.append(svg("title", {}, `${label} · ${s.name}: ${format(v)}`));
      root.append(bar);
    });
    if (i % every === 0) {
      root.append(svg("text", { class: "tick", x: x0 + (slot * 0.8) / 2, y: H - 8, "text-anchor": "middle" }, label));
    }
  });
  if (!found.length) {
    root.append(svg("text", { class: "none", x: W / 2, y: H / 2, "text-anchor": "middle" }, empty));
  }
  const legend = el("div", { class: "legend" },
    series.length > 1 ? series.map((s) => el("span", {}, el("i", { class: `swatch ${s.cls}` }), s.name)) : []);
  return el("figure", { class: "rp-chart", "data-testid": testid }, el("h3", {}, title), legend, root);
}

function charts(lines, p) {
  const labels = lines.map((l) => p.label(l.start));
  const pick = (k) => lines.map((l) => l[k]);
  const abandoned = pick("abandoned");
  const volume = [
    { name: "Offered", cls: "s-offered", values: pick("offered") },
    { name: "Answered", cls: "s-answered", values: pick("answered") },
  ];
  if (abandoned.some(isNum)) volume.push({ name: "Abandoned", cls: "s-abandoned", values: abandoned });
  return [
    barChart({
      title: "Service level", labels, max: 1, goal: SL_GOAL, format: fmtPercent, testid: "chart-sl",
      series: [{ name: "Service level", cls: (v) => (v >= SL_GOAL ? "s-sl" : "s-sl miss"), values: pick("service_level"), showZero: true }],
    }),
    barChart({ title: "Calls", labels, format: (v) => fmtNumber(v, 0), series: volume, testid: "chart-calls" }),
    barChart({ title: "Average handling time", labels, format: fmtDuration, series: [{ name: "AHT", cls: "s-aht", values: pick("aht_s") }], testid: "chart-aht" }),
    barChart({ title: "Satisfaction (1–5)", labels, max: 5, empty: "No surveys", format: (v) => fmtNumber(v), series: [{ name: "Satisfaction", cls: "s-sat", values: pick("satisfaction") }], testid: "chart-sat" }),
  ];
}

// --- tables -------------------------------------------------------------------------------------

const COLUMNS = [
  ["Offered", (t) => fmtNumber(t.offered, 0)],
  ["Answered", (t) => fmtNumber(t.answered, 0)],
  ["Abandoned", (t) => (isNum(t.abandoned) ? fmtNumber(t.abandoned, 0) : "—")],
  ["Service level", (t) => fmtPercent(t.service_level)],
  ["ASA", (t) => fmtDuration(t.asa_s)],
  ["AHT", (t) => fmtDuration(t.aht_s)],
  ["Transfers", (t) => fmtNumber(t.transfers, 0)],
  ["Callbacks", (t) => fmtNumber(t.callbacks, 0)],
  ["Satisfaction", (t) => (isNum(t.satisfaction) ? `${fmtNumber(t.satisfaction)} (${t.surveys})` : "—")],
];

function table(head, body, report, groupName) {
  clear(head).append(el("tr", {}, el("th", {}, groupName), COLUMNS.map(([name]) => el("th", { class: "num" }, name))));
  clear(body);
  if (!report.totals.length) {
    body.append(el("tr", {}, el("td", { class: "empty", colspan: COLUMNS.length + 1 }, "Nothing to show for your teams")));
    return;
  }
  for (const t of report.totals) {
    body.append(el("tr", { "data-key": t.key }, el("td", { class: "key" }, t.key), COLUMNS.map(([, f]) => el("td", { class: "num" }, f(t)))));
  }
}

// --- the page -----------------------------------------------------------------------------------

const state = { reports: {}, periods: periods() };

function renderPeriod(name) {
  const report = state.reports[name];
  const p = state.periods[name];
  const key = ui.key.value;
  const container = clear(document.getElementById(`${name}-charts`));
  const lines = report.lines.filter((l) => l.key === key);
  if (lines.length) container.append(...charts(lines, p));
  else container.append(el("p", { class: "empty" }, "Nothing to show for your teams"));
  table(document.getElementById(`${name}-head`), document.getElementById(`${name}-totals`), report, ui.group.value);
}

function fillKeys(keys) {
  const previous = ui.key.value;
  clear(ui.key).append(...keys.map((k) => el("option", { value: k }, k)));
  if (keys.includes(previous)) ui.key.value = previous;
}

async function load() {
  const group = ui.group.value;
  text(ui.status, "Loading…");
  try {
    const [today, weeks] = await Promise.all(
      ["today", "weeks"].map((n) => api("GET", `/api/reports?${query(group, state.periods[n])}`)),
    );
    state.reports = { today, weeks };
    fillKeys([...new Set([...today.keys, ...weeks.keys])]);
    for (const name of ["today", "weeks"]) {
      document.getElementById(`csv-${name}`).href = `/api/reports.csv?${query(group, state.periods[name])}`;
      renderPeriod(name);
    }
    text(ui.status, `Updated ${hourFmt.format(new Date())}`);
  } catch (err) {
    text(ui.status, `Could not load the reports: ${err.message}`);
    ui.status.classList.add("error-text");
  }
}

text(ui.zone, `Times in ${zone}`);
ui.group.addEventListener("change", load);
ui.key.addEventListener("change", () => ["today", "weeks"].forEach(renderPeriod));
load();

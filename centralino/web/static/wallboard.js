// Supervisor wallboard: one tile per queue and a team table, pushed by the server every second.
import { api, clear, connect, el, fmtDuration, fmtNumber, fmtPercent, fmtTime, isNum, label, text } from "/static/ui.js";

// Below the goal by less than this (a share, 0.1 = 10 points) is "at risk", not yet failing.
const AMBER_MARGIN = 0.1;
const DEFAULT_GOAL = 0.8;
const STATE_ORDER = ["ready", "reserved", "ringing", "busy", "wrap_up", "not_ready"];

const ui = {
  tiles: document.getElementById("tiles"),
  teams: document.getElementById("teams"),
  teamsPanel: document.getElementById("teams-panel"),
  updated: document.getElementById("updated"),
  conn: document.getElementById("conn"),
  clock: document.getElementById("clock"),
};

// [css class, words]: the words carry the meaning, the colour repeats it.
function slState(sl, goal) {
  if (!isNum(sl)) return ["sl-none", "No calls yet"];
  const g = isNum(goal) ? goal : DEFAULT_GOAL;
  if (sl >= g) return ["sl-ok", "On target"];
  if (sl >= g - AMBER_MARGIN) return ["sl-warn", "At risk"];
  return ["sl-bad", "Below target"];
}

function figure(cls, value, caption, testid) {
  return el("div", { class: cls, "data-testid": testid }, el("div", { class: "value" }, value), el("div", { class: "caption" }, caption));
}

function staffing(tile) {
  const s = tile.staffing;
  if (!s || !isNum(s.agents_needed)) return null;
  const gap = s.agents_needed - (s.logged_in ?? 0);
  const verdict = gap > 0 ? `${gap} short` : gap === 0 ? "enough" : `${-gap} spare`;
  const why = [];
  if (isNum(s.arrival_rate_per_h)) why.push(`${fmtNumber(s.arrival_rate_per_h, 0)} calls/h`);
  if (isNum(s.aht_s)) why.push(`AHT ${fmtDuration(s.aht_s)}`);
  if (isNum(tile.sl_goal) && isNum(tile.sl_target_s)) why.push(`${fmtPercent(tile.sl_goal)} in ${fmtDuration(tile.sl_target_s)}`);
  return el("div", { class: `staffing ${gap > 0 ? "short" : "enough"}`, "data-testid": "staffing" },
    el("div", {},
      "Erlang: ", el("strong", {}, fmtNumber(s.agents_needed, 0)), " needed now · ",
      el("strong", {}, fmtNumber(s.logged_in ?? 0, 0)), " logged in",
      el("span", { class: "verdict" }, `(${verdict})`)),
    why.length ? el("div", { class: "why" }, `for ${why.join(", ")}`) : null);
}

function tileFor(tile) {
  const [cls, words] = slState(tile.service_level, tile.sl_goal);
  const goal = isNum(tile.sl_goal) && isNum(tile.sl_target_s)
    ? `Service level · goal ${fmtPercent(tile.sl_goal)} in ${fmtDuration(tile.sl_target_s)}`
    : "Service level";
  const agents = el("div", { class: "agents" });
  const byState = tile.agents || {};
  const states = [...STATE_ORDER, ...Object.keys(byState).filter((s) => !STATE_ORDER.includes(s) && s !== "logged_out")];
  for (const state of states) {
    if (!byState[state]) continue;
    agents.append(el("span", { class: `chip ${state}`, "data-state": state }, label(state), el("b", {}, fmtNumber(byState[state], 0))));
  }
  if (!agents.children.length) agents.append(el("span", { class: "chip" }, "No agents logged in"));
  return el("article", { class: `tile ${cls}`, "data-queue": tile.queue },
    el("div", { class: "tile-head" },
      el("div", { class: "tile-name" }, tile.queue),
      el("span", { class: "sl-badge", "data-testid": "sl-state" }, words)),
    el("div", { class: "tile-main" },
      figure("big", fmtNumber(tile.waiting ?? 0, 0), "Waiting", "waiting"),
      figure("big sl", isNum(tile.service_level) ? fmtPercent(tile.service_level) : "—", goal, "service-level")),
    el("div", { class: "tile-stats" },
      figure("stat", fmtDuration(tile.longest_wait_s), "Longest wait", "longest-wait"),
      figure("stat", fmtDuration(tile.asa_s), "ASA", "asa"),
      figure("stat", fmtPercent(tile.abandon_rate), "Abandoned", "abandon")),
    agents,
    staffing(tile));
}

function renderTeams(teams, goal) {
  clear(ui.teams);
  ui.teamsPanel.hidden = !teams.length;
  for (const t of teams) {
    const [cls, words] = slState(t.service_level, goal);
    let satisfaction = "—";
    if (isNum(t.satisfaction)) satisfaction = isNum(t.satisfaction_scale) ? `${fmtNumber(t.satisfaction)} / ${fmtNumber(t.satisfaction_scale)}` : fmtNumber(t.satisfaction);
    ui.teams.append(el("tr", { "data-team": t.team },
      el("td", {}, t.team),
      el("td", { class: "num" }, isNum(t.handled) ? fmtNumber(t.handled, 0) : "—"),
      el("td", { class: `num ${cls}` }, isNum(t.service_level) ? `${fmtPercent(t.service_level)} · ${words}` : "—"),
      el("td", { class: "num" }, fmtDuration(t.asa_s)),
      el("td", { class: "num" }, fmtPercent(t.resolution_rate)),
      el("td", { class: "num" }, satisfaction)));
  }
}

function render(data) {
  if (!data || typeof data !== "object") return;
  const queues = Array.isArray(data.queues) ? data.queues : [];
  clear(ui.tiles);
  if (!queues.length) ui.tiles.append(el("div", { class: "wb-empty" }, "No queues configured"));
  for (const q of queues) ui.tiles.append(tileFor(q));
  const goals = queues.map((q) => q.sl_goal).filter(isNum);
  renderTeams(Array.isArray(data.teams) ? data.teams : [], goals.length ? Math.min(...goals) : DEFAULT_GOAL);
  text(ui.updated, `Updated ${fmtTime(data.generated_at)}`);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function tickClock() {
  text(ui.clock, fmtTime(Date.now() / 1000));
}

tickClock();
setInterval(tickClock, 1000);
let pushed = false; // once the socket delivers, a slower first GET must not overwrite it
api("GET", "/api/wallboard").then((data) => pushed || render(data), (err) => console.warn(err));
connect("/ws/wallboard", {
  onMessage: (msg) => {
    if (msg && msg.type === "wallboard") {
      pushed = true;
      render(msg.data);
    }
  },
  onStatus: (status) => {
    ui.conn.className = `wb-conn ${status}`;
    text(ui.conn, status === "open" ? "live" : "reconnecting");
  },
});

// Index: what this Centralino runs, links to every page, readiness and recent calls.
import { api, clear, el, fmtDuration, fmtWhen, label, session } from "/static/ui.js";

const REFRESH_MS = 5000;

const ON_A_CALL = new Set(["ringing", "busy"]);
const SPY_MODES = [["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"]];

// Listen / whisper / barge: rings the supervisor's own phone into the agent's call.
function superviseButtons(agentId) {
  const status = el("span", { class: "muted small", role: "status" });
  const buttons = SPY_MODES.map(([mode, title]) =>
    el("button", {
      type: "button",
      class: "small",
      "data-testid": `supervise-${mode}-${agentId}`,
      onclick: async () => {
        status.textContent = "…";
        try {
          const done = await api("POST", `/api/agents/${encodeURIComponent(agentId)}/supervise`, { mode });
          status.textContent = `${label(done.mode)}: your phone (${done.phone}) rings`;
        } catch (error) {
          status.textContent = error.message;
        }
      },
    }, title));
  return el("span", { class: "supervise" }, ...buttons, status);
}

// Reports are for supervisors and admins (the server refuses anyone else anyway).
function showReportsLink() {
  if (document.getElementById("reports-link")) return;
  document.getElementById("pages").append(
    el("li", { id: "reports-link" }, el("a", { href: "/reports" }, "Reports"),
      el("span", { class: "muted small" }, "today, last 4 weeks, CSV")));
}

async function renderAgents(agents) {
  let role = "";
  try {
    role = (await session()).role;
  } catch {
    role = "";
  }
  const supervises = role === "supervisor" || role === "admin";
  if (supervises) showReportsLink();
  const list = clear(document.getElementById("agents"));
  if (!agents.length) {
    list.append(el("li", { class: "empty" }, "No agents configured"));
    return;
  }
  for (const agent of agents) {
    const href = `/desktop/${encodeURIComponent(agent.agent_id)}`;
    const state = agent.state || "unknown";
    const tone = state === "ready" ? "ok" : state === "logged_out" ? "" : state === "not_ready" ? "bad" : "info";
    list.append(
      el("li", {}, el("a", { href }, agent.agent_id), el("span", { class: `pill ${tone}` }, label(state)),
        supervises && ON_A_CALL.has(state) ? superviseButtons(agent.agent_id) : null),
    );
  }
}

function renderAbout(about) {
  const dl = clear(document.getElementById("about"));
  const running = about && about.running ? about.running : {};
  const names = Object.keys(running);
  if (!names.length) dl.append(el("dt", {}, "Web"), el("dd", {}, location.host));
  for (const name of names) dl.append(el("dt", {}, name), el("dd", {}, running[name]));
}

async function renderHealth() {
  const pill = document.getElementById("health-pill");
  const list = clear(document.getElementById("checks"));
  let body = null;
  let ok = false;
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    body = await response.json();
    ok = response.ok;
  } catch {
    body = null;
  }
  // 200 "degraded": calls are taken, but an optional source (a backend's circuit) is down.
  const degraded = ok && body !== null && body.status === "degraded";
  pill.className = `pill ${degraded ? "info" : ok ? "ok" : "bad"}`;
  pill.textContent = degraded ? "Degraded" : ok ? "Ready" : "Not ready";
  const checks = body && body.checks ? body.checks : {};
  for (const [name, check] of Object.entries(checks)) {
    list.append(
      el("li", {},
        el("span", {}, name, " ", el("span", { class: "muted small" }, check.detail ?? "")),
        el("span", { class: `pill ${check.ok ? "ok" : "bad"}` }, check.ok ? "up" : "down")),
    );
  }
}

function renderCalls(calls) {
  const body = clear(document.getElementById("calls"));
  if (!calls.length) {
    body.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No calls yet")));
    return;
  }
  for (const call of calls) {
    const who = el("td", {}, call.caller || "unknown number");
    if (call.number) who.append(el("div", { class: "muted small" }, call.number));
    body.append(
      el("tr", {},
        el("td", {}, fmtWhen(call.started_at)),
        who,
        el("td", {}, call.queue ?? "—"),
        el("td", {}, call.agent_id ?? "—"),
        el("td", {}, call.intent ? label(call.intent) : "—"),
        el("td", {}, call.outcome ? label(call.outcome) : "—"),
        el("td", { class: "num" }, fmtDuration(call.wait_s)),
        el("td", { class: "num" }, fmtDuration(call.talk_s))),
    );
  }
}

async function refresh() {
  const results = await Promise.allSettled([
    api("GET", "/api/agents").then(renderAgents),
    api("GET", "/api/about").then(renderAbout),
    api("GET", "/api/calls/recent?limit=20").then(renderCalls),
    renderHealth(),
  ]);
  for (const r of results) if (r.status === "rejected") console.warn(r.reason);
  document.body.dataset.loaded = "true";
}

refresh();
setInterval(refresh, REFRESH_MS);

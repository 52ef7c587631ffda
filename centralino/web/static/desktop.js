// Agent desktop: my state and buttons; the screen-pop of the call being offered, live.
// Every string from the pop is set with textContent (el/text): a CRM note holding markup
// shows as text and never runs.
import {
  api, clear, connect, el, fmtAge, fmtDuration, fmtNumber, fmtPercent, fmtWhen, icon,
  isNum, label, sourceName, text,
} from "/static/ui.js";

const agentId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const STATE_POLL_MS = 3000; // AMI can change my state (ring no answer): poll for it
const AGE_TICK_MS = 100;
const MAX_HISTORY = 10;
const MAX_VALUE_CHARS = 400; // a nested value longer than this is cut in the card
// Sources the fan-out runs against our own stores: their data has its own sections.
const OWN_SOURCES = new Set(["identity", "timeline", "tickets"]);

const CALLER_STATUS = {
  found: "Known customer",
  not_found: "Not in our records",
  ambiguous: "Shared number",
  no_identity: "No caller id",
};

// Why a source has no data, as the agent should read it.
const SOURCE_STATUS = {
  failed: "failed",
  timed_out: "timed out",
  circuit_open: "not called: failing recently",
  skipped: "nothing to look it up by",
  cancelled: "cancelled",
};

const ui = {
  conn: document.getElementById("conn"),
  stateNow: document.getElementById("state-now"),
  stateSince: document.getElementById("state-since"),
  stateReason: document.getElementById("state-reason"),
  stateError: document.getElementById("state-error"),
  stateNotice: document.getElementById("state-notice"),
  reason: document.getElementById("reason"),
  call: document.getElementById("call"),
  history: document.getElementById("history"),
  historyPanel: document.getElementById("history-panel"),
};

text(document.getElementById("agent-name"), agentId);
document.title = `${agentId} · Agent desktop · Centralino`;

// --- my state ---------------------------------------------------------------------------

let agent = null;

function renderState() {
  if (!agent) return;
  ui.stateNow.className = `state-now ${agent.state}`;
  text(ui.stateNow, label(agent.state));
  text(ui.stateReason, agent.state === "not_ready" && agent.reason ? `Reason: ${agent.reason}` : "");
  for (const [id, state] of [["btn-ready", "ready"], ["btn-not-ready", "not_ready"], ["btn-logout", "logged_out"]]) {
    document.getElementById(id).setAttribute("aria-pressed", String(agent.state === state));
  }
  tickState();
}

function tickState() {
  if (!agent || !isNum(agent.since_epoch_s)) {
    text(ui.stateSince, "");
    return;
  }
  const for_s = Date.now() / 1000 - agent.since_epoch_s;
  text(ui.stateSince, `for ${fmtDuration(for_s)}, since ${fmtWhen(agent.since_epoch_s)}`);
}

async function loadState() {
  try {
    agent = await api("GET", `/api/agents/${encodeURIComponent(agentId)}`);
    renderState();
  } catch (err) {
    text(ui.stateError, String(err.message || err));
  }
}

async function setState(state, reason) {
  text(ui.stateError, "");
  try {
    agent = await api("POST", `/api/agents/${encodeURIComponent(agentId)}/state`, { state, reason });
    renderState();
  } catch (err) {
    text(ui.stateError, String(err.message || err));
  }
}

document.getElementById("btn-ready").addEventListener("click", () => setState("ready", ""));
document.getElementById("btn-not-ready").addEventListener("click", () => setState("not_ready", ui.reason.value));

// The configured not-ready reasons (/admin); without them (no managed configuration) the
// page's own list stays.
api("GET", "/api/not-ready-reasons").then((labels) => {
  if (!Array.isArray(labels) || !labels.length) return;
  clear(ui.reason);
  for (const label of labels) ui.reason.append(el("option", {}, label));
}).catch(() => {});
document.getElementById("btn-logout").addEventListener("click", () => setState("logged_out", ""));

// --- screen-pop ---------------------------------------------------------------------------

let current = null; // {linkedid, caller label, shownAt}
let ages = []; // [{node, base_s, at_ms}] ticking "x s ago" labels

function age(node, base_s) {
  ages.push({ node, base_s, at_ms: performance.now() });
  return node;
}

function tickAges() {
  const now = performance.now();
  for (const a of ages) text(a.node, fmtAge(a.base_s + (now - a.at_ms) / 1000));
}

function value(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return fmtNumber(v);
  if (typeof v === "string") return v;
  const s = JSON.stringify(v);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}

function kv(data) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of Object.entries(data || {})) dl.append(el("dt", {}, label(k)), el("dd", {}, value(v)));
  return dl;
}

function callerHead(pop) {
  const caller = pop.caller;
  const who = el("div", { class: "who" });
  if (!caller) {
    who.append(el("div", { class: "caller-name" }, "Identifying caller…"));
    return who;
  }
  const known = caller.status === "found";
  who.append(el("div", { class: "caller-name", "data-testid": "caller-name" }, caller.label || (known ? "Customer" : "unknown number")));
  const numbers = [caller.number, caller.raw && caller.raw !== caller.number ? `as dialled: ${caller.raw}` : null].filter(Boolean);
  if (numbers.length) who.append(el("div", { class: "caller-number" }, numbers.join(" · ")));
  const tone = known ? "ok" : caller.status === "ambiguous" ? "warn" : "bad";
  const status = Object.hasOwn(CALLER_STATUS, caller.status) ? CALLER_STATUS[caller.status] : label(caller.status || "unknown");
  const tags = el("div", {}, el("span", { class: `pill ${tone}`, "data-testid": "caller-status" }, status));
  for (const [system, id] of Object.entries(caller.links || {})) {
    tags.append(" ", el("span", { class: "pill info" }, `${sourceName(system)} ${id}`));
  }
  who.append(tags);
  if (Array.isArray(caller.candidates) && caller.candidates.length) {
    const list = el("ul", { class: "plain small" });
    for (const c of caller.candidates) list.append(el("li", {}, `${c.display_name} (customer #${c.customer_id})`));
    who.append(el("div", { class: "small muted" }, "Shared number; it could be:"), list);
  }
  if (caller.link_action) who.append(linkForm(caller.link_action));
  return who;
}

function linkForm(action) {
  const input = el("input", { type: "number", min: 1, placeholder: "customer #", "aria-label": "Customer number" });
  const status = el("span", { class: "small muted" });
  const button = el("button", { type: "button", class: "btn" }, "Link number");
  button.addEventListener("click", async () => {
    const customerId = Number.parseInt(input.value, 10);
    if (!Number.isInteger(customerId) || customerId <= 0) {
      text(status, "Enter a customer number.");
      return;
    }
    try {
      await api("POST", "/api/identities/link", {
        identity_kind: action.identity_kind,
        identity_value: action.identity_value,
        customer_id: customerId,
      });
      text(status, `Linked to customer #${customerId}.`);
    } catch (err) {
      text(status, String(err.message || err));
    }
  });
  return el("div", { class: "link-form" },
    el("span", { class: "small" }, `Link ${action.identity_value} to`), input, button, status);
}

function callMeta(pop) {
  const sources = Array.isArray(pop.sources) ? pop.sources : [];
  const pending = sources.filter((s) => s.status === "pending").map((s) => sourceName(s.name));
  const meta = el("div", { class: "call-meta" });
  meta.append(pending.length
    ? el("div", {}, el("span", { class: "pill warn" }, `Still fetching: ${pending.join(", ")}`))
    : el("div", {}, el("span", { class: "pill ok" }, "All sources answered")));
  if (pop.generated_at) meta.append(el("div", {}, `Updated ${fmtWhen(pop.generated_at)}`));
  if (pop.linkedid) meta.append(el("div", {}, `Call ${pop.linkedid}`));
  return meta;
}

function ivrSection(ivr) {
  const section = el("section", { "data-testid": "ivr" }, el("h3", {}, "IVR"));
  ivr = ivr || {};
  if (ivr.predicted_intent) {
    section.append(el("div", { class: "intent" }, label(ivr.predicted_intent)));
    if (isNum(ivr.confidence)) {
      const pct = Math.max(0, Math.min(1, ivr.confidence));
      const bar = el("span", {});
      bar.style.width = `${pct * 100}%`;
      section.append(
        el("div", { class: "small muted" }, `Predicted intent · confidence ${fmtPercent(pct)}`),
        el("div", { class: "meter", role: "meter", "aria-valuenow": Math.round(pct * 100), "aria-valuemin": 0, "aria-valuemax": 100 }, bar),
      );
    }
  } else {
    section.append(el("div", { class: "empty" }, "No intent predicted"));
  }
  if (ivr.transcript) section.append(el("h3", { class: "mt" }, "Caller said"), el("blockquote", { class: "transcript" }, ivr.transcript));
  if (Array.isArray(ivr.steps) && ivr.steps.length) {
    const ol = el("ol", { class: "steps small" });
    for (const step of ivr.steps) ol.append(el("li", {}, step));
    section.append(el("h3", { class: "mt" }, "In the IVR"), ol);
  }
  return section;
}

function factsSection(pop) {
  const section = el("section", { "data-testid": "facts" }, el("h3", {}, "From the systems of record"));
  const groups = new Map();
  for (const fact of Array.isArray(pop.facts) ? pop.facts : []) {
    const name = String(fact.source ?? "unknown");
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(fact);
  }
  const pending = new Set();
  for (const s of Array.isArray(pop.sources) ? pop.sources : []) {
    if (OWN_SOURCES.has(s.name) || groups.has(s.name)) continue;
    if (s.status === "pending") pending.add(s.name);
    if (s.status === "ok" || s.status === "pending") groups.set(s.name, []);
  }
  if (!groups.size) section.append(el("div", { class: "empty" }, "No facts yet"));
  for (const [name, facts] of groups) {
    const freshest = Math.min(...facts.map((f) => (isNum(f.age_s) ? f.age_s : Infinity)));
    const head = el("div", { class: "source-head" }, el("span", { class: "source-name" }, sourceName(name)));
    if (Number.isFinite(freshest)) head.append(" ", el("span", { class: "age" }, "· ", age(el("span", {}), freshest)));
    const group = el("div", { class: "source-group", "data-source": name }, head);
    if (!facts.length) group.append(el("div", { class: "empty small" }, pending.has(name) ? "Fetching…" : "Nothing on file"));
    for (const fact of facts) group.append(el("div", { class: "fact" }, el("div", { class: "fact-kind" }, label(fact.kind)), kv(fact.data)));
    section.append(group);
  }
  const missing = (Array.isArray(pop.sources) ? pop.sources : []).filter((s) => s.status !== "ok" && s.status !== "pending");
  if (missing.length) {
    const list = el("ul", { class: "plain missing", "data-testid": "missing" });
    for (const s of missing) {
      const why = Object.hasOwn(SOURCE_STATUS, s.status) ? SOURCE_STATUS[s.status] : label(s.status);
      list.append(el("li", {}, `${sourceName(s.name)}: missing (${why})`, s.error ? el("div", { class: "why" }, s.error) : null));
    }
    section.append(el("h3", { class: "mt" }, "Missing"), list);
  }
  return section;
}

function ticketsSection(tickets) {
  const section = el("section", { "data-testid": "tickets" }, el("h3", {}, "Open tickets"));
  if (!Array.isArray(tickets) || !tickets.length) {
    section.append(el("div", { class: "empty" }, "No open tickets"));
    return section;
  }
  const list = el("ul", { class: "plain" });
  for (const t of tickets) {
    list.append(el("li", {},
      el("div", {}, icon("ticket"), " ", el("strong", {}, `#${t.id} `), t.title ?? ""),
      el("div", { class: "small muted" }, `${label(t.phase)} · opened ${fmtWhen(t.opened_at)} · updated ${fmtWhen(t.updated_at)}`)));
  }
  section.append(list);
  return section;
}

function interactionsSection(items) {
  const section = el("section", { "data-testid": "interactions" }, el("h3", {}, "Last interactions"));
  if (!Array.isArray(items) || !items.length) {
    section.append(el("div", { class: "empty" }, "No earlier contacts"));
    return section;
  }
  const list = el("ul", { class: "plain" });
  for (const i of items) {
    const channel = String(i.channel ?? "other");
    const direction = i.direction === "outbound" ? "out" : "in";
    const details = [i.intent ? label(i.intent) : null, i.outcome ? label(i.outcome) : null, i.agent_id ? `agent ${i.agent_id}` : null].filter(Boolean);
    list.append(el("li", { "data-channel": channel },
      el("div", { class: "interaction-head" },
        el("span", { class: `channel ${channel}` }, icon(channel), label(channel)),
        " ", el("span", { class: "small muted" }, `${direction} · ${fmtWhen(i.started_at)}`)),
      i.summary ? el("div", { class: "interaction-summary" }, i.summary) : null,
      details.length ? el("div", { class: "small muted" }, details.join(" · ")) : null));
  }
  section.append(list);
  return section;
}

function renderPop(pop) {
  ages = [];
  const card = el("div", { "data-testid": "pop", "data-linkedid": pop.linkedid ?? "" },
    el("div", { class: "call-head" }, callerHead(pop), callMeta(pop)),
    el("div", { class: "pop-grid" },
      ivrSection(pop.ivr),
      factsSection(pop),
      ticketsSection(pop.open_tickets),
      interactionsSection(pop.last_interactions)));
  clear(ui.call).append(card);
  tickAges();
}

function remember(previous) {
  if (!previous) return;
  ui.historyPanel.hidden = false;
  ui.history.prepend(el("li", {}, `${fmtWhen(previous.shownAt / 1000)} · ${previous.label} · call ${previous.linkedid}`));
  while (ui.history.children.length > MAX_HISTORY) ui.history.lastChild.remove();
}

function showPop(pop) {
  const linkedid = pop.linkedid ?? "";
  if (current && current.linkedid !== linkedid) remember(current);
  if (!current || current.linkedid !== linkedid) current = { linkedid, shownAt: Date.now(), label: "", pop: {} };
  current.pop = pop;
  current.label = pop.caller && pop.caller.label ? pop.caller.label : "caller";
  renderPop(pop);
}

// --- the hub's messages (centralino/web/desktop_ws.py) --------------------------------------
// {"type": "screen_pop", "pop_id", "payload": ScreenPop}  -> show, then {"type": "ack", "pop_id"}
// {"type": "pop_update", "linkedid", "payload"}           -> late results for the shown call
// {"type": "notice", "payload": {"kind": "state_forced", "by", "state", "reason"}}
//                                                          -> someone else set my state

function onMessage(msg, socket) {
  if (!msg || typeof msg !== "object" || !msg.payload || typeof msg.payload !== "object") return;
  if (msg.type === "screen_pop") {
    showPop(msg.payload);
    // Acknowledge once the card is on screen: the hub rings the agent's phone only then.
    if (typeof msg.pop_id === "string") socket.send(JSON.stringify({ type: "ack", pop_id: msg.pop_id }));
  } else if (msg.type === "notice" && msg.payload.kind === "state_forced") {
    const { by, state, reason } = msg.payload;
    const why = reason ? `: ${reason}` : "";
    text(ui.stateNotice, `${label(state)}, set by ${by}${why} (${fmtWhen(Date.now() / 1000)})`);
    loadState();
  } else if (msg.type === "pop_update") {
    const linkedid = msg.linkedid ?? msg.payload.linkedid;
    if (current && current.linkedid === linkedid) showPop({ ...current.pop, ...msg.payload, linkedid });
  }
}

function onStatus(status) {
  ui.conn.className = `conn ${status}`;
  text(ui.conn, status === "open" ? "connected" : "reconnecting…");
  document.body.dataset.ws = status;
}

loadState();
setInterval(loadState, STATE_POLL_MS);
setInterval(tickState, 1000);
setInterval(tickAges, AGE_TICK_MS);
connect(`/ws/agent/${encodeURIComponent(agentId)}`, { onMessage, onStatus });

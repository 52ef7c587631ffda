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
  wrapup: document.getElementById("wrapup-panel"),
  wrapupTimer: document.getElementById("wrapup-timer"),
  wrapupStatus: document.getElementById("wrapup-status"),
  outcome: document.getElementById("outcome"),
  shortcuts: document.getElementById("shortcuts"),
  currentCall: document.getElementById("current-call"),
  ccCaller: document.getElementById("cc-caller"),
  ccNumber: document.getElementById("cc-number"),
  ccQueue: document.getElementById("cc-queue"),
  ccTime: document.getElementById("cc-time"),
  noteForm: document.getElementById("note-form"),
  noteText: document.getElementById("note-text"),
  noteStatus: document.getElementById("note-status"),
  notes: document.getElementById("notes"),
};
const ON_CALL = new Set(["reserved", "ringing", "busy"]);

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
  const wrapping = agent.state === "wrap_up";
  if (wrapping && ui.wrapup.hidden) text(ui.wrapupStatus, "");
  ui.wrapup.hidden = !wrapping;
  tickState();
}

function tickState() {
  if (!agent || !isNum(agent.since_epoch_s)) {
    text(ui.stateSince, "");
    return;
  }
  const for_s = Date.now() / 1000 - agent.since_epoch_s;
  text(ui.stateSince, `for ${fmtDuration(for_s)}, since ${fmtWhen(agent.since_epoch_s)}`);
  if (agent.state === "wrap_up") text(ui.wrapupTimer, fmtClock(for_s));
  tickCall();
}

// m:ss for timers the agent glances at (wrap-up, time on call).
function fmtClock(s) {
  const t = Math.max(0, Math.floor(s));
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
}

function tickCall() {
  if (!current) return;
  const talking = agent && agent.state === "busy" && isNum(agent.since_epoch_s);
  if (talking) text(ui.ccTime, `on call ${fmtClock(Date.now() / 1000 - agent.since_epoch_s)}`);
  else if (agent && ON_CALL.has(agent.state)) text(ui.ccTime, label(agent.state));
  else text(ui.ccTime, `call ended · shown ${fmtClock((Date.now() - current.shownAt) / 1000)} ago`);
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

const actions = {
  ready: () => setState("ready", ""),
  not_ready: () => setState("not_ready", ui.reason.value),
  wrap_up_done: () => wrapUpDone(),
};
document.getElementById("btn-ready").addEventListener("click", actions.ready);
document.getElementById("btn-not-ready").addEventListener("click", actions.not_ready);
document.getElementById("btn-logout").addEventListener("click", () => setState("logged_out", ""));
document.getElementById("btn-wrapup-done").addEventListener("click", actions.wrap_up_done);

// --- configuration: reasons, outcome codes, shortcuts (centralino/web/desktop_api.py) --------

let shortcutKeys = new Map(); // key -> action name

function fillSelect(select, values, labelOf) {
  clear(select);
  for (const v of values) select.append(el("option", { value: v }, labelOf(v)));
}

async function loadConfig() {
  try {
    const config = await api("GET", `/api/desktop/${encodeURIComponent(agentId)}/config`);
    fillSelect(ui.reason, config.not_ready_reasons || [], (v) => v);
    fillSelect(ui.outcome, config.outcomes || [], (v) => label(v));
    ticketPhases = Array.isArray(config.ticket_phases) ? config.ticket_phases : [];
    const queues = Array.isArray(config.transfer_queues) ? config.transfer_queues : [];
    fillSelect(document.getElementById("transfer-queue"), queues, (v) => v);
    document.getElementById("transfer").hidden = !queues.length;
    if (current) renderPop(current.pop);
    clear(ui.shortcuts);
    shortcutKeys = new Map();
    for (const s of config.shortcuts || []) {
      shortcutKeys.set(s.key, s.action);
      ui.shortcuts.append(el("li", {}, el("kbd", {}, s.key.toUpperCase()), s.label));
    }
  } catch (err) {
    text(ui.stateError, String(err.message || err));
  }
}

// --- wrap-up: the outcome on the call's record, then ready -----------------------------------

async function wrapUpDone() {
  if (!agent || agent.state !== "wrap_up") return;
  text(ui.wrapupStatus, "");
  if (current && current.linkedid) {
    try {
      await api("POST", `/api/agents/${encodeURIComponent(agentId)}/outcome`,
        { linkedid: current.linkedid, outcome: ui.outcome.value });
      current.outcome = ui.outcome.value;
    } catch (err) {
      text(ui.wrapupStatus, String(err.message || err)); // stay in wrap-up: nothing is lost
      return;
    }
  }
  text(ui.wrapupStatus, `Saved: ${label(ui.outcome.value)}`);
  await setState("ready", "");
}

// --- notes on the current call and customer --------------------------------------------------

function customerOf(pop) {
  return pop && pop.caller && Number.isInteger(pop.caller.customer_id) ? pop.caller.customer_id : null;
}

function renderNotes(notes) {
  clear(ui.notes);
  for (const n of notes) {
    ui.notes.append(el("li", { "data-note": String(n.id) },
      el("div", {}, n.body),
      el("div", { class: "note-by small" }, `${n.author} · ${fmtWhen(n.created_at)}`)));
  }
}

async function loadNotes() {
  if (!current) return;
  const q = new URLSearchParams();
  const customer = customerOf(current.pop);
  if (customer !== null) q.set("customer_id", String(customer));
  if (current.linkedid) q.set("linkedid", current.linkedid);
  if (![...q.keys()].length) return;
  try {
    renderNotes(await api("GET", `/api/agents/${encodeURIComponent(agentId)}/notes?${q}`));
  } catch (err) {
    text(ui.noteStatus, String(err.message || err));
  }
}

ui.noteForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = ui.noteText.value.trim();
  if (!body || !current) return;
  try {
    await api("POST", `/api/agents/${encodeURIComponent(agentId)}/notes`,
      { text: body, linkedid: current.linkedid || null, customer_id: customerOf(current.pop) });
    ui.noteText.value = "";
    text(ui.noteStatus, "Saved.");
    await loadNotes();
  } catch (err) {
    text(ui.noteStatus, String(err.message || err));
  }
});

// --- transfer the current caller to a queue (AMI blind transfer) -----------------------------

document.getElementById("btn-transfer").addEventListener("click", async () => {
  const queue = document.getElementById("transfer-queue").value;
  const status = document.getElementById("transfer-status");
  try {
    await api("POST", `/api/agents/${encodeURIComponent(agentId)}/transfer`, { queue });
    text(status, `Transferred to ${queue}.`);
  } catch (err) {
    text(status, String(err.message || err));
  }
});

// --- keyboard shortcuts: never while typing in a field ----------------------------------------

function typing(target) {
  if (!(target instanceof Element)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || typing(event.target)) return;
  const action = shortcutKeys.get(event.key.toLowerCase());
  if (!action || !Object.hasOwn(actions, action)) return;
  event.preventDefault();
  actions[action]();
});

// --- screen-pop ---------------------------------------------------------------------------

let current = null; // {linkedid, label, shownAt, pop}
let ages = []; // [{node, base_s, at_ms}] ticking "x s ago" labels
let openSources = new Set(); // sources whose raw fields the agent unfolded, for this call

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
  const section = el("section", { "data-testid": "facts" }, el("h3", {}, "From the systems of record (open for details)"));
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
    if (!facts.length) {
      // Nothing to fold: say so in plain sight.
      const why = pending.has(name) ? "Fetching…" : "Nothing on file";
      section.append(el("div", { class: "source-group", "data-source": name }, head, el("div", { class: "empty small" }, why)));
      continue;
    }
    // The systems' raw fields, folded: the summary says what is inside (kinds and counts).
    const kinds = new Map();
    for (const f of facts) kinds.set(label(f.kind), (kinds.get(label(f.kind)) || 0) + 1);
    const inside = [...kinds].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(", ");
    head.append(" ", el("span", { class: "small muted" }, `· ${inside}`));
    const group = el("details", { class: "source-group", "data-source": name }, el("summary", {}, head));
    // A late result re-renders the pop: what the agent opened stays open.
    group.open = openSources.has(name);
    group.addEventListener("toggle", () => (group.open ? openSources.add(name) : openSources.delete(name)));
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

function ticketsSection(tickets, pop) {
  const section = el("section", { "data-testid": "tickets" }, el("h3", {}, "Open tickets"));
  const list = el("ul", { class: "plain" });
  for (const t of Array.isArray(tickets) ? tickets : []) {
    const moved = ticketMoves.get(t.id);
    const phase = moved ? moved.phase : t.phase;
    list.append(el("li", { "data-ticket": String(t.id) },
      el("div", {}, icon("ticket"), " ", el("strong", {}, `#${t.id} `), t.title ?? ""),
      el("div", { class: "small muted" }, `${label(phase)} · opened ${fmtWhen(t.opened_at)} · updated ${fmtWhen(t.updated_at)}`),
      ticketPhases.length ? moveForm(t.id, phase) : null));
  }
  if (!list.children.length) section.append(el("div", { class: "empty" }, "No open tickets"));
  section.append(list);
  const customer = customerOf(pop);
  if (customer !== null) section.append(newTicketForm(customer));
  return section;
}

// Phases moved on this desktop, shown until the next pop brings the ticket's own.
let ticketMoves = new Map();
let ticketPhases = [];

function moveForm(ticketId, phase) {
  const select = el("select", { "aria-label": `Move ticket #${ticketId} to` });
  for (const p of ticketPhases) if (p !== phase) select.append(el("option", { value: p }, label(p)));
  const reason = el("input", { type: "text", maxlength: 500, placeholder: "reason (to skip steps)", "aria-label": `Reason for moving ticket #${ticketId}` });
  const status = el("span", { class: "small", role: "status" });
  const button = el("button", { type: "button", class: "btn" }, "Move");
  button.addEventListener("click", async () => {
    try {
      const moved = await api("POST", `/api/agents/${encodeURIComponent(agentId)}/tickets/${ticketId}/move`,
        { to_phase: select.value, reason: reason.value });
      ticketMoves.set(ticketId, moved);
      renderPop(current.pop);
    } catch (err) {
      text(status, String(err.message || err)); // e.g. off the usual path: asks for a reason
      reason.focus();
    }
  });
  return el("div", { class: "ticket-move" }, select, reason, button, status);
}

function newTicketForm(customerId) {
  const title = el("input", { type: "text", maxlength: 200, placeholder: "New ticket title", "aria-label": "New ticket title" });
  const status = el("span", { class: "small", role: "status" });
  const button = el("button", { type: "button", class: "btn" }, "Open ticket");
  button.addEventListener("click", async () => {
    if (!title.value.trim()) return;
    try {
      const t = await api("POST", `/api/agents/${encodeURIComponent(agentId)}/tickets`,
        { customer_id: customerId, title: title.value.trim() });
      const now = new Date().toISOString();
      current.pop = { ...current.pop, open_tickets: [...(current.pop.open_tickets || []), { id: t.id, title: t.title, phase: t.phase, opened_at: now, updated_at: now }] };
      renderPop(current.pop);
    } catch (err) {
      text(status, String(err.message || err));
    }
  });
  return el("div", { class: "ticket-new" }, title, button, status);
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
    // The customer's own facts first (tickets, contacts, the IVR's reading), the systems' after.
    el("div", { class: "pop-grid" },
      ticketsSection(pop.open_tickets, pop),
      interactionsSection(pop.last_interactions),
      ivrSection(pop.ivr),
      factsSection(pop)));
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
  if (!current || current.linkedid !== linkedid) {
    current = { linkedid, shownAt: Date.now(), label: "", pop: {} };
    openSources = new Set();
    ticketMoves = new Map();
    clear(ui.notes);
    text(ui.noteStatus, "");
  }
  const fresh = current.pop !== pop && !current.pop.linkedid;
  current.pop = pop;
  current.label = pop.caller && pop.caller.label ? pop.caller.label : "caller";
  renderPop(pop);
  renderCurrentCall(pop);
  if (fresh) loadNotes();
}

function renderCurrentCall(pop) {
  ui.currentCall.hidden = false;
  text(ui.ccCaller, current.label);
  text(ui.ccNumber, (pop.caller && pop.caller.number) || "");
  text(ui.ccQueue, pop.queue ? `Queue ${pop.queue}` : "Queue —");
  tickCall();
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

loadConfig();
loadState();
setInterval(loadState, STATE_POLL_MS);
setInterval(tickState, 1000);
setInterval(tickAges, AGE_TICK_MS);
connect(`/ws/agent/${encodeURIComponent(agentId)}`, { onMessage, onStatus });

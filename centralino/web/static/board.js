// The tickets' kanban board for one team. Cards move by drag and drop or buttons; a move off
// the pipeline's usual path asks for a reason. Every string goes through textContent (el/text).
import { clear, el, fmtDuration, session as loginSession, text } from "/static/ui.js";

const team = decodeURIComponent(location.pathname.split("/").pop());
let board = null;

function state(label, kind) {
  const pill = document.getElementById("board-state");
  pill.className = `pill ${kind || ""}`;
  text(pill, label);
}

// The login session's cookie goes along by itself; changes carry its CSRF token.
async function call(method, url, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = (await loginSession()).csrf_token;
  const response = await fetch(url, { method, headers, body: body && JSON.stringify(body) });
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  }
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

function isStandard(from, to) {
  return board.pipeline.standard_moves.some(([a, b]) => a === from && b === to);
}

async function move(card, to) {
  let reason = "";
  if (!isStandard(card.phase, to)) {
    reason = window.prompt(`${card.phase} → ${to} is off the usual path. Why?`) || "";
    if (!reason.trim()) return;
  }
  const { status, data } = await call("POST", `/api/tickets/${card.id}/move`, {
    from_phase: card.phase, to_phase: to, reason,
  });
  if (status === 409) state(`someone moved it first: ${data.error}`, "warn");
  else if (status !== 200) state(data.error || `error ${status}`, "bad");
  await load();
}

async function history(card) {
  const { status, data } = await call("GET", `/api/tickets/${card.id}/history`);
  if (status !== 200) return;
  const panel = document.getElementById("history-panel");
  panel.hidden = false;
  text(document.getElementById("history-title"), `#${card.id} ${card.title}`);
  const list = clear(document.getElementById("history"));
  for (const h of data) {
    list.append(el("li", {},
      el("strong", {}, h.phase), ` from ${h.from_phase || "—"} by ${h.actor} at ${h.opened_at}`,
      h.out_of_order ? el("span", { class: "pill warn" }, `off path: ${h.reason}`) : null));
  }
}

function cardNode(card, now) {
  const phases = board.pipeline.phases;
  const at = phases.indexOf(card.phase);
  const since = (now - Date.parse(card.phase_since)) / 1000;
  const moves = el("div", { class: "moves" },
    at > 0 ? el("button", { type: "button", onclick: () => move(card, phases[at - 1]) }, "◀") : null,
    at < phases.length - 1 ? el("button", { type: "button", onclick: () => move(card, phases[at + 1]) }, "▶") : null,
    el("button", { type: "button", onclick: () => history(card) }, "history"));
  const node = el("div", { class: "card", draggable: "true" },
    el("div", {}, `#${card.id} ${card.title}`),
    el("div", { class: "meta" }, `${card.customer || "no customer"} · ${card.channel || "—"} · ${card.owner || "unassigned"}`),
    el("div", { class: "meta" }, `in phase ${fmtDuration(since)}`),
    moves);
  node.addEventListener("dragstart", (event) => event.dataTransfer.setData("text/plain", String(card.id)));
  return node;
}

function render() {
  const now = Date.parse(board.now);
  const columns = clear(document.getElementById("columns"));
  const figures = Object.fromEntries(board.figures.map((f) => [f.phase, f]));
  for (const phase of board.pipeline.phases) {
    const f = figures[phase];
    const summary = f && f.tickets
      ? `${f.tickets} · oldest ${fmtDuration(f.oldest_s)}${f.late ? ` · ${f.late} late` : ""}`
      : "";
    const column = el("section", { class: "column", dataset: { phase } },
      el("h3", {}, phase.replace("_", " ")),
      el("div", { class: f && f.late ? "meta late" : "meta" }, summary));
    column.addEventListener("dragover", (event) => { event.preventDefault(); column.classList.add("drop"); });
    column.addEventListener("dragleave", () => column.classList.remove("drop"));
    column.addEventListener("drop", (event) => {
      event.preventDefault();
      column.classList.remove("drop");
      const card = board.cards.find((c) => String(c.id) === event.dataTransfer.getData("text/plain"));
      if (card && card.phase !== phase) move(card, phase);
    });
    for (const card of board.cards.filter((c) => c.phase === phase)) column.append(cardNode(card, now));
    columns.append(column);
  }
}

async function load() {
  const { status, data } = await call("GET", `/api/board?team=${encodeURIComponent(team)}`);
  if (status !== 200) {
    state(status === 403 ? "not your team's board" : `error ${status}`, "bad");
    return;
  }
  board = data;
  state(`${data.cards.length} tickets`, "ok");
  render();
}

document.getElementById("board-title").textContent = `Tickets · ${team}`;
load();
setInterval(load, 10000);

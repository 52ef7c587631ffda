// The agent's written conversations on the desktop: the ACD assigns them, the agent reads,
// replies (WhatsApp and SMS, once per idempotency key) and closes them; each reply shows its
// delivery state as the provider reports it. Every string goes through textContent (el/text).
import { clear, el, session as loginSession, text } from "/static/ui.js";

const agentId = decodeURIComponent(location.pathname.split("/").pop());
const POLL_MS = 3000;
const REPLYABLE = new Set(["whatsapp", "sms"]);
const drafts = new Map(); // conversation id -> text being typed (kept across refreshes)

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

function say(message) {
  text(document.getElementById("conversations-state"), message);
}

async function reply(conversation, input) {
  const value = input.value;
  if (!value.trim()) return;
  const { status, data } = await call("POST", "/api/messages", {
    channel: conversation.channel,
    to: conversation.contact,
    text: value,
    customer_id: conversation.customer_id,
    idempotency_key: crypto.randomUUID(),
  });
  if (status === 200) {
    drafts.delete(conversation.id);
    input.value = "";
  } else {
    say(`reply not sent: ${data.error || status}`);
  }
  input.blur();
  await refresh();
}

async function close(conversation) {
  const { status, data } = await call("POST", `/api/conversations/${conversation.id}/close`, { agent_id: agentId });
  if (status !== 200) say(`not closed: ${data.error || status}`);
  await refresh();
}

function render(conversations) {
  const root = clear(document.getElementById("conversations"));
  if (!conversations.length) root.append(el("p", { class: "muted small" }, "No open conversations."));
  for (const conversation of conversations) {
    const list = el("ol", { class: "plain small" });
    for (const m of conversation.messages) {
      const state = m.direction === "outbound" ? ` · ${m.delivery_state || "sending"}` : "";
      list.append(el("li", { class: m.direction }, `${m.direction === "inbound" ? "◀" : "▶"} ${m.text}`,
        el("span", { class: "muted" }, state)));
    }
    const input = el("input", { maxlength: "1600", placeholder: "Reply…" });
    input.value = drafts.get(conversation.id) || "";
    input.addEventListener("input", () => drafts.set(conversation.id, input.value));
    const form = el("form", { class: "row" }, input, el("button", { type: "submit", class: "btn primary" }, "Send"));
    form.addEventListener("submit", (event) => { event.preventDefault(); reply(conversation, input); });
    root.append(el("div", { class: "conversation" },
      el("h4", {}, `${conversation.channel} · ${conversation.customer || conversation.contact}`),
      list,
      REPLYABLE.has(conversation.channel) ? form : el("p", { class: "muted small" }, "Reply from the mail/chat tool."),
      el("button", { type: "button", class: "btn", onclick: () => close(conversation) }, "Close")));
  }
}

async function refresh() {
  // Not while the agent types: re-rendering would take the focus away.
  const focused = document.activeElement;
  const typing = focused && focused.tagName === "INPUT" && focused.value !== ""
    && document.getElementById("conversations").contains(focused);
  if (typing) return;
  const { status, data } = await call("GET", `/api/conversations?agent_id=${encodeURIComponent(agentId)}`);
  if (status === 200) {
    say("");
    render(data);
  } else {
    say(status === 403 ? "these conversations are not yours to see" : `error ${status}`);
  }
}

refresh();
setInterval(refresh, POLL_MS);

// The visitor's chat widget. Messages stay "sending" until the server acknowledges them (it
// does once they are stored) and are sent again after a reconnect or a "retry".
import { el, text } from "/static/ui.js";

const store = window.localStorage;
const visitorId = store.getItem("centralino.visitor") || crypto.randomUUID();
store.setItem("centralino.visitor", visitorId);
const pending = new Map(); // id -> {text, node}
let socket = null;
let backoffMs = 500;

function who() {
  return {
    name: document.getElementById("name").value.trim(),
    email: document.getElementById("email").value.trim(),
    phone: document.getElementById("phone").value.trim(),
  };
}

function state(label) {
  text(document.getElementById("chat-state"), label);
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function hello() {
  send({ type: "hello", visitor_id: visitorId, ...who() });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws/chat`);
  socket.addEventListener("open", () => {
    backoffMs = 500;
    state("connected");
    hello();
    for (const [id, item] of pending) send({ type: "message", id, text: item.text });
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    const item = pending.get(frame.id);
    if (frame.type === "ack" && item) {
      pending.delete(frame.id);
      text(item.status, "sent");
    } else if (frame.type === "retry" && item) {
      setTimeout(() => send({ type: "message", id: frame.id, text: item.text }), 2000);
    } else if (frame.type === "error") {
      state(`refused: ${frame.error}`);
    }
  });
  socket.addEventListener("close", () => {
    state("reconnecting…");
    setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 15000);
  });
}

document.getElementById("who").addEventListener("submit", (event) => {
  event.preventDefault();
  hello();
});

document.getElementById("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  const value = input.value;
  if (!value.trim()) return;
  const id = crypto.randomUUID();
  const status = el("span", { class: "muted small" }, "sending");
  const node = el("li", {}, el("span", {}, value), " ", status);
  document.getElementById("messages").append(node);
  pending.set(id, { text: value, status });
  send({ type: "message", id, text: value });
  input.value = "";
});

connect();

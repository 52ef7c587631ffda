// Small DOM and formatting helpers shared by the pages.
// Every string from data goes through textContent (via el/text), never parsed as markup.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function text(node, value) {
  node.textContent = value === null || value === undefined ? "" : String(value);
  return node;
}

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

const numberFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const tenthsFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function fmtNumber(v, digits) {
  if (!isNum(v)) return "—";
  if (digits === 0) return intFmt.format(v);
  return numberFmt.format(v);
}

export function fmtPercent(share) {
  return isNum(share) ? `${intFmt.format(share * 100)} %` : "—";
}

// Seconds as "45 s", "3:07", "1:02:03".
export function fmtDuration(seconds) {
  if (!isNum(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

// An age, as "0.2 s ago", "12 s ago", "3 min ago", "2 h ago".
export function fmtAge(seconds) {
  if (!isNum(seconds)) return "";
  const s = Math.max(0, seconds);
  if (s < 10) return `${tenthsFmt.format(Math.floor(s * 10) / 10)} s ago`;
  if (s < 60) return `${intFmt.format(Math.floor(s))} s ago`;
  if (s < 3600) return `${intFmt.format(Math.floor(s / 60))} min ago`;
  return `${intFmt.format(Math.floor(s / 3600))} h ago`;
}

function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

// A timestamp (ISO string or epoch seconds) in the user's locale: the time if today, else both.
export function fmtWhen(value) {
  const d = toDate(value);
  if (!d) return "—";
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

export function fmtTime(value) {
  const d = toDate(value);
  return d ? timeFmt.format(d) : "—";
}

// "not_ready" -> "Not ready", "wrap_up" -> "Wrap-up".
const LABELS = {
  logged_out: "Logged out",
  not_ready: "Not ready",
  wrap_up: "Wrap-up",
  timed_out: "timed out",
  circuit_open: "circuit open (not called)",
  whatsapp: "WhatsApp",
  sms: "SMS",
};

export function label(value) {
  if (value === null || value === undefined) return "";
  const s = String(value);
  if (Object.hasOwn(LABELS, s)) return LABELS[s];
  const spaced = s.replace(/_/g, " ");
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

// Backend names: short ones are acronyms ("erp" -> "ERP"), others capitalised.
export function sourceName(name) {
  const s = String(name ?? "");
  return s.length <= 3 ? s.toUpperCase() : s.charAt(0).toUpperCase() + s.slice(1);
}

// Who is logged in, with the session's CSRF token (fetched once per page).
let sessionPromise = null;
export function session() {
  if (!sessionPromise) {
    sessionPromise = fetch("/api/session", { headers: { Accept: "application/json" } }).then((r) => {
      if (r.status === 401) toLogin();
      if (!r.ok) throw new Error(`${r.status}: no session`);
      return r.json();
    });
  }
  return sessionPromise;
}

function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

// JSON over fetch, throwing an Error carrying the server's message. Requests that change
// state carry the session's CSRF token; a 401 (session over) goes to the login page.
export async function api(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") {
    init.headers["X-CSRF-Token"] = (await session()).csrf_token;
  }
  const response = await fetch(url, init);
  if (response.status === 401) toLogin();
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return data;
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// A WebSocket that reconnects with backoff. onStatus("open" | "closed").
export function connect(path, { onMessage, onStatus }) {
  let delay = 250;
  let socket = null;
  const open = () => {
    socket = new WebSocket(wsUrl(path));
    socket.addEventListener("open", () => {
      delay = 250;
      onStatus("open", socket);
    });
    socket.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("ignored a non-JSON message");
        return;
      }
      onMessage(msg, socket);
    });
    socket.addEventListener("close", () => {
      onStatus("closed", socket);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 5000);
    });
  };
  open();
  return () => socket;
}

// Small line icons, drawn from fixed path data (never from input).
const ICONS = {
  voice:
    "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z",
  email: "M3 5h18v14H3z M3 5l9 7 9-7",
  chat: "M4 4h16v11H9l-5 4z",
  whatsapp: "M12 3a9 9 0 0 0-7.8 13.5L3 21l4.6-1.2A9 9 0 1 0 12 3z M9 8.5c0 3.5 3 6.5 6.5 6.5",
  sms: "M7 2h10v20H7z M10 18h4 M9.5 6h5 M9.5 9h5 M9.5 12h3",
  ticket: "M3 7h18v3a2 2 0 0 0 0 4v3H3v-3a2 2 0 0 0 0-4z M14 7v10",
  other: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z",
};

export function icon(name, title) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${Object.hasOwn(ICONS, name) ? name : "other"}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[Object.hasOwn(ICONS, name) ? name : "other"]);
  svg.append(path);
  if (title) {
    const t = document.createElementNS(ns, "title");
    t.textContent = title;
    svg.append(t);
  }
  return svg;
}

// The topbar's account: who is logged in, and a logout button.
export async function logout() {
  const { csrf_token } = await session();
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf_token } });
  location.assign("/login");
}

async function mountAccount() {
  const bar = document.querySelector(".topbar, .wb-top");
  // Pages for anonymous visitors (the chat widget) have no account to show or log in to.
  if (!bar || "anonymous" in bar.dataset) return;
  let who;
  try {
    who = await session();
  } catch (err) {
    console.warn(err);
    return;
  }
  bar.append(
    el(
      "span",
      { class: "account" },
      el("span", { id: "account-name", class: "muted" }, `${who.username} (${who.role})`),
      el("button", { id: "logout", type: "button", onclick: () => logout() }, "Sign out"),
    ),
  );
}

mountAccount();

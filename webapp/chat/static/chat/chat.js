// A chat page: a room (messages and who is online) or a private conversation.
//
// The page was rendered with the last messages. Live ones arrive on the pub/sub socket and are
// placed by id, the order the server saved them in; whenever the socket (re)connects, the page
// asks the server for what it may have missed meanwhile. Posting goes over HTTP. Every text
// from users is put into the page with textContent, never as HTML.
import { WS4Redis, pageConfig } from "../ws4redis/ws4redis.js";

const root = document.getElementById("chat");
const config = root.dataset;
const log = document.getElementById("chat-log");
const list = document.getElementById("chat-messages");
const older = document.getElementById("chat-older");
const statusLabel = document.getElementById("chat-status");
const form = document.getElementById("chat-form");
const errorLabel = document.getElementById("chat-error");
const online = document.getElementById("chat-online");
const me = config.me || "";
// The sockets' base URI and heartbeat, from {% ws4redis_config %} in base.html.
const { uri: socketBase, heartbeat } = pageConfig();
const timeFormat = { hour: "2-digit", minute: "2-digit" };

const known = new Set();
let newestId = 0;
let oldestId = Infinity;
let moreOlder = older.dataset.more === "1";
let loadingOlder = false;
let presenceVersion = 0;

const idOf = (item) => Number(item.dataset.id);
const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
const scrollToBottom = () => { log.scrollTop = log.scrollHeight; };

function localTime(element) {
  const date = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(date.getTime())) element.textContent = date.toLocaleTimeString([], timeFormat);
}

function remember(id) {
  known.add(id);
  newestId = Math.max(newestId, id);
  oldestId = Math.min(oldestId, id);
}

function belongsHere(event) {
  if (config.kind === "room") return event.type === "message" && event.room === config.room;
  const partner = config.partner;
  return event.type === "private"
    && ((event.author === me && event.recipient === partner) || (event.author === partner && event.recipient === me));
}

function messageItem(event) {
  const item = document.createElement("li");
  item.className = event.author === me ? "chat-message mine" : "chat-message";
  item.dataset.id = String(event.id);
  const time = document.createElement("time");
  time.setAttribute("datetime", event.created);
  localTime(time);
  const author = document.createElement("span");
  author.className = "chat-author";
  author.textContent = event.author;
  const text = document.createElement("span");
  text.className = "chat-text";
  text.textContent = event.text;
  item.append(time, " ", author, " ", text);
  return item;
}

// Inserts a message in id order; returns false if the page already shows it.
function insert(event) {
  if (known.has(event.id)) return false;
  remember(event.id);
  const item = messageItem(event);
  let after = list.lastElementChild;
  while (after && idOf(after) > event.id) after = after.previousElementSibling;
  if (after) after.after(item); else list.prepend(item);
  return true;
}

function insertLive(events) {
  const follow = nearBottom();
  let mine = false;
  for (const event of events) if (insert(event) && event.author === me) mine = true;
  if (follow || mine) scrollToBottom();
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// Loads what was saved since the newest message shown (missed while the socket was away).
async function catchUp() {
  for (let pages = 0; pages < 20; pages += 1) {
    const page = await getJSON(`${config.historyUrl}?after=${newestId}`);
    insertLive(page.messages.filter(belongsHere));
    if (!page.more) return;
  }
}

async function loadOlder() {
  if (loadingOlder || !moreOlder || !Number.isFinite(oldestId)) return;
  loadingOlder = true;
  older.textContent = "Loading older messages…";
  try {
    const page = await getJSON(`${config.historyUrl}?before=${oldestId}`);
    const height = log.scrollHeight;
    for (const event of page.messages) insert(event);
    log.scrollTop += log.scrollHeight - height; // keep what the reader was looking at in place
    moreOlder = page.more;
    older.textContent = moreOlder ? "Scroll up for older messages" : "This is the beginning.";
  } catch (error) {
    older.textContent = `Older messages could not be loaded: ${error.message}`;
  } finally {
    loadingOlder = false;
  }
  // A short page (or a tall window) may leave nothing to scroll: keep loading until there is.
  if (moreOlder && log.scrollHeight <= log.clientHeight) loadOlder();
}

function showPresence(snapshot) {
  if (!online || snapshot.version <= presenceVersion) return;
  presenceVersion = snapshot.version;
  const items = snapshot.users.map((name) => {
    const item = document.createElement("li");
    if (name === me) {
      const you = document.createElement("span");
      you.className = "muted";
      you.textContent = "(you)";
      item.append(name, " ", you);
    } else if (me) {
      const link = document.createElement("a");
      link.href = `${config.directUrl}${encodeURIComponent(name)}/`;
      link.title = "Send a private message";
      link.textContent = name;
      item.append(link);
    } else {
      item.textContent = name;
    }
    return item;
  });
  online.replaceChildren(...items);
}

async function refreshPresence() {
  if (config.presenceUrl) showPresence(await getJSON(config.presenceUrl));
}

function notifyElsewhere(event) {
  const notices = document.getElementById("chat-elsewhere");
  if (!notices || event.type !== "private" || event.recipient !== me) return;
  const item = document.createElement("li");
  item.className = "notice";
  const link = document.createElement("a");
  link.href = `${config.directUrl}${encodeURIComponent(event.author)}/`;
  link.textContent = event.author;
  item.append("New private message from ", link);
  notices.append(item);
}

function onEvent(data) {
  let event;
  try { event = JSON.parse(data); } catch { return; }
  if (event.type === "presence") showPresence(event);
  else if (belongsHere(event)) insertLive([event]);
  else notifyElsewhere(event);
}

function showError(message) {
  if (!errorLabel) return;
  errorLabel.textContent = message;
  errorLabel.hidden = !message;
}

async function post(event) {
  event.preventDefault();
  const input = form.elements.message;
  const text = input.value;
  if (!text.trim()) {
    showError("Write a message first: spaces alone are not sent.");
    input.focus();
    return;
  }
  const body = new FormData(form);
  input.value = "";
  try {
    const response = await fetch(form.action, {
      method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    const reply = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(reply.error || `${response.status} ${response.statusText}`);
    showError("");
    insertLive([reply]);
  } catch (error) {
    showError(error.message);
    if (!input.value) input.value = text; // give the text back so it can be sent again
  }
}

function setStatus(state) {
  statusLabel.textContent = state;
  statusLabel.dataset.state = state;
}

for (const item of list.children) remember(idOf(item));
for (const time of list.querySelectorAll("time")) localTime(time);
scrollToBottom();
log.addEventListener("scroll", () => { if (log.scrollTop < 80) loadOlder(); });
if (moreOlder && log.scrollHeight <= log.clientHeight) loadOlder();
if (form) form.addEventListener("submit", post);

new WS4Redis({
  uri: socketBase + config.socket,
  heartbeat,
  onopen: () => { catchUp().catch(() => {}); refreshPresence().catch(() => {}); },
  onmessage: onEvent,
  onstatechange: setStatus,
});

if (config.presenceSocket) {
  const presence = new WS4Redis({
    uri: socketBase + config.presenceSocket,
    heartbeat,
    onmessage: onEvent,
    // 1008: the server will not count this user here (logged out, or no longer a member).
    onclose: (event) => { if (event.code === 1008) presence.close(); },
  });
}

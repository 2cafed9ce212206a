// The site-wide broadcast banners: the live broadcasts the page was rendered with, then those
// arriving on the socket (facility "broadcast": everyone's, this user's and this user's groups').
// A banner is keyed by the broadcast's id, so a copy arriving twice (from the page and from the
// socket's replay, or through two groups) shows once; a dismissed id stays hidden in this browser.
import { WS4Redis, pageConfig } from "../ws4redis/ws4redis.js";

const LEVEL_NAMES = { info: "Info", warning: "Warning", critical: "Critical" };
const DISMISSED_KEY = "broadcast:dismissed";
// Enough to cover every broadcast still live; older ids are forgotten first.
const MAX_REMEMBERED = 200;
// setTimeout fires at once for delays above 2^31 - 1 ms.
const MAX_TIMEOUT = 2 ** 31 - 1;

const container = document.getElementById("broadcast-banners");
const config = JSON.parse(document.getElementById("broadcast-live").textContent);

function dismissedIds() {
  try {
    const ids = JSON.parse(localStorage.getItem(DISMISSED_KEY) || "[]");
    return Array.isArray(ids) ? ids : [];
  } catch {
    return []; // storage disabled or a foreign value: nothing was dismissed here
  }
}

function remember(id) {
  const ids = dismissedIds().filter((known) => known !== id);
  ids.push(id);
  try {
    localStorage.setItem(DISMISSED_KEY, JSON.stringify(ids.slice(-MAX_REMEMBERED)));
  } catch {
    // Storage disabled: the banner is dismissed on this page only.
  }
}

function bannerOf(id) {
  return container.querySelector(`[data-broadcast-id="${id}"]`);
}

function isBroadcast(value) {
  return value !== null && typeof value === "object" && Number.isInteger(value.id)
    && typeof value.message === "string" && Object.hasOwn(LEVEL_NAMES, value.level);
}

function expiryDelay(broadcast) {
  return broadcast.expires_at ? Date.parse(broadcast.expires_at) - Date.now() : Infinity;
}

function show(broadcast) {
  if (dismissedIds().includes(broadcast.id) || expiryDelay(broadcast) <= 0) return;
  let banner = bannerOf(broadcast.id);
  if (!banner) {
    banner = document.createElement("div");
    banner.dataset.broadcastId = String(broadcast.id);
    // The level in words too: colour alone does not reach everyone.
    const level = document.createElement("strong");
    level.className = "broadcast-level";
    const text = document.createElement("p");
    text.className = "broadcast-message";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "broadcast-dismiss";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => {
      remember(broadcast.id);
      banner.remove();
    });
    banner.append(level, text, close);
    container.prepend(banner);
  }
  // A re-sent broadcast may have been edited: the latest copy wins.
  banner.className = `broadcast broadcast-${broadcast.level}`;
  banner.setAttribute("role", broadcast.level === "critical" ? "alert" : "status");
  banner.querySelector(".broadcast-level").textContent = LEVEL_NAMES[broadcast.level];
  banner.querySelector(".broadcast-message").textContent = broadcast.message;
  clearTimeout(Number(banner.dataset.expiryTimer));
  const delay = expiryDelay(broadcast);
  if (delay !== Infinity) {
    banner.dataset.expiryTimer = String(setTimeout(() => banner.remove(), Math.min(delay, MAX_TIMEOUT)));
  }
}

function receive(data) {
  let broadcast;
  try {
    broadcast = JSON.parse(data);
  } catch {
    return; // not a broadcast
  }
  if (isBroadcast(broadcast)) show(broadcast);
  else if (broadcast?.withdrawn === true && Number.isInteger(broadcast.id)) bannerOf(broadcast.id)?.remove();
}

config.live.forEach(show);

// Dismissed in another tab of this browser: hide it here too.
window.addEventListener("storage", (event) => {
  if (event.key !== DISMISSED_KEY) return;
  for (const id of dismissedIds()) bannerOf(id)?.remove();
});

// The socket's base URI and heartbeat come from {% ws4redis_config %} in base.html.
if (pageConfig()) {
  new WS4Redis({
    facility: config.facility,
    flags: "subscribe-broadcast&subscribe-user&subscribe-group",
    onmessage: receive,
    // Shown on the container, for styles and for tests waiting until the page listens.
    onstatechange: (state) => { container.dataset.socketState = state; },
  });
}

// ws4redis.js: the browser side of ws4redis_server. An ES module, no dependencies.
//
//   import { WS4Redis } from "/static/ws4redis/ws4redis.js";
//   const ws = new WS4Redis({
//     facility: "news", flags: "subscribe-broadcast",   // or path: "echo/" for a handler
//     onmessage: (data) => ..., onopen, onclose, onstatechange: (state) => ...,
//     ongap: ({ position }) => ...,        // messages were missed for good: reload the state
//   });
//   ws.send("text"); ws.close();           // close() does not reconnect
//
// Without `uri`, the base URI and the heartbeat come from the page's configuration, written by
// {% load ws4redis %}{% ws4redis_config %} (a JSON <script id="ws4redis-config">); `flags` is a
// string ("a&b") or an array. With `uri` ("ws://host/ws/news?subscribe-broadcast"), nothing is
// read from the page and `heartbeat` (WS4REDIS_HEARTBEAT, e.g. "--heartbeat--") defaults to
// null. pageConfig() returns { uri, heartbeat } of the page, or null without the tag.
//
// Reconnects after a drop with jittered exponential backoff (0.5 s doubling to 30 s). With a
// heartbeat, sends it every 5 s and reconnects when 3 in a row go unanswered; heartbeats are
// never passed to onmessage.
//
// Resume (on unless resume: false, for URIs with a subscribe-* flag): the socket asks for message
// ids ("ids"), remembers the last one seen (ws.lastId) and reconnects with "last-id=<id>", so the
// server replays, in order and once, what was published meanwhile (within its history window,
// WS4REDIS_HISTORY_LENGTH / _SECONDS). When that window has passed, ongap is called. Frames then
// carry a header line ("<id>\n<message>", "@<id>\n" for a position); onmessage gets the message
// alone. Binary messages arrive as ArrayBuffer. A server without history sends plain messages,
// which are passed on as they are.

const HEARTBEAT_INTERVAL = 5000;
const MISSED_HEARTBEATS = 3;
const HEADER = /^(@?)(\d+)-(\d+)( gap)?$/;
const CONFIG_ID = "ws4redis-config";

// The page's configuration from {% ws4redis_config %}: { uri, heartbeat }, with the base URI
// built from window.location and WEBSOCKET_URL when the template had no request. Null without it.
export function pageConfig(doc = globalThis.document) {
  const element = doc ? doc.getElementById(CONFIG_ID) : null;
  if (!element) return null;
  const config = JSON.parse(element.textContent);
  let uri = config.uri;
  if (!uri) {
    const { protocol, host } = globalThis.location;
    uri = (protocol === "https:" ? "wss://" : "ws://") + host + (config.url || "/ws/");
  }
  return { uri, heartbeat: config.heartbeat ?? null };
}

function uriFromPage(where, flags) {
  const config = pageConfig();
  if (!config || where == null) {
    throw new Error("WS4Redis: give uri, or facility (or path) with {% ws4redis_config %} in the page");
  }
  const query = Array.isArray(flags) ? flags.join("&") : (flags || "");
  return [config.uri + where + (query ? "?" + query : ""), config.heartbeat];
}

function compareIds(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

// Splits a framed message into [header, payload], or returns null if it has no header line.
function splitFrame(data) {
  if (typeof data === "string") {
    const end = data.indexOf("\n");
    if (end < 0) return null;
    return [data.slice(0, end), data.slice(end + 1)];
  }
  const bytes = new Uint8Array(data);
  const end = bytes.indexOf(10);
  if (end < 0 || end > 48) return null;
  return [String.fromCharCode(...bytes.subarray(0, end)), data.slice(end + 1)];
}

export class WS4Redis {
  constructor({ uri, facility, path, flags, heartbeat, reconnect = true, minDelay = 500, maxDelay = 30000,
                resume = true, onopen = () => {}, onmessage = () => {}, onclose = () => {},
                onstatechange = () => {}, ongap = () => {} }) {
    if (!uri) {
      const [pageUri, pageHeartbeat] = uriFromPage(facility ?? path, flags);
      uri = pageUri;
      if (heartbeat === undefined) heartbeat = pageHeartbeat;
    }
    if (heartbeat === undefined) heartbeat = null;
    Object.assign(this, { uri, heartbeat, reconnect, minDelay, maxDelay, onopen, onmessage, onclose,
                          onstatechange, ongap });
    this.resume = resume && /[?&]subscribe-/.test(uri);
    this.lastId = null;
    this.framed = false;
    this.attempt = 0;
    this.closedByUser = false;
    this.socket = null;
    this.timer = null;
    this.heartbeatTimer = null;
    this.missed = 0;
    this.state = "idle";
    this.connect();
  }

  setState(state) {
    if (state !== this.state) {
      this.state = state;
      this.onstatechange(state);
    }
  }

  connect() {
    this.setState("connecting");
    let uri = this.uri;
    if (this.resume) {
      uri += (uri.includes("?") ? "&" : "?") + "ids";
      if (this.lastId) uri += "&last-id=" + this.lastId;
    }
    const socket = new WebSocket(uri);
    if (this.resume) socket.binaryType = "arraybuffer";
    this.framed = this.resume;
    this.socket = socket;
    socket.onopen = (event) => {
      this.attempt = 0;
      this.missed = 0;
      this.setState("open");
      if (this.heartbeat) this.heartbeatTimer = setInterval(() => this.beat(), HEARTBEAT_INTERVAL);
      this.onopen(event);
    };
    socket.onmessage = (event) => {
      let data = event.data;
      if (this.framed) {
        const frame = splitFrame(data);
        const header = frame && (frame[0] === "" ? [] : HEADER.exec(frame[0]));
        if (!header) {
          this.framed = false;  // a server without message history: plain messages
        } else {
          data = frame[1];
          if (header.length) {
            const id = `${header[2]}-${header[3]}`;
            if (!this.lastId || compareIds(id, this.lastId) > 0) this.lastId = id;
            if (header[1] === "@") {
              if (header[4]) this.ongap({ position: id });
              return;
            }
          }
        }
      }
      if (this.heartbeat && data === this.heartbeat) {
        this.missed = 0;
        return;
      }
      this.onmessage(data, event);
    };
    socket.onclose = (event) => {
      clearInterval(this.heartbeatTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.onclose(event);
      if (this.closedByUser || !this.reconnect) {
        this.setState("closed");
        return;
      }
      // Full jitter: a server restart must not bring every client back in the same instant.
      const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
      this.attempt += 1;
      this.setState("reconnecting");
      this.timer = setTimeout(() => this.connect(), Math.random() * ceiling);
    };
  }

  beat() {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    if (this.missed >= MISSED_HEARTBEATS) {
      this.socket.close(4000, "heartbeat lost");
      return;
    }
    this.missed += 1;
    this.socket.send(this.heartbeat);
  }

  send(data) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(data);
    return true;
  }

  close(code = 1000, reason = "") {
    this.closedByUser = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeatTimer);
    if (this.socket) this.socket.close(code, reason);
    else this.setState("closed");
  }

  get isOpen() {
    return Boolean(this.socket && this.socket.readyState === WebSocket.OPEN);
  }
}

// ws4redis.js: the browser side of ws4redis_server. An ES module, no dependencies.
//
//   import { WS4Redis } from "/static/ws4redis/ws4redis.js";
//   const ws = new WS4Redis({
//     uri: "ws://host/ws/news?subscribe-broadcast",
//     heartbeat: "--heartbeat--",          // WS4REDIS_HEARTBEAT, or null
//     onmessage: (data) => ..., onopen, onclose, onstatechange: (state) => ...,
//   });
//   ws.send("text"); ws.close();           // close() does not reconnect
//
// Reconnects after a drop with jittered exponential backoff (0.5 s doubling to 30 s). With a
// heartbeat, sends it every 5 s and reconnects when 3 in a row go unanswered; heartbeats are
// never passed to onmessage.

const HEARTBEAT_INTERVAL = 5000;
const MISSED_HEARTBEATS = 3;

export class WS4Redis {
  constructor({ uri, heartbeat = null, reconnect = true, minDelay = 500, maxDelay = 30000,
                onopen = () => {}, onmessage = () => {}, onclose = () => {}, onstatechange = () => {} }) {
    if (!uri) throw new Error("WS4Redis: uri is required");
    Object.assign(this, { uri, heartbeat, reconnect, minDelay, maxDelay, onopen, onmessage, onclose, onstatechange });
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
    const socket = new WebSocket(this.uri);
    this.socket = socket;
    socket.onopen = (event) => {
      this.attempt = 0;
      this.missed = 0;
      this.setState("open");
      if (this.heartbeat) this.heartbeatTimer = setInterval(() => this.beat(), HEARTBEAT_INTERVAL);
      this.onopen(event);
    };
    socket.onmessage = (event) => {
      if (this.heartbeat && event.data === this.heartbeat) {
        this.missed = 0;
        return;
      }
      this.onmessage(event.data, event);
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

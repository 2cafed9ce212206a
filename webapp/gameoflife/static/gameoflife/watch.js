// The Game of Life page: listens to /ws/gameoflife/watch/ and draws each cell's state as it is
// relayed. Events (webapp/gameoflife/protocol.py): "run <id> <size>", "connected <id> <n>",
// "subscribed <id> <n>", "subscribe <id>", "start <id>", "states <id> <index>:<step>:<state> ...",
// "ended <id>". The status line's phase: connecting, subscribing, running, finished.
import { WS4Redis } from "../ws4redis/ws4redis.js";

const status = document.getElementById("gol-status");
const canvas = document.getElementById("gol-grid");
const context = canvas.getContext("2d");
const text = (id, value) => { document.getElementById(id).textContent = value; };

const HUE_STEP = 7;          // degrees per generation: the colours drift slowly
const RATE_WINDOW = 3000;    // ms of completed generations the rate is measured over
const RATE_MIN_SPAN = 1000;  // ms of completed generations before a rate is shown

let run = 0;
let size = 0;
let image = null;            // one RGBA pixel per cell, drawn at the next animation frame
let dirty = false;
let seen = new Map();        // step → states received for it (a generation is complete at size²)
let generation = -1;
let completions = [];        // [time, generation] of recent completed generations
const palette = new Map();   // hue → [alive RGB, dead RGB]
const PHASES = {
  connecting: "connecting cells", subscribing: "cells subscribing", running: "running", finished: "finished",
};

function hslToRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => { const k = (n + h / 30) % 12; return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)))); };
  return [f(0), f(8), f(4)];
}

function colours(step) {
  const hue = (step * HUE_STEP) % 360;
  let pair = palette.get(hue);
  if (!pair) {
    pair = [hslToRgb(hue, 1, 0.25), hslToRgb(hue, 1, 0.92)];
    palette.set(hue, pair);
  }
  return pair;
}

function reset(id, side) {
  run = id;
  size = side;
  canvas.width = canvas.height = size;
  image = context.createImageData(size, size);
  const dead = colours(0)[1];
  for (let i = 0; i < size * size; i++) image.data.set([...dead, 255], i * 4);
  dirty = true;
  seen = new Map();
  generation = -1;
  completions = [];
  status.dataset.run = id;
  status.dataset.size = side;
  document.title = `Game of Life (${size}×${size})`;
  text("gol-run", `Run ${id}, ${size}×${size}`);
  text("gol-connected", "0");
  text("gol-subscribed", "0");
  text("gol-generation", "–");
  text("gol-rate", "–");
  phase("connecting");
}

function phase(name) {
  status.dataset.phase = name;
  text("gol-phase", PHASES[name]);
}

function finished() {
  phase("finished");
  text("gol-rate", "–");  // no rate once the cells have gone
}

function completed(step) {
  for (const key of seen.keys()) if (key <= step) seen.delete(key);
  if (step <= generation) return;
  generation = step;
  const now = performance.now();
  completions.push([now, step]);
  while (completions.length > 2 && now - completions[0][0] > RATE_WINDOW) completions.shift();
  text("gol-generation", String(step));
  const [t0, g0] = completions[0];
  // Not before a second of history: while the page loads, messages arrive in bursts.
  if (now - t0 >= RATE_MIN_SPAN && status.dataset.phase !== "finished") {
    text("gol-rate", ((step - g0) * 1000 / (now - t0)).toFixed(1));
  }
}

function states(body) {
  const cells = size * size;
  const pixels = image.data;
  for (const token of body.split(" ")) {
    const first = token.indexOf(":");
    const second = token.indexOf(":", first + 1);
    const index = +token.slice(0, first);
    const step = +token.slice(first + 1, second);
    if (!(index < cells)) continue;
    const rgb = colours(step)[token[second + 1] === "1" ? 0 : 1];
    const at = index * 4;
    pixels[at] = rgb[0]; pixels[at + 1] = rgb[1]; pixels[at + 2] = rgb[2];
    const count = (seen.get(step) || 0) + 1;
    seen.set(step, count);
    if (count === cells) completed(step);
  }
  dirty = true;
}

function onmessage(data) {
  const space = data.indexOf(" ");
  const kind = data.slice(0, space);
  const rest = data.slice(space + 1);
  const next = rest.indexOf(" ");
  const id = +(next < 0 ? rest : rest.slice(0, next));
  const body = next < 0 ? "" : rest.slice(next + 1);
  if (kind === "run") {
    if (id >= run && (id > run || +body !== size)) reset(id, +body);
    return;
  }
  if (id !== run || !image) return;
  if (kind === "states") states(body);
  else if (kind === "connected") count("gol-connected", +body);
  else if (kind === "subscribed") count("gol-subscribed", +body);
  else if (kind === "subscribe") { count("gol-connected", size * size); phase("subscribing"); }
  else if (kind === "start") { count("gol-subscribed", size * size); phase("running"); }
  else if (kind === "ended") finished();
}

// Counts are announced by several worker processes: one may arrive after a larger one.
function count(id, value) {
  if (value > +document.getElementById(id).textContent) text(id, String(value));
}

function draw() {
  if (dirty && image) {
    context.putImageData(image, 0, 0);
    dirty = false;
  }
  requestAnimationFrame(draw);
}

if (+status.dataset.size > 0) reset(+status.dataset.run, +status.dataset.size);
requestAnimationFrame(draw);
new WS4Redis({
  path: "gameoflife/watch/",
  onmessage,
  onstatechange: (state) => text("gol-socket", state),
});

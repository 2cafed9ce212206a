// The live figures page (templates/ws4redis/stats.html): polls the JSON view every 2 s and draws
// the last minutes it has seen with uPlot (uPlot.iife.min.js, loaded before this module), all
// workers together and each worker, and fills the table of totals.
//
// Rates come from each worker's own counters between two of its reports (updated_ms), not from
// this page's polls: a poll may see one report or two, a worker's report always covers its own
// interval. A counter that goes down (the worker restarted) gives no rate for that interval.
const URL = document.getElementById("ws4redis-stats-script").dataset.url;
const POLL = 2000;           // ms between polls (the workers report every 2 s)
const WINDOW = 5 * 60;       // seconds of history drawn
const HEIGHT = 190;          // px of each chart
const COLOURS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#495057"];

// Figures that are levels rather than counters: drawn as they are, summed over the workers.
const GAUGES = new Set(["sockets_open", "redis_connected", "outbox_high_water"]);

// The site-wide charts: [figure, label] per line.
const SITE_CHARTS = [
  { id: "sockets", title: "Sockets open", lines: [["sockets_open", "open"]] },
  { id: "deliveries", title: "Deliveries per second", lines: [["deliveries", "to sockets"]] },
  { id: "messages", title: "Messages per second", lines: [
    ["messages_in", "in from Redis"], ["messages_received", "in from clients"], ["messages_sent", "out to clients"]] },
  { id: "drops", title: "Drops and closes per second", lines: [
    ["dropped_messages", "messages dropped"], ["closed_slow_consumer", "4000 slow consumer"],
    ["closed_rate_limit", "1008 rate limit"], ["closed_too_big", "1009 too big"],
    ["closed_invalid_data", "1007 invalid UTF-8"], ["closed_protocol_error", "1002 protocol error"]] },
  { id: "redis", title: "Redis", lines: [
    ["redis_connected", "workers connected"], ["reconnects", "reconnects per second"]] },
];
// The per-worker charts: one line per worker.
const WORKER_CHARTS = [
  { id: "worker-sockets", title: "Sockets open, by worker", figure: "sockets_open" },
  { id: "worker-deliveries", title: "Deliveries per second, by worker", figure: "deliveries" },
];

const times = [];            // poll times, Unix seconds
const site = new Map();      // figure → values, one per poll (null: not known)
const workers = new Map();   // worker → figure → values, one per poll
const reports = new Map();   // worker → its last report
const rates = new Map();     // worker → figure → per second over its last interval
const charts = {};           // chart id → uPlot
window.ws4redisFigures = { times, site, workers, charts };  // for the browser tests and the console

function sum(values) {
  const known = values.filter((value) => value !== null && value !== undefined);
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
}

function push(series, key, value, length) {
  if (!series.has(key)) series.set(key, new Array(length - 1).fill(null));
  series.get(key).push(value);
}

// Each worker's rates over the interval between its last two reports.
function updateRates(data) {
  for (const [worker, figures] of Object.entries(data.workers)) {
    const previous = reports.get(worker);
    const at = figures.updated_ms ?? figures.updated * 1000;
    const before = previous && (previous.updated_ms ?? previous.updated * 1000);
    if (previous && at > before) {
      const own = new Map();
      for (const [name, value] of Object.entries(figures)) {
        const delta = value - (previous[name] ?? 0);
        if (!GAUGES.has(name)) own.set(name, delta >= 0 ? delta * 1000 / (at - before) : null);
      }
      rates.set(worker, own);
    }
    if (!previous || at > before) reports.set(worker, figures);
  }
  for (const worker of [...reports.keys()]) {
    if (!(worker in data.workers)) { reports.delete(worker); rates.delete(worker); }
  }
}

function value(worker, figures, name) {
  if (GAUGES.has(name)) return figures[name] ?? null;
  const own = rates.get(worker);
  return own ? own.get(name) ?? null : null;
}

function record(data) {
  updateRates(data);
  times.push(data.time);
  const names = new Set([...site.keys(), ...SITE_CHARTS.flatMap((chart) => chart.lines.map(([name]) => name)),
                         ...Object.keys(data.totals)]);
  for (const name of names) {
    push(site, name, sum(Object.entries(data.workers).map(([worker, figures]) => value(worker, figures, name))),
         times.length);
  }
  for (const [worker, figures] of Object.entries(data.workers)) {
    if (!workers.has(worker)) workers.set(worker, new Map());
    for (const { figure } of WORKER_CHARTS) push(workers.get(worker), figure, value(worker, figures, figure), times.length);
  }
  for (const [worker, series] of workers) {
    if (!(worker in data.workers)) for (const values of series.values()) values.push(null);
  }
  // Keep WINDOW seconds; a worker gone for as long is dropped.
  let old = 0;
  while (old < times.length && times[old] < data.time - WINDOW) old++;
  times.splice(0, old);
  for (const values of site.values()) values.splice(0, old);
  for (const [worker, series] of workers) {
    for (const values of series.values()) values.splice(0, old);
    if ([...series.values()].every((values) => values.every((v) => v === null))) workers.delete(worker);
  }
}

function workerLabel(name, all) {
  // "host:pid": the PID alone when every worker runs on one host.
  const hosts = new Set(all.map((worker) => worker.slice(0, worker.lastIndexOf(":"))));
  return hosts.size === 1 ? `PID ${name.slice(name.lastIndexOf(":") + 1)}` : name;
}

function format(number, decimals) {
  return number === null || number === undefined ? "–" : number.toLocaleString(undefined,
    { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Shows the newest values in the legend unless the pointer is over the chart.
function setData(chart, data) {
  chart.setData(data);
  if (chart.cursor.left === undefined || chart.cursor.left < 0) chart.setLegend({ idx: data[0].length - 1 });
}

// ``decimals``: one per line (0 for levels such as sockets open, 1 for rates).
function makeChart(id, title, labels, container, decimals) {
  const figure = document.createElement("figure");
  figure.className = "ws4r-chart";
  figure.id = `chart-${id}`;
  container.append(figure);
  const floor = decimals.some((d) => d > 0) ? 1 : 4;  // the y axis's least top: an idle chart stays readable
  const options = {
    title,
    width: Math.max(240, figure.clientWidth - 12),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(floor, max * 1.15)] } },
    axes: [{ space: 70, values: (u, ticks) => ticks.map(clock) }, { size: 56 }],
    series: [{ label: "time", value: (u, t) => (t === null ? "–" : clock(t)) }, ...labels.map((label, i) => ({
      label, stroke: COLOURS[i % COLOURS.length], width: 1.5, points: { show: false },
      value: (u, v) => format(v, decimals[i]),
    }))],
  };
  const chart = new uPlot(options, [[], ...labels.map(() => [])], figure);
  chart.labels = labels.join("\n");
  charts[id] = chart;
  return chart;
}

function draw() {
  const siteCharts = document.getElementById("stats-charts");
  for (const { id, title, lines } of SITE_CHARTS) {
    const chart = charts[id] || makeChart(id, title, lines.map(([, label]) => label), siteCharts,
                                          lines.map(([name]) => (GAUGES.has(name) ? 0 : 1)));
    setData(chart, [times.slice(), ...lines.map(([name]) => site.get(name).slice())]);
  }
  const perWorker = document.getElementById("stats-worker-charts");
  const names = [...workers.keys()].sort();
  const labels = names.map((name) => workerLabel(name, names));
  for (const { id, title, figure } of WORKER_CHARTS) {
    // A worker came or went: the chart is made again with one line per worker.
    if (charts[id] && charts[id].labels !== labels.join("\n")) {
      charts[id].root.parentElement.remove();
      charts[id].destroy();
      delete charts[id];
    }
    const chart = charts[id] || makeChart(id, title, labels, perWorker, labels.map(() => (GAUGES.has(figure) ? 0 : 1)));
    setData(chart, [times.slice(), ...names.map((name) => workers.get(name).get(figure).slice())]);
  }
  // Site-wide charts first, in the order above, then the per-worker ones.
  for (const { id } of WORKER_CHARTS) perWorker.append(charts[id].root.parentElement);
}

function fillTable(data) {
  for (const row of document.querySelectorAll("#stats-table tbody tr")) {
    const name = row.dataset.name;
    row.querySelector(".total").textContent = (data.totals[name] ?? 0).toLocaleString();
    const rate = GAUGES.has(name) ? null : site.get(name)?.at(-1);
    row.querySelector(".rate").textContent = format(rate ?? null, 1);
  }
  const list = document.getElementById("stats-workers");
  list.replaceChildren(...Object.entries(data.workers).map(([name, figures]) => {
    const item = document.createElement("li");
    item.textContent = `${name}: ${figures.sockets_open} sockets open, Redis ${figures.redis_connected ? "connected" : "DOWN"}`;
    return item;
  }));
}

async function refresh() {
  const status = document.getElementById("stats-status");
  try {
    const response = await fetch(URL, { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    record(data);
    draw();
    fillTable(data);
    status.textContent = `${Object.keys(data.workers).length} workers, updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `No figures: ${error.message}`;
  }
}

window.addEventListener("resize", () => {
  for (const chart of Object.values(charts)) {
    chart.setSize({ width: Math.max(240, chart.root.parentElement.clientWidth - 12), height: HEIGHT });
  }
});
refresh();
setInterval(refresh, POLL);

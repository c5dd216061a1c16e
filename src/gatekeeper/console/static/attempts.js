// The Attempts view: a live feed of blocked attempts (GET /admin/v1/attempts polled every
// 2 s with `since` = the newest seen; new ones are prepended, nothing reloads), charts of
// blocked sends per minute by reason and by upstream (bucketed here, drawn by uPlot), and
// the window's top blocked entries (GET /admin/v1/attempts/summary).
import { ApiError, get } from "./api.js";
import { byId, el, fill, localInputToIso, localTime, message, rowOf, table, when } from "./dom.js";
import { attemptCause } from "./number.js";
import { busy, showError } from "./ui.js";

const POLL_MS = 2000;
const DEFAULT_WINDOW_MS = 3600 * 1000;
const WINDOW_PAGES = 5; // at most 5,000 attempts loaded for a window
const POLL_PAGES = 10;
const MAX_KEPT = 20000;
const FEED_ROWS = 200;
const MAX_BUCKETS = 1440;
const SUMMARY_EVERY = 5; // polls
// The series colours; console.css has the same list as .swatch-0 ... .swatch-7.
const PALETTE = ["#0b57d0", "#b3261e", "#146c2e", "#8a4b00", "#6f2da8", "#00677f",
  "#5f6368", "#a8005e"];
const COLUMNS = ["When", "Number", "Upstream", "Channel", "Direction", "Blocked by",
  "Scopes", "Action"];

const state = {
  filters: null, // {scope, channel, direction, upstream, since, until} (ISO instants)
  attempts: [], // newest first
  seen: new Set(),
  timer: null,
  inFlight: false,
  paused: false,
  visible: false,
  polls: 0,
  serverUpstream: true, // false once the server refused `upstream=` (400)
  charts: {},
  generation: 0, // bumped by apply and reset: a reply to an older query is dropped
};

function readFilters() {
  const since = localInputToIso(byId("att-since").value)
    || new Date(Date.now() - DEFAULT_WINDOW_MS).toISOString();
  const until = localInputToIso(byId("att-until").value);
  if (until && Date.parse(until) <= Date.parse(since)) {
    throw new Error("'Since' must be before 'until'.");
  }
  return {
    scope: byId("att-scope").value.trim(),
    channel: byId("att-channel").value,
    direction: byId("att-direction").value,
    upstream: byId("att-upstream").value.trim(),
    since,
    until,
  };
}

/** Whether an attempt passes the filters the server could not apply. */
function keep(attempt) {
  const { upstream } = state.filters;
  return state.serverUpstream || !upstream || attempt.upstream === upstream;
}

function noteUpstream(error) {
  const note = byId("att-note");
  note.textContent = `The server refused the upstream filter (${error.describe()}); `
    + "the attempts are filtered by upstream in this browser instead.";
  note.hidden = false;
}

async function getAttempts(query) {
  const f = state.filters;
  const full = { ...query, scope: f.scope, channel: f.channel, direction: f.direction };
  if (f.upstream && state.serverUpstream) full.upstream = f.upstream;
  try {
    return await get("/attempts", full);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400 && full.upstream
        && error.code === "invalid_parameter" && /upstream/.test(error.message)) {
      state.serverUpstream = false;
      noteUpstream(error);
      delete full.upstream;
      return get("/attempts", full);
    }
    throw error;
  }
}

/** Every attempt of a query, newest first, following `next_cursor` for `pages` pages. */
async function fetchAttempts(query, pages) {
  const found = [];
  let cursor = "";
  for (let i = 0; i < pages; i += 1) {
    const page = await getAttempts({ ...query, cursor });
    found.push(...page.attempts);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return found;
}

function feedRow(attempt, fresh) {
  const cells = [when(attempt.at), attempt.number, attempt.upstream, attempt.channel,
    attempt.direction, attemptCause(attempt), (attempt.scopes || []).join(", "), attempt.action];
  return rowOf(cells, { "data-id": attempt.id, class: fresh ? "fresh" : null });
}

function renderFeed() {
  const shown = state.attempts.slice(0, FEED_ROWS);
  if (!shown.length) {
    fill(byId("feed"), message("No blocked attempt in this window yet; new ones appear here."));
    return;
  }
  const wrapper = table("Blocked attempts, newest first", COLUMNS, [], { id: "feed-table" });
  const body = wrapper.querySelector("tbody");
  for (const attempt of shown) body.appendChild(feedRow(attempt, false));
  fill(byId("feed"), wrapper);
}

function prependFeed(fresh) {
  const body = byId("feed").querySelector("tbody");
  if (!body) {
    renderFeed();
    return;
  }
  const rows = document.createDocumentFragment();
  for (const attempt of fresh) rows.appendChild(feedRow(attempt, true));
  body.insertBefore(rows, body.firstChild);
  while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
}

function reasonOf(attempt) {
  const kind = attempt.rule && attempt.rule.kind;
  if (kind && kind !== "list") return kind;
  return attempt.matched || kind === "list" ? "list entry" : "unknown";
}

function chartWidth(holder) {
  return Math.max(260, Math.floor(holder.clientWidth || 600));
}

function drawChart(name, xs, step, keyOf) {
  const counts = new Map();
  for (const attempt of state.attempts) {
    const slot = Math.floor(Date.parse(attempt.at) / 1000 / step) * step;
    const index = (slot - xs[0]) / step;
    if (!(index >= 0 && index < xs.length)) continue;
    const key = keyOf(attempt);
    if (!counts.has(key)) counts.set(key, new Array(xs.length).fill(0));
    counts.get(key)[index] += 1;
  }
  const keys = [...counts.keys()].sort();
  const totals = keys.map((key, i) => [
    el("span", { class: `swatch swatch-${i % PALETTE.length}`, "aria-hidden": "true" }),
    key, String(counts.get(key).reduce((a, b) => a + b, 0))]);
  const label = name === "reason" ? "Reason" : "Upstream";
  fill(byId(`totals-${name}`), totals.length
    ? table(`Blocked in the window by ${name}`, ["Colour", label, "Blocked"], totals)
    : message("Nothing blocked in the window."));
  const holder = byId(`chart-${name}`);
  if (typeof window.uPlot !== "function") {
    fill(holder, message("Charts are unavailable: uPlot did not load (make console-assets).", "error"));
    return;
  }
  const data = [xs, ...keys.map((key) => counts.get(key))];
  const signature = `${step}|${xs[0]}|${keys.join("\u0000")}`;
  const chart = state.charts[name];
  if (chart && chart.signature === signature) {
    chart.plot.setData(data);
    return;
  }
  if (chart) chart.plot.destroy();
  holder.replaceChildren();
  const unit = step === 60 ? "blocked / min" : `blocked / ${step / 60} min`;
  const axis = { stroke: "#1a1a1a", grid: { stroke: "#d0d0d0", width: 1 },
    ticks: { stroke: "#d0d0d0", width: 1 } };
  const plot = new window.uPlot({
    width: chartWidth(holder),
    height: 200,
    legend: { show: false },
    cursor: { show: true },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{}, ...keys.map((key, i) => ({
      label: key,
      stroke: PALETTE[i % PALETTE.length],
      width: 2,
      points: { show: true, size: 5 },
    }))],
    axes: [axis, { ...axis, label: unit }],
  }, data, holder);
  state.charts[name] = { plot, signature };
}

function renderCharts() {
  const f = state.filters;
  const start = Date.parse(f.since);
  const end = f.until ? Date.parse(f.until) : Date.now();
  const minutes = Math.max(1, (end - start) / 60000);
  const step = minutes > MAX_BUCKETS ? 60 * Math.ceil(minutes / MAX_BUCKETS) : 60;
  const first = Math.floor(start / 1000 / step) * step;
  const last = Math.floor(end / 1000 / step) * step;
  const xs = [];
  for (let t = first; t <= last; t += step) xs.push(t);
  drawChart("reason", xs, step, reasonOf);
  drawChart("upstream", xs, step, (a) => a.upstream || "(none)");
}

function topTable(caption, rows) {
  return rows.length ? table(caption, ["Entry", "Scope", "List", "Blocked"],
    rows.map((e) => [e.entry, e.scope, e.list, String(e.count)]))
    : message(`${caption}: none.`);
}

async function loadSummary(generation) {
  const f = state.filters;
  const query = { since: f.since, until: f.until, scope: f.scope };
  if (f.upstream && state.serverUpstream) query.upstream = f.upstream;
  let summary;
  try {
    summary = await get("/attempts/summary", query);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 400 && query.upstream
        && error.code === "invalid_parameter")) throw error;
    delete query.upstream; // a server without the upstream filter: counts of every upstream
    summary = await get("/attempts/summary", query);
  }
  if (generation !== state.generation) return;
  const entries = summary.by_entry.filter((e) => e.entry);
  const numbers = entries.filter((e) => !e.entry.endsWith("*")).slice(0, 10);
  const prefixes = entries.filter((e) => e.entry.endsWith("*")).slice(0, 10);
  const destinations = new Map();
  for (const attempt of state.attempts) {
    destinations.set(attempt.number, (destinations.get(attempt.number) || 0) + 1);
  }
  const topDestinations = [...destinations.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, 10);
  const counts = [];
  for (const [group, values] of [["Channel", summary.by_channel], ["Direction", summary.by_direction],
    ["Action", summary.by_action], ["Scope", summary.by_scope]]) {
    for (const [value, count] of Object.entries(values)) counts.push([group, value, String(count)]);
  }
  fill(byId("summary"),
    el("p", {}, `${summary.total} blocked from `, when(summary.since), " to ", when(summary.until),
      f.scope ? ` in scope ${f.scope}` : "", query.upstream ? ` through ${query.upstream}` : "",
      `. These counts follow the ${query.upstream ? "time, scope and upstream" : "time and scope"} `
      + "filters only."),
    topTable("Top blocked numbers (exact entries)", numbers),
    topTable("Top blocked prefixes", prefixes),
    topDestinations.length
      ? table("Most blocked destinations (the attempts loaded here, all filters)",
        ["Number", "Blocked"], topDestinations.map(([n, c]) => [n, String(c)]))
      : message("Most blocked destinations: none."),
    counts.length ? table("Counts by channel, direction, action and scope", ["Of", "Value", "Blocked"], counts)
      : message("No count in this window."));
}

function add(found) {
  const fresh = found.filter((a) => !state.seen.has(a.id) && keep(a));
  for (const attempt of fresh) state.seen.add(attempt.id);
  state.attempts = [...fresh, ...state.attempts];
  state.attempts.sort((a, b) => (a.id === b.id ? 0 : idAfter(a.id, b.id) ? -1 : 1));
  while (state.attempts.length > MAX_KEPT) state.seen.delete(state.attempts.pop().id);
  return fresh;
}

/** Stream ids ("millis-seq") compared as numbers: true when `a` is newer than `b`. */
function idAfter(a, b) {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am > bm || (am === bm && as > bs);
}

function setStatus(text) {
  byId("feed-status").textContent = text;
}

async function apply() {
  stop();
  state.generation += 1;
  const generation = state.generation;
  state.filters = readFilters();
  state.attempts = [];
  state.seen = new Set();
  state.serverUpstream = true;
  state.polls = 0;
  byId("att-note").hidden = true;
  const found = await fetchAttempts({ since: state.filters.since, until: state.filters.until,
    limit: 1000 }, WINDOW_PAGES);
  if (generation !== state.generation) return;
  add(found);
  renderFeed();
  renderCharts();
  const live = state.filters.until ? "" : state.paused ? " Live feed paused."
    : " New ones appear as they happen (checked every 2 s).";
  const count = state.attempts.length;
  setStatus(`${count} blocked attempt${count === 1 ? "" : "s"} since `
    + `${localTime(new Date(state.filters.since))}.${live}`);
  await loadSummary(generation);
  schedule();
}

async function poll(generation) {
  const f = state.filters;
  const newest = state.attempts[0];
  const since = newest ? newest.at : f.since;
  const found = await fetchAttempts({ since, limit: 100 }, POLL_PAGES);
  if (generation !== state.generation) return;
  const fresh = add(found);
  state.polls += 1;
  if (fresh.length) {
    fresh.sort((a, b) => (idAfter(a.id, b.id) ? -1 : 1));
    prependFeed(fresh);
    setStatus(`${fresh.length} new blocked attempt${fresh.length === 1 ? "" : "s"} `
      + `(newest ${localTime(new Date(fresh[0].at))}); ${state.attempts.length} in the window.`);
  }
  renderCharts();
  if (fresh.length || state.polls % SUMMARY_EVERY === 0) await loadSummary(generation);
}

function stop() {
  clearTimeout(state.timer);
  state.timer = null;
}

function schedule() {
  stop();
  if (!state.visible || state.paused || !state.filters || state.filters.until) return;
  const generation = state.generation;
  state.timer = setTimeout(async () => {
    state.timer = null;
    if (state.inFlight) return;
    state.inFlight = true;
    try {
      await poll(generation);
    } catch (error) {
      if (generation === state.generation) showError(error, "Live feed");
    } finally {
      state.inFlight = false;
    }
    if (generation === state.generation) schedule();
  }, POLL_MS);
}

function resizeCharts() {
  for (const name of Object.keys(state.charts)) {
    const { plot } = state.charts[name];
    plot.setSize({ width: chartWidth(byId(`chart-${name}`)), height: 200 });
  }
}

export function setup() {
  byId("attempts-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, "Could not read the attempts", apply);
  });
  const pause = byId("att-pause");
  pause.addEventListener("click", () => {
    state.paused = !state.paused;
    pause.setAttribute("aria-pressed", String(state.paused));
    pause.textContent = state.paused ? "Resume live feed" : "Pause live feed";
    setStatus(state.paused ? "Live feed paused." : "Live feed resumed.");
    schedule();
  });
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(resizeCharts, 150);
  });
}

export function show() {
  state.visible = true;
  if (!state.filters) busy(null, "Could not read the attempts", apply);
  else {
    resizeCharts();
    schedule();
  }
}

export function hide() {
  state.visible = false;
  stop();
}

export function reset() {
  stop();
  state.generation += 1;
  state.filters = null;
  state.attempts = [];
  state.seen = new Set();
  state.paused = false;
  state.serverUpstream = true;
  for (const { plot } of Object.values(state.charts)) plot.destroy();
  state.charts = {};
  byId("attempts-form").reset();
  const pause = byId("att-pause");
  pause.setAttribute("aria-pressed", "false");
  pause.textContent = "Pause live feed";
  byId("att-note").hidden = true;
  for (const id of ["feed", "summary", "chart-reason", "chart-upstream", "totals-reason",
    "totals-upstream"]) {
    byId(id).replaceChildren();
  }
  setStatus("");
}

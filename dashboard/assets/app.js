// The dashboard's page: one EventSource, frames applied in place. Rows are
// created once per worker and only their changed cells are written, so
// that a table of thousands of workers costs little per update.
"use strict";

const $ = (id) => document.getElementById(id);
const token = document.querySelector('meta[name="bilancia-token"]').content;
const rows = new Map(); // id -> {el, td: {...}, d: row array}
const tbody = $("worker-rows");
const STATES = ["up", "draining", "down", "ejected"];
const MAX_POINTS = 600;
let points = [];     // [t, rate, errors, p50, p99]
let clock = 0;       // server time minus local time, ms
let interval = 1000; // of the updates, ms
let self = "";
let control = false;

// A row travels as [id, state, reason, inflight, served, forwarded, errors, ejections, heartbeat, drained,
// latency ms, error rate %, share %, verdict]: the last four are what the choice of worker reads of it.
const ID = 0, STATE = 1, REASON = 2, INFLIGHT = 3, SERVED = 4, FORWARDED = 5, ERRORS = 6, EJECTIONS = 7, HB = 8, DRAINED = 9;
const LATENCY = 10, ERRRATE = 11, SHARE = 12, VERDICT = 13;

const numbers = new Intl.NumberFormat("en-US"); // toLocaleString builds one per call: slow by the thousand
const fmt = (n) => numbers.format(n);

function setText(el, s) {
  if (el.textContent !== s) el.textContent = s;
}

function setClass(el, cls, on) {
  if (el.classList.contains(cls) !== on) el.classList.toggle(cls, on);
}

function newRow(id) {
  const el = document.createElement("div");
  el.className = "row";
  el.setAttribute("role", "row");
  el.dataset.id = id;
  const td = {};
  for (const k of ["id", "state", "inflight", "served", "forwarded", "errors", "ejections", "latency", "errrate", "share", "hb", "act"]) {
    td[k] = document.createElement("div");
    td[k].className = k;
    td[k].setAttribute("role", "cell");
    el.appendChild(td[k]);
  }
  td.id.textContent = id;
  td.btn = document.createElement("button");
  td.btn.type = "button";
  td.act.appendChild(td.btn);
  return { el, td, d: null };
}

function updateRow(r, d, f) {
  const old = r.d || [];
  r.d = d;
  if (old[STATE] !== d[STATE] || old[REASON] !== d[REASON] || old[DRAINED] !== d[DRAINED]) {
    r.el.dataset.state = d[STATE];
    r.el.dataset.drained = d[DRAINED] ? "yes" : "no";
    r.td.state.textContent = d[STATE];
    if (d[DRAINED]) {
      const s = document.createElement("span");
      s.className = "badge";
      s.textContent = "drained";
      r.td.state.appendChild(s);
    }
    if (d[REASON] && d[STATE] !== "up") { // an up worker's reason is only how it came up
      const s = document.createElement("small");
      s.textContent = d[REASON];
      r.td.state.appendChild(s);
    }
    const op = d[DRAINED] ? "resume" : "drain";
    r.td.btn.textContent = op;
    r.td.btn.className = op;
    r.td.btn.dataset.op = op;
    r.td.btn.disabled = !control;
    r.td.btn.hidden = !control;
  }
  if (old[INFLIGHT] !== d[INFLIGHT]) r.td.inflight.textContent = fmt(d[INFLIGHT]);
  if (old[SERVED] !== d[SERVED]) r.td.served.textContent = fmt(d[SERVED]);
  if (old[FORWARDED] !== d[FORWARDED]) r.td.forwarded.textContent = fmt(d[FORWARDED]);
  if (old[ERRORS] !== d[ERRORS]) {
    r.td.errors.textContent = fmt(d[ERRORS]);
    setClass(r.td.errors, "bad", d[ERRORS] > 0);
  }
  if (old[EJECTIONS] !== d[EJECTIONS]) r.td.ejections.textContent = fmt(d[EJECTIONS]);
  if (old[LATENCY] !== d[LATENCY]) r.td.latency.textContent = d[LATENCY] > 0 ? d[LATENCY].toFixed(1) + " ms" : "-";
  if (old[ERRRATE] !== d[ERRRATE]) {
    r.td.errrate.textContent = d[ERRRATE] + " %";
    setClass(r.td.errrate, "bad", d[ERRRATE] > 10);
  }
  if (old[SHARE] !== d[SHARE] || old[VERDICT] !== d[VERDICT]) {
    // Why the dispatcher gives it less than its turns: slow, failing, saturated, warming.
    r.td.share.textContent = !d[VERDICT] ? "-" : d[SHARE] + " %" + (d[VERDICT] !== "ok" ? " " + d[VERDICT] : "");
    setClass(r.td.share, "bad", d[VERDICT] === "slow" || d[VERDICT] === "failing" || d[VERDICT] === "saturated");
  }
  filterRow(r, f);
}

// Heartbeat ages move every second for every row: only cells whose text
// or colour changes are written.
function updateAges() {
  const now = Date.now() + clock;
  for (const r of rows.values()) {
    const hb = r.d[HB];
    const age = hb ? Math.max(0, now - hb) : -1;
    setText(r.td.hb, age < 0 ? "never" : age < 10000 ? (age / 1000).toFixed(1) + " s" : Math.round(age / 1000) + " s");
    setClass(r.td.hb, "late", age > 2 * interval && age <= 5 * interval);
    setClass(r.td.hb, "old", age < 0 || age > 5 * interval);
  }
}

// filters reads the filter inputs, once per frame or input.
function filters() {
  return { q: $("filter").value.trim().toLowerCase(), st: $("state-filter").value };
}

function filterRow(r, { q, st }) {
  let show = !q || r.d[ID].toLowerCase().includes(q) || r.d[STATE].includes(q) || (r.d[DRAINED] && "drained".includes(q)) ||
    (r.d[VERDICT] && r.d[VERDICT] !== "ok" && r.d[VERDICT].includes(q));
  if (st === "!up") show = show && (r.d[STATE] !== "up" || r.d[DRAINED]);
  else if (st === "drained") show = show && r.d[DRAINED];
  else if (st) show = show && r.d[STATE] === st;
  if (r.el.hidden === show) r.el.hidden = !show;
}

function sortKey(r, by) {
  switch (by) {
    case "state": return STATES.indexOf(r.d[STATE]) + (r.d[DRAINED] ? 0.5 : 0);
    case "inflight": return -r.d[INFLIGHT];
    case "served": return -r.d[SERVED];
    case "errors": return -r.d[ERRORS];
    case "latency": return -r.d[LATENCY];
    case "share": return r.d[VERDICT] ? r.d[SHARE] : 101;
    case "hb": return r.d[HB] || 0;
  }
  return 0;
}

// order puts the rows in the chosen order, moving nodes only when the
// order changed.
function order() {
  const by = $("sort").value;
  const all = [...rows.values()];
  all.sort((a, b) => {
    const ka = sortKey(a, by), kb = sortKey(b, by);
    if (ka !== kb) return ka < kb ? -1 : 1;
    return a.d[ID] < b.d[ID] ? -1 : a.d[ID] > b.d[ID] ? 1 : 0;
  });
  let same = tbody.children.length === all.length;
  for (let i = 0; same && i < all.length; i++) same = tbody.children[i] === all[i].el;
  if (same) return;
  const frag = document.createDocumentFragment();
  for (const r of all) frag.appendChild(r.el);
  tbody.appendChild(frag);
}

function apply(f) {
  clock = f.now - Date.now();
  const d = f.dispatcher;
  interval = d.interval_ms || 1000;
  self = d.id;
  control = d.control;
  setText($("disp-id"), "dispatcher " + d.id);
  setText($("disp-meta"), d.strategy + " · v" + d.version + " · up " + since(d.started_at));
  setText($("t-total"), fmt(d.total));
  for (const s of STATES) setText($("t-" + s), fmt((d.counts && d.counts[s]) || 0));
  setText($("t-drained"), fmt(d.drained || 0));
  setText($("t-inflight"), fmt(d.inflight));
  setText($("t-served"), fmt(d.served));
  setText($("t-failed"), fmt(d.failed));
  setText($("lat-note"), d.latency ? "" : "(no histogram)");
  if (f.full) {
    const keep = new Set((f.rows || []).map((r) => r[ID]));
    for (const [id, r] of rows) if (!keep.has(id)) { r.el.remove(); rows.delete(id); }
    points = [];
  }
  for (const id of f.gone || []) {
    const r = rows.get(id);
    if (r) { r.el.remove(); rows.delete(id); }
  }
  const fl = filters();
  let moved = f.full || (f.gone || []).length > 0;
  for (const data of f.rows || []) {
    let r = rows.get(data[ID]);
    if (!r) { r = newRow(data[ID]); rows.set(data[ID], r); tbody.appendChild(r.el); moved = true; }
    updateRow(r, data, fl);
  }
  setText($("shown"), f.shown < d.total ? `(showing ${fmt(f.shown)} of ${fmt(d.total)}: those not up or drained first)` : "");
  if (moved || $("sort").value !== "id") order();
  updateAges();
  points = points.concat(f.points || []).slice(-MAX_POINTS);
  drawCharts();
  cluster(f.cluster || []);
}

function since(ms) {
  const s = Math.max(0, Math.round((Date.now() + clock - ms) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function cluster(peers) {
  const tb = document.querySelector("#cluster tbody");
  const list = peers.length ? peers : [];
  while (tb.children.length > list.length) tb.lastChild.remove();
  while (tb.children.length < list.length) {
    const tr = document.createElement("tr");
    for (let i = 0; i < 8; i++) tr.appendChild(document.createElement("td"));
    tb.appendChild(tr);
  }
  list.forEach((p, i) => {
    const tr = tb.children[i];
    const cells = [p.id, `${fmt(p.up)} / ${fmt(p.total)}`, fmt(p.inflight), fmt(p.served), fmt(p.failed), p.strategy, p.version, since(p.seen) + " ago"];
    cells.forEach((c, j) => setText(tr.children[j], c));
    tr.dataset.id = p.id;
    setClass(tr, "self", p.id === self);
  });
  setText($("cluster-note"), peers.length ? "" : "only this dispatcher is known (no answers on <prefix>.status yet)");
}

// A line chart on a canvas: series of [values, colour], time on x.
function chart(canvas, series, unit) {
  // The size comes from the canvas's attributes, not from layout: reading
  // clientWidth would force the browser to lay out the whole table first.
  const dpr = window.devicePixelRatio || 1;
  if (!canvas.dataset.w) { canvas.dataset.w = canvas.width; canvas.dataset.h = canvas.height; }
  const w = +canvas.dataset.w, h = +canvas.dataset.h;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 48, bottom = h - 18, top = 8, right = w - 6;
  let max = 0;
  for (const [vals] of series) for (const v of vals) if (v != null && v > max) max = v;
  max = niceCeil(max || 1);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667";
  g.strokeStyle = "#dde";
  g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = bottom - (bottom - top) * i / 2;
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
    g.fillText(short(max * i / 2) + unit, 2, y + 4);
  }
  const n = points.length;
  const span = n > 1 ? points[n - 1][0] - points[0][0] : 1;
  g.fillText(n > 1 ? "−" + since(Date.now() + clock - span) : "", left, h - 4);
  g.fillText("now", right - 22, h - 4);
  const x = (i) => left + (right - left) * (n > 1 ? (points[i][0] - points[0][0]) / span : 1);
  for (const [vals, colour] of series) {
    g.strokeStyle = colour;
    g.lineWidth = 1.5;
    g.beginPath();
    let pen = false;
    vals.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      const y = bottom - (bottom - top) * v / max;
      if (pen) g.lineTo(x(i), y); else g.moveTo(x(i), y);
      pen = true;
    });
    g.stroke();
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function short(v) {
  if (v >= 1e6) return +(v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return +(v / 1e3).toFixed(1) + "k";
  return +v.toFixed(v < 10 ? 2 : 0) + "";
}

function drawCharts() {
  const col = (k) => points.map((p) => p[k]);
  chart($("chart-rate"), [[col(1), "#2b6cb0"], [col(2), "#c53030"]], "");
  chart($("chart-latency"), [[col(3), "#2b6cb0"], [col(4), "#b7791f"]], "");
}

function message(text, bad) {
  const m = $("msg");
  m.textContent = text;
  setClass(m, "err", !!bad);
}

tbody.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-op]");
  if (!b) return;
  const id = b.closest(".row").dataset.id, op = b.dataset.op;
  b.disabled = true;
  try {
    const res = await fetch(`api/workers/${encodeURIComponent(id)}/${op}`, { method: "POST", headers: { "X-Bilancia-Token": token } });
    const body = await res.json().catch(() => ({}));
    if (res.ok) message(`${op} ${id}: done`);
    else message(`${op} ${id}: ${body.error || res.status}`, true);
  } catch (err) {
    message(`${op} ${id}: ${err}`, true);
  }
  b.disabled = !control;
});

for (const id of ["filter", "state-filter"]) {
  $(id).addEventListener("input", () => {
    const f = filters();
    rows.forEach((r) => filterRow(r, f));
  });
}
$("sort").addEventListener("change", order);

const es = new EventSource("events");
es.onopen = () => { setText($("conn"), "live"); $("conn").className = "conn conn-live"; };
es.onerror = () => { setText($("conn"), "reconnecting"); $("conn").className = "conn conn-wait"; };
// The cost of applying each frame and laying the page out again, for the
// tests and the curious (window.bilancia in the browser's console).
window.bilancia = { frames: 0, lastMs: 0, maxMs: 0 };
es.onmessage = (e) => {
  const t0 = performance.now();
  apply(JSON.parse(e.data));
  void document.body.offsetHeight; // the layout the frame causes, counted too
  const b = window.bilancia, ms = performance.now() - t0;
  b.frames++;
  b.lastMs = ms;
  if (b.frames > 1) b.maxMs = Math.max(b.maxMs, ms); // the first builds the rows
};

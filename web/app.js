// edgeclf web page: loads an artifact folder's manifest.json (schema edgeclf.manifest/2) and ONNX files over HTTP
// and runs them with onnxruntime-web. Everything (features, classes, input and output names, batch sizes, domain)
// comes from the manifest; the task list from /artifacts/index.json and the palette from /palette.json, both made
// by `edgeclf serve-web`. Rows are chunked to the exported fixed batch sizes and the tail padded, exactly like the
// Python runtime. Two features: the decision regions, click a point. More: one input per feature (a list of the
// vocabulary for a category column), live probabilities. A multi-label model: one bar per label with its
// threshold marked, and each label's decision on or off (none on is an answer: "no label").
"use strict";

const SCHEMA = "edgeclf.manifest/2";
const FALLBACK_COLORS = ["#4C72B0"]; // only if /palette.json cannot be read: one colour still draws a page
const { plan } = window.edgeclfPlan; // plan.js: the chunk plan, shared with examples/node/predict.mjs
const { encodeRows, decide } = window.edgeclfRows; // rows.js: values in, decisions out, shared with it too
const GRID = 100; // decision regions: GRID x GRID cells

ort.env.wasm.wasmPaths = new URL("/ort/", window.location.href).href; // absolute: a relative path fails
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation; one is plenty for these models

const state = {
  task: null, manifest: null, sessions: new Map(), ready: null, colors: FALLBACK_COLORS, tasks: [],
  last: null, // F > 2: {row, probs, answer} on show (full precision; answer: decide()'s)
  queue: Promise.resolve(), // runs on the sessions, one after another
  generation: 0, // F > 2: the newest input edit; older results are not shown
};

const $ = (id) => document.getElementById(id);
const color = (i) => state.colors[i % state.colors.length];
const names = (m) => m.features.map((f) => f.name);
const multilabel = (m) => m.kind === "multilabel";
// the decision-regions plot: two number features (a category's axis would hold no value between its indices)
const plotted = (m) => m.features.length === 2 && !m.features.some((f) => Array.isArray(f.categories));

function fail(message) {
  $("error").textContent = message;
  $("status").textContent = "";
  state.ready = "error";
  throw new Error(message);
}

function validate(m, url) {
  if (!m || m.schema !== SCHEMA) fail(`${url}: not an edgeclf manifest (schema ${m && m.schema}, expected ${SCHEMA})`);
  for (const key of ["task", "classes", "features", "signature", "files", "domain"]) {
    if (!(key in m)) fail(`${url}: missing key "${key}"`);
  }
  if (!Array.isArray(m.features) || !m.features.length || !m.features.every((f) => f && typeof f.name === "string")) {
    fail(`${url}: "features" must be a list of {name, dtype, min, max, mean, std}`);
  }
  const sig = m.signature;
  if (typeof sig.input !== "string" || !sig.outputs || !sig.outputs.probabilities ||
      typeof sig.outputs.probabilities.name !== "string") {
    fail(`${url}: "signature" needs "input" and "outputs.probabilities.name"`);
  }
  const f = m.features.length;
  if (!Array.isArray(m.domain.low) || !Array.isArray(m.domain.high) || m.domain.low.length !== f ||
      m.domain.high.length !== f) {
    fail(`${url}: "domain" needs "low" and "high" with ${f} numbers each`);
  }
  if (multilabel(m) && !(Array.isArray(m.thresholds) && m.thresholds.length === m.classes.length &&
      m.thresholds.every((t) => Number.isFinite(t) && t >= 0 && t <= 1))) {
    fail(`${url}: a multilabel manifest needs "thresholds", one probability in [0, 1] per label`);
  }
  for (const feat of m.features.filter((x) => "categories" in x)) {
    if (!Array.isArray(feat.categories) || !feat.categories.every((c) => typeof c === "string")) {
      fail(`${url}: feature "${feat.name}": "categories" must be a list of strings`);
    }
  }
  const onnx = m.files.filter((x) => x.format === "onnx");
  if (!onnx.length) fail(`${url}: lists no ONNX file`);
  for (const x of onnx) {
    if (!/^[\w.-]+$/.test(x.path)) fail(`${url}: file path ${JSON.stringify(x.path)} must stay inside the folder`);
  }
  return onnx.sort((a, b) => a.batch_size - b.batch_size);
}

async function loadTask(task) {
  state.ready = null;
  state.last = null;
  $("error").textContent = "";
  $("status").textContent = `loading ${task}…`;
  const base = `/artifacts/${encodeURIComponent(task)}/`;
  let manifest;
  try {
    const res = await fetch(base + "manifest.json");
    if (!res.ok) fail(`no artifact for "${task}": ${base}manifest.json answered ${res.status}; run \`make run\``);
    manifest = await res.json();
  } catch (e) {
    if (state.ready === "error") throw e;
    fail(`cannot read ${base}manifest.json: ${e.message}`);
  }
  const files = validate(manifest, base + "manifest.json");
  const sessions = new Map();
  for (const f of files) {
    try {
      sessions.set(f.batch_size, await ort.InferenceSession.create(base + f.path, { executionProviders: ["wasm"] }));
    } catch (e) {
      fail(`${base}${f.path} is not a loadable ONNX model: ${e.message}`);
    }
  }
  Object.assign(state, { task, manifest, sessions });
  describe(manifest);
  const twoD = plotted(manifest);
  $("plot-box").hidden = !twoD;
  $("inputs-box").hidden = twoD;
  if (twoD) {
    await paintRegions();
  } else {
    buildInputs(manifest);
    await showLive();
  }
  const outputs = `${manifest.classes.length} ${multilabel(manifest) ? "labels" : "classes"}`;
  $("status").textContent = `${task}: ${manifest.features.length} features, ${outputs}, ` +
    `batch sizes ${[...sessions.keys()].join(", ")}`;
  state.ready = task;
  return task;
}

// points: array of rows (numbers; a category's text or index; NaN or null where the model fills empty cells)
// -> array of probability rows (numbers), in input order.
function predictProba(points) {
  const run = state.queue.then(() => predictNow(points));
  state.queue = run.catch(() => {}); // one failed call does not block the next
  return run;
}

async function predictNow(points) {
  const m = state.manifest;
  const f = m.features.length;
  const out_ = m.signature.outputs.probabilities;
  const k = out_.columns || m.classes.length;
  const rows = encodeRows(points, m); // throws the one-line message naming the bad row, column and value
  const out = new Array(points.length);
  const sizes = [...state.sessions.keys()];
  for (const [start, stop, batch] of plan(points.length, sizes)) {
    const data = new Float32Array(batch * f); // zero padding beyond stop - start
    for (let r = start; r < stop; r++) data.set(rows[r], (r - start) * f);
    const feeds = { [m.signature.input]: new ort.Tensor("float32", data, [batch, f]) };
    const result = await state.sessions.get(batch).run(feeds, [out_.name]);
    const probs = result[out_.name].data;
    for (let r = start; r < stop; r++) out[r] = Array.from(probs.subarray((r - start) * k, (r - start + 1) * k));
  }
  return out;
}

// points -> each row's decision: a class name, or for a multi-label model one boolean per label.
async function predict(points) {
  return (await predictProba(points)).map((p) => decide(state.manifest, p));
}

// ---- two features: decision regions ------------------------------------------------------------------------

function toData(px, py, canvas) {
  const { low, high } = state.manifest.domain;
  return [low[0] + (px / canvas.width) * (high[0] - low[0]), high[1] - (py / canvas.height) * (high[1] - low[1])];
}

// A cell's colour and strength: the most probable class (above chance), or for a multi-label model the most probable
// label that is on (a cell with no label on stays blank). null: blank.
function shade(m, p) {
  if (!multilabel(m)) {
    const c = p.indexOf(Math.max(...p));
    return [c, 0.15 + 0.75 * (p[c] - 1 / p.length) / (1 - 1 / p.length)];
  }
  const on = decide(m, p);
  const c = p.reduce((best, v, i) => (on[i] && (best < 0 || v > p[best]) ? i : best), -1);
  return c < 0 ? null : [c, 0.15 + 0.75 * p[c]];
}

async function paintRegions() {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  const cell = canvas.width / GRID;
  const centres = [];
  for (let j = 0; j < GRID; j++) {
    for (let i = 0; i < GRID; i++) centres.push(toData((i + 0.5) * cell, (j + 0.5) * cell, canvas));
  }
  const probs = await predictProba(centres);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  probs.forEach((p, idx) => {
    const s = shade(state.manifest, p);
    if (!s) return;
    ctx.globalAlpha = s[1];
    ctx.fillStyle = color(s[0]);
    ctx.fillRect((idx % GRID) * cell, Math.floor(idx / GRID) * cell, Math.ceil(cell), Math.ceil(cell));
  });
  ctx.globalAlpha = 1;
}

// The answer in words: the class, or the labels that are on ("no label" when none is).
function answerText(m, p) {
  const a = decide(m, p);
  if (!multilabel(m)) return a;
  const on = m.classes.filter((_, i) => a[i]);
  return on.length ? on.join(", ") : "no label";
}

function bar(p, i) {
  return `<span class="bar" style="width:${(100 * p).toFixed(1)}%;background:${color(i)}"></span>`;
}

function probabilityTable(m, p) {
  if (multilabel(m)) return labelTable(m, p);
  const rows = m.classes.map((c, i) =>
    `<tr><td><span class="swatch" style="background:${color(i)}"></span>${escape(c)}</td>` +
    `<td class="num">${p[i].toFixed(6)}</td><td class="barcell">${bar(p[i], i)}</td></tr>`).join("");
  return `<table><tr><th>class</th><th>probability</th><th class="barcol"></th></tr>${rows}</table>`;
}

// One row per label: its probability, a bar with the label's threshold marked on it, and the decision. The labels
// are independent: the probabilities need not sum to 1.
function labelTable(m, p) {
  const on = decide(m, p);
  const rows = m.classes.map((c, i) => {
    const t = m.thresholds[i];
    return `<tr class="label-row"><td><span class="swatch" style="background:${color(i)}"></span>${escape(c)}</td>` +
      `<td class="num">${p[i].toFixed(6)}</td>` +
      `<td class="barcell"><span class="track">${bar(p[i], i)}` +
      `<span class="mark" style="left:${(100 * t).toFixed(1)}%" title="threshold ${t}"></span></span></td>` +
      `<td class="num">${t}</td><td class="decision ${on[i] ? "on" : "off"}">${on[i] ? "on" : "off"}</td></tr>`;
  }).join("");
  return `<table><tr><th>label</th><th>probability</th><th class="barcol">P and threshold</th><th>threshold</th>` +
    `<th>decision</th></tr>${rows}</table>`;
}

async function classifyClick(event) {
  if (state.ready !== state.task || !plotted(state.manifest)) return;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const point = toData(event.clientX - rect.left, event.clientY - rect.top, canvas);
  const [p] = await predictProba([point]);
  const m = state.manifest;
  $("point").innerHTML =
    `<p>(${point.map((v) => v.toFixed(3)).join(", ")}) → <strong>${escape(answerText(m, p))}</strong></p>` +
    probabilityTable(m, p);
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#000";
  ctx.beginPath();
  ctx.arc(event.clientX - rect.left, event.clientY - rect.top, 4, 0, 2 * Math.PI);
  ctx.stroke();
}

// ---- more features: one input each, live probabilities ------------------------------------------------------

function buildInputs(m) {
  const form = $("inputs");
  form.innerHTML = "";
  m.features.forEach((f, i) => {
    const label = document.createElement("label");
    label.className = "feature";
    const span = document.createElement("span");
    span.textContent = f.name;
    const input = Array.isArray(f.categories) ? categoryInput(f) : numberInput(f);
    input.id = `x${i}`;
    input.name = f.name;
    input.dataset.index = String(i);
    label.append(span, input);
    form.append(label);
  });
  $("point").innerHTML = "";
}

// A category column: its vocabulary, each option's value its index (what the graph takes); the first is chosen.
function categoryInput(f) {
  const select = document.createElement("select");
  f.categories.forEach((c, k) => select.add(new Option(c, String(k))));
  select.title = `${f.name}: one of the ${f.categories.length} values seen in training`;
  return select;
}

// A number: prefilled with the training mean (a test-like row); a column the model fills may be left empty.
function numberInput(f) {
  const input = document.createElement("input");
  input.type = "number";
  input.step = "any";
  if (Number.isFinite(f.mean)) input.value = String(f.mean);
  const filled = Number.isFinite(f.fill);
  if (Number.isFinite(f.min) && Number.isFinite(f.max)) {
    input.placeholder = `${f.min} … ${f.max}`;
    input.title = `${f.name}: training range ${f.min} … ${f.max}` +
      (Number.isFinite(f.mean) ? `, mean ${f.mean}` : "") + (Number.isFinite(f.std) ? `, std ${f.std}` : "");
  }
  if (filled) {
    input.placeholder = "empty: the median"; // the value is in the title
    input.title = `${input.title ? `${input.title}; ` : ""}empty: the model fills in the training median ${f.fill}`;
  }
  return input;
}

const fields = () => [...$("inputs").querySelectorAll("input, select")];

// The row on show: a select gives its index, an empty box NaN (a number the model fills, or a gap to name).
function readInputs() {
  return fields().map((el) => (el.value.trim() === "" ? NaN : Number(el.value)));
}

// Put a row in the inputs (as typing would) and show its probabilities; resolves when they are on show. A category
// takes its text or its index, a filled number NaN or null for an empty box.
function setInputs(row) {
  const els = fields();
  if (!Array.isArray(row) || row.length !== els.length) {
    return Promise.reject(new Error(`expected ${els.length} values, got ${JSON.stringify(row)}`));
  }
  const categories = row.map((v, i) => (Array.isArray(state.manifest.features[i].categories) ? v : 0));
  try {
    encodeRows([categories], state.manifest); // an unseen category: its one-line message, not an empty select
  } catch (e) {
    return Promise.reject(e);
  }
  row.forEach((v, i) => {
    const vocab = state.manifest.features[i].categories;
    const index = Array.isArray(vocab) && typeof v === "string" ? vocab.indexOf(v) : v;
    els[i].value = index === null || Number.isNaN(index) ? "" : String(index);
  });
  return showLive();
}

// Which fields cannot be run: a typo, an empty box the model does not fill.
function invalid(m, row, els) {
  return els.map((el, i) => el.validity.badInput || !(Number.isFinite(row[i]) ||
    (Number.isNaN(row[i]) && Number.isFinite(m.features[i].fill))));
}

async function showLive() {
  const m = state.manifest;
  const gen = ++state.generation;
  const els = fields();
  const row = readInputs();
  const bad = invalid(m, row, els);
  els.forEach((el, i) => el.classList.toggle("invalid", bad[i]));
  if (bad.some(Boolean)) {
    if (gen === state.generation) {
      state.last = null;
      const named = m.features.filter((_, i) => bad[i]).map((f) => escape(f.name));
      $("point").innerHTML = `<p class="hint">enter a number for ${named.join(", ")}</p>`;
    }
    return null;
  }
  const [p] = await predictProba([row]);
  if (gen !== state.generation) return state.last; // a newer edit is on its way
  state.last = { row, probs: p, answer: decide(m, p) };
  const outside = row.filter((v, i) => {
    const f = m.features[i];
    return !Array.isArray(f.categories) && (v < f.min || v > f.max); // NaN (filled) compares false
  }).length;
  $("point").innerHTML = `<p>→ <strong id="label">${escape(answerText(m, p))}</strong>` +
    (outside ? ` <span class="hint">(${outside} value${outside > 1 ? "s" : ""} outside the training range)</span>` : "") +
    `</p>` + probabilityTable(m, p);
  return state.last;
}

// ---- page ----------------------------------------------------------------------------------------------------

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function headline(m) {
  const t = m.metrics || {};
  if (multilabel(m) && t.test && Number.isFinite(t.test.micro_f1)) {
    return `, test micro-F1 ${t.test.micro_f1.toFixed(3)}, macro-F1 ${t.test.macro_f1.toFixed(3)}`;
  }
  return t.test_accuracy !== undefined ? `, test accuracy ${(100 * t.test_accuracy).toFixed(2)}%` : "";
}

function inputsNote(m) {
  const n = names(m);
  const filled = m.features.filter((f) => Number.isFinite(f.fill)).map((f) => f.name);
  const category = m.features.some((f) => Array.isArray(f.categories)) ? " (a category: its first value)" : "";
  return `${n.length} features (${n.length <= 8 ? n.join(", ") : `${n.slice(0, 4).join(", ")}, … ${n[n.length - 1]}`}); ` +
    `prefilled with the training means${category}, each box's hint is its training range` +
    (filled.length ? `; an empty box in ${filled.join(", ")} takes the training median` : "");
}

function describe(m) {
  const n = names(m);
  const where = plotted(m)
    ? `x-axis ${n[0]} [${m.domain.low[0].toFixed(2)}, ${m.domain.high[0].toFixed(2)}], y-axis ${n[1]} ` +
      `[${m.domain.low[1].toFixed(2)}, ${m.domain.high[1].toFixed(2)}]`
    : inputsNote(m);
  const labels = multilabel(m)
    ? `; ${m.classes.length} independent labels, each on where its probability reaches its threshold (the mark)` : "";
  $("meta").textContent = `${m.task} (${m.kind}${headline(m)}); ${where}${labels}` +
    (m.data && m.data.description ? `. ${m.data.description}` : "");
  $("legend").innerHTML = m.classes.map((c, i) =>
    `<span class="swatch" style="background:${color(i)}"></span>${escape(c)}`).join(" &nbsp; ");
  $("point").innerHTML = "";
}

async function fetchJSON(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

async function init() {
  const select = $("task");
  const [tasks, colors] = await Promise.all([
    fetchJSON("/artifacts/index.json").catch((e) => { $("error").textContent = `no task list: ${e.message}`; return []; }),
    fetchJSON("/palette.json").catch(() => FALLBACK_COLORS),
  ]);
  state.tasks = Array.isArray(tasks) ? tasks.filter((t) => typeof t === "string") : [];
  if (Array.isArray(colors) && colors.length) state.colors = colors;
  for (const t of state.tasks) select.add(new Option(t, t));
  const wanted = new URLSearchParams(window.location.search).get("task") || state.tasks[0];
  if (!wanted) fail("no artifacts to show: /artifacts/ holds no folder with a manifest.json; run `make run`");
  select.value = wanted;
  select.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("task", select.value);
    window.history.replaceState(null, "", url);
    loadTask(select.value).catch(() => {});
  });
  $("plot").addEventListener("click", (e) => classifyClick(e).catch((err) => { $("error").textContent = err.message; }));
  $("inputs").addEventListener("input", () => showLive().catch((err) => { $("error").textContent = err.message; }));
  $("inputs").addEventListener("submit", (e) => e.preventDefault());
  await loadTask(wanted);
}

window.edgeclf = { state, loadTask, predictProba, predict, plan, setInputs, readInputs };
init().catch(() => {});

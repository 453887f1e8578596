// edgeclf web page: loads an artifact folder's manifest.json (schema edgeclf.manifest/2) and ONNX files over HTTP
// and runs them with onnxruntime-web. Everything (features, classes, input and output names, batch sizes, domain)
// comes from the manifest; the task list from /artifacts/index.json and the palette from /palette.json, both made
// by `edgeclf serve-web`. Rows are chunked to the exported fixed batch sizes and the tail padded, exactly like the
// Python runtime. Two features: the decision regions, click a point. More: one input per feature, live probabilities.
"use strict";

const SCHEMA = "edgeclf.manifest/2";
const FALLBACK_COLORS = ["#4C72B0"]; // only if /palette.json cannot be read: one colour still draws a page
const { plan } = window.edgeclfPlan; // plan.js: the chunk plan, shared with examples/node/predict.mjs
const GRID = 100; // decision regions: GRID x GRID cells

ort.env.wasm.wasmPaths = new URL("/ort/", window.location.href).href; // absolute: a relative path fails
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation; one is plenty for these models

const state = {
  task: null, manifest: null, sessions: new Map(), ready: null, colors: FALLBACK_COLORS, tasks: [],
  last: null, // F > 2: {row, probs} of the probabilities on show (full precision)
  queue: Promise.resolve(), // runs on the sessions, one after another
  generation: 0, // F > 2: the newest input edit; older results are not shown
};

const $ = (id) => document.getElementById(id);
const color = (i) => state.colors[i % state.colors.length];
const names = (m) => m.features.map((f) => f.name);

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
  const twoD = manifest.features.length === 2;
  $("plot-box").hidden = !twoD;
  $("inputs-box").hidden = twoD;
  if (twoD) {
    await paintRegions();
  } else {
    buildInputs(manifest);
    await showLive();
  }
  $("status").textContent = `${task}: ${manifest.features.length} features, ${manifest.classes.length} classes, ` +
    `batch sizes ${[...sessions.keys()].join(", ")}`;
  state.ready = task;
  return task;
}

// points: array of [x1, x2, ...] rows -> array of probability rows (numbers), in input order.
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
  for (const [i, p] of points.entries()) {
    if (!Array.isArray(p) || p.length !== f || !p.every(Number.isFinite)) {
      const shown = f <= 8 ? names(m).join(", ") : `${names(m).slice(0, 3).join(", ")}, … ${names(m)[f - 1]}`;
      throw new Error(`row ${i}: expected ${f} finite numbers (${shown}), got ${JSON.stringify(p)}`);
    }
  }
  const out = new Array(points.length);
  const sizes = [...state.sessions.keys()];
  for (const [start, stop, batch] of plan(points.length, sizes)) {
    const data = new Float32Array(batch * f); // zero padding beyond stop - start
    for (let r = start; r < stop; r++) data.set(points[r], (r - start) * f);
    const feeds = { [m.signature.input]: new ort.Tensor("float32", data, [batch, f]) };
    const result = await state.sessions.get(batch).run(feeds, [out_.name]);
    const probs = result[out_.name].data;
    for (let r = start; r < stop; r++) out[r] = Array.from(probs.subarray((r - start) * k, (r - start + 1) * k));
  }
  return out;
}

// ---- two features: decision regions ------------------------------------------------------------------------

function toData(px, py, canvas) {
  const { low, high } = state.manifest.domain;
  return [low[0] + (px / canvas.width) * (high[0] - low[0]), high[1] - (py / canvas.height) * (high[1] - low[1])];
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
  const k = state.manifest.classes.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  probs.forEach((p, idx) => {
    const c = p.indexOf(Math.max(...p));
    ctx.globalAlpha = 0.15 + 0.75 * (p[c] - 1 / k) / (1 - 1 / k);
    ctx.fillStyle = color(c);
    ctx.fillRect((idx % GRID) * cell, Math.floor(idx / GRID) * cell, Math.ceil(cell), Math.ceil(cell));
  });
  ctx.globalAlpha = 1;
}

function probabilityTable(m, p) {
  const rows = m.classes.map((c, i) =>
    `<tr><td><span class="swatch" style="background:${color(i)}"></span>${escape(c)}</td>` +
    `<td class="num">${p[i].toFixed(6)}</td>` +
    `<td><span class="bar" style="width:${(100 * p[i]).toFixed(1)}%;background:${color(i)}"></span></td></tr>`).join("");
  return `<table><tr><th>class</th><th>probability</th><th class="barcol"></th></tr>${rows}</table>`;
}

async function classifyClick(event) {
  if (state.ready !== state.task || state.manifest.features.length !== 2) return;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const point = toData(event.clientX - rect.left, event.clientY - rect.top, canvas);
  const [p] = await predictProba([point]);
  const m = state.manifest;
  const best = p.indexOf(Math.max(...p));
  $("point").innerHTML =
    `<p>(${point.map((v) => v.toFixed(3)).join(", ")}) → <strong>${escape(m.classes[best])}</strong></p>` +
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
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.id = `x${i}`;
    input.name = f.name;
    input.dataset.index = String(i);
    const hasRange = Number.isFinite(f.min) && Number.isFinite(f.max);
    if (Number.isFinite(f.mean)) input.value = String(f.mean); // a test-like row: the training means
    if (hasRange) {
      input.placeholder = `${f.min} … ${f.max}`;
      input.title = `${f.name}: training range ${f.min} … ${f.max}` +
        (Number.isFinite(f.mean) ? `, mean ${f.mean}` : "") + (Number.isFinite(f.std) ? `, std ${f.std}` : "");
    }
    label.append(span, input);
    form.append(label);
  });
  $("point").innerHTML = "";
}

function readInputs() {
  return [...$("inputs").querySelectorAll("input")].map((el) => (el.value.trim() === "" ? NaN : Number(el.value)));
}

// Put a row in the inputs (as typing would) and show its probabilities; resolves when they are on show.
function setInputs(row) {
  const inputs = $("inputs").querySelectorAll("input");
  if (!Array.isArray(row) || row.length !== inputs.length) {
    return Promise.reject(new Error(`expected ${inputs.length} values, got ${JSON.stringify(row)}`));
  }
  row.forEach((v, i) => { inputs[i].value = String(v); });
  return showLive();
}

async function showLive() {
  const m = state.manifest;
  const gen = ++state.generation;
  const row = readInputs();
  const bad = row.map((v, i) => (Number.isFinite(v) ? null : m.features[i].name)).filter((x) => x !== null);
  for (const el of $("inputs").querySelectorAll("input")) {
    el.classList.toggle("invalid", !Number.isFinite(row[Number(el.dataset.index)]));
  }
  if (bad.length) {
    if (gen === state.generation) {
      state.last = null;
      $("point").innerHTML = `<p class="hint">enter a number for ${bad.map(escape).join(", ")}</p>`;
    }
    return null;
  }
  const [p] = await predictProba([row]);
  if (gen !== state.generation) return state.last; // a newer edit is on its way
  const best = p.indexOf(Math.max(...p));
  state.last = { row, probs: p };
  const outside = row.filter((v, i) => { const f = m.features[i]; return v < f.min || v > f.max; }).length;
  $("point").innerHTML = `<p>→ <strong id="label">${escape(m.classes[best])}</strong>` +
    (outside ? ` <span class="hint">(${outside} value${outside > 1 ? "s" : ""} outside the training range)</span>` : "") +
    `</p>` + probabilityTable(m, p);
  return state.last;
}

// ---- page ----------------------------------------------------------------------------------------------------

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function describe(m) {
  const acc = m.metrics && m.metrics.test_accuracy !== undefined ? `, test accuracy ${(100 * m.metrics.test_accuracy).toFixed(2)}%` : "";
  const n = names(m);
  const where = n.length === 2
    ? `x-axis ${n[0]} [${m.domain.low[0].toFixed(2)}, ${m.domain.high[0].toFixed(2)}], y-axis ${n[1]} ` +
      `[${m.domain.low[1].toFixed(2)}, ${m.domain.high[1].toFixed(2)}]`
    : `${n.length} features (${n.length <= 8 ? n.join(", ") : `${n.slice(0, 4).join(", ")}, … ${n[n.length - 1]}`}); ` +
      "prefilled with the training means, each box's hint is its training range";
  $("meta").textContent = `${m.task} (${m.kind}${acc}); ${where}` + (m.data && m.data.description ? `. ${m.data.description}` : "");
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

window.edgeclf = { state, loadTask, predictProba, plan, setInputs, readInputs };
init().catch(() => {});

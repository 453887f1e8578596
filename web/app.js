// edgeclf web page: loads an artifact folder's manifest.json and ONNX files over HTTP and runs them with
// onnxruntime-web. Everything (features, classes, input name, batch sizes, domain) comes from the manifest;
// rows are chunked to the exported fixed batch sizes and the tail padded, exactly like the Python runtime.
"use strict";

const SCHEMA = "edgeclf.manifest/1";
const TASKS = ["circles", "blobs", "moons", "spirals"];
const COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"];
const CALL_COST_ROWS = 400; // one run costs about as much as 400 rows of compute (same model as Python)
const GRID = 100; // decision regions: GRID x GRID cells

ort.env.wasm.wasmPaths = new URL("/ort/", window.location.href).href; // absolute: a relative path fails
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation; one is plenty for these models

const state = { task: null, manifest: null, sessions: new Map(), ready: null };

function fail(message) {
  document.getElementById("error").textContent = message;
  document.getElementById("status").textContent = "";
  state.ready = "error";
  throw new Error(message);
}

function validate(m, url) {
  if (!m || m.schema !== SCHEMA) fail(`${url}: not an edgeclf manifest (schema ${m && m.schema}, expected ${SCHEMA})`);
  for (const key of ["task", "classes", "features", "input", "outputs", "files", "domain"]) {
    if (!(key in m)) fail(`${url}: missing key "${key}"`);
  }
  const onnx = m.files.filter((f) => f.format === "onnx");
  if (!onnx.length) fail(`${url}: lists no ONNX file`);
  for (const f of onnx) {
    if (!/^[\w.-]+$/.test(f.path)) fail(`${url}: file path ${JSON.stringify(f.path)} must stay inside the folder`);
  }
  return onnx.sort((a, b) => a.batch_size - b.batch_size);
}

async function loadTask(task) {
  state.ready = null;
  document.getElementById("error").textContent = "";
  document.getElementById("status").textContent = `loading ${task}…`;
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
  await paintRegions();
  document.getElementById("status").textContent = `${task}: ${manifest.classes.length} classes, ` +
    `batch sizes ${[...sessions.keys()].join(", ")}`;
  state.ready = task;
  return task;
}

// Cover n rows with fixed-size runs: full chunks of the largest size, then the cheapest tail.
function plan(n, sizes) {
  const big = sizes[sizes.length - 1];
  const out = [];
  let start = 0;
  for (; start + big <= n; start += big) out.push([start, start + big, big]);
  return out.concat(tail(start, n - start, sizes).plan);
}

function tail(start, r, sizes) {
  if (r === 0) return { plan: [], cost: 0 };
  const pad = sizes.find((b) => b >= r);
  let best = { plan: [[start, start + r, pad]], cost: CALL_COST_ROWS + pad };
  for (const b of sizes.filter((s) => s < r)) {
    const k = Math.floor(r / b);
    const rest = tail(start + k * b, r - k * b, sizes);
    const cost = k * (CALL_COST_ROWS + b) + rest.cost;
    if (cost < best.cost) {
      const runs = Array.from({ length: k }, (_, i) => [start + i * b, start + (i + 1) * b, b]);
      best = { plan: runs.concat(rest.plan), cost };
    }
  }
  return best;
}

// points: array of [x1, x2, ...] rows -> array of probability rows (numbers), in input order.
async function predictProba(points) {
  const m = state.manifest;
  const f = m.features.length;
  const k = m.outputs.probabilities.columns;
  for (const [i, p] of points.entries()) {
    if (!Array.isArray(p) || p.length !== f || !p.every(Number.isFinite)) {
      throw new Error(`row ${i}: expected ${f} finite numbers (${m.features.join(", ")}), got ${JSON.stringify(p)}`);
    }
  }
  const out = new Array(points.length);
  const sizes = [...state.sessions.keys()];
  for (const [start, stop, batch] of plan(points.length, sizes)) {
    const data = new Float32Array(batch * f); // zero padding beyond stop - start
    for (let r = start; r < stop; r++) data.set(points[r], (r - start) * f);
    const feeds = { [m.input.name]: new ort.Tensor("float32", data, [batch, f]) };
    const result = await state.sessions.get(batch).run(feeds, [m.outputs.probabilities.name]);
    const probs = result[m.outputs.probabilities.name].data;
    for (let r = start; r < stop; r++) out[r] = Array.from(probs.subarray((r - start) * k, (r - start + 1) * k));
  }
  return out;
}

function toData(px, py, canvas) {
  const { low, high } = state.manifest.domain;
  return [low[0] + (px / canvas.width) * (high[0] - low[0]), high[1] - (py / canvas.height) * (high[1] - low[1])];
}

async function paintRegions() {
  const canvas = document.getElementById("plot");
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
    ctx.fillStyle = COLORS[c % COLORS.length];
    ctx.fillRect((idx % GRID) * cell, Math.floor(idx / GRID) * cell, Math.ceil(cell), Math.ceil(cell));
  });
  ctx.globalAlpha = 1;
}

function describe(m) {
  const acc = m.metrics && m.metrics.test_accuracy !== undefined ? `, test accuracy ${(100 * m.metrics.test_accuracy).toFixed(2)}%` : "";
  document.getElementById("meta").textContent =
    `${m.task} (${m.kind}${acc}); features ${m.features.join(", ")}; x-axis ${m.features[0]} ` +
    `[${m.domain.low[0].toFixed(2)}, ${m.domain.high[0].toFixed(2)}], y-axis ${m.features[1]} ` +
    `[${m.domain.low[1].toFixed(2)}, ${m.domain.high[1].toFixed(2)}]`;
  document.getElementById("legend").innerHTML = m.classes.map((c, i) =>
    `<span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${c}`).join(" &nbsp; ");
  document.getElementById("point").innerHTML = "";
}

async function classifyClick(event) {
  if (state.ready !== state.task) return;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const point = toData(event.clientX - rect.left, event.clientY - rect.top, canvas);
  const [p] = await predictProba([point]);
  const m = state.manifest;
  const best = p.indexOf(Math.max(...p));
  const rows = m.classes.map((c, i) =>
    `<tr><td><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${c}</td>` +
    `<td>${p[i].toFixed(6)}</td></tr>`).join("");
  document.getElementById("point").innerHTML =
    `<p>(${point.map((v) => v.toFixed(3)).join(", ")}) → <strong>${m.classes[best]}</strong></p>` +
    `<table><tr><th>class</th><th>probability</th></tr>${rows}</table>`;
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#000";
  ctx.beginPath();
  ctx.arc(event.clientX - rect.left, event.clientY - rect.top, 4, 0, 2 * Math.PI);
  ctx.stroke();
}

function init() {
  const select = document.getElementById("task");
  for (const t of TASKS) select.add(new Option(t, t));
  const wanted = new URLSearchParams(window.location.search).get("task") || TASKS[0];
  select.value = wanted;
  select.addEventListener("change", () => loadTask(select.value).catch(() => {}));
  document.getElementById("plot").addEventListener("click", (e) => classifyClick(e).catch((err) => {
    document.getElementById("error").textContent = err.message;
  }));
  loadTask(wanted).catch(() => {});
}

window.edgeclf = { state, loadTask, predictProba, plan };
init();

// Classify rows with an edgeclf artifact in Node.js (onnxruntime-node): everything (features, classes, input and
// output names, batch sizes, file hashes) comes from the artifact's manifest.json.
//
//   node examples/node/predict.mjs artifacts/circles rows.json     # or rows on stdin
//   echo '[[0.0, 0.1], [1.0, 0.0]]' | node examples/node/predict.mjs artifacts/circles
//
// Rows: a JSON array of rows, each an array of the manifest's features (in order): finite numbers; for a category
// column (manifest features[i].categories) its text or its index in that vocabulary; for a column the model fills
// (features[i].fill, --impute median) null for an empty cell. Prints one JSON object: {"task", "classes", "labels",
// "probabilities"} (probabilities[i][j] = P(classes[j]) for row i, the float32 values onnxruntime returned).
// Exit code 1 and a one-line message on stderr for a bad row (a category not seen in training: the value, the
// column and the vocabulary), a missing or modified model file; 2 when onnxruntime-node is not installed.
//
// The ONNX files have fixed batch sizes: rows are run in full chunks of the largest one, and the tail in the
// cheapest mix of smaller ones, the last padded with zeros (rows are independent; the padding rows' outputs are
// dropped). This is the Python runtime's plan (edgeclf.runtime.classifier.plan_chunks) and the web page's.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

function loadOrt() {
  // your project's onnxruntime-node (or NODE_PATH); in this repository, the copy `make setup` puts under web/
  const require = createRequire(import.meta.url);
  for (const where of ["onnxruntime-node", new URL("../../web/node_modules/onnxruntime-node", import.meta.url).pathname]) {
    try {
      return require(where);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  fail("onnxruntime-node is not installed: `npm install onnxruntime-node` (offline: ONNXRUNTIME_NODE_INSTALL=skip " +
       "or --ignore-scripts), or `make setup` in this repository", 2);
}

function fail(message, code = 1) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

// The chunk plan: the web page's and the Python runtime's, from one file (web/plan.js); the rows in and the
// decisions out as the page and the Python runtime read and make them (web/rows.js).
export const { plan } = createRequire(import.meta.url)("../../web/plan.js");
const { encodeRows, decide } = createRequire(import.meta.url)("../../web/rows.js");

// The manifest's ONNX files, each hash-checked, as {batch_size: session}, smallest batch first.
async function openSessions(ort, folder, manifest) {
  const files = manifest.files.filter((f) => f.format === "onnx").sort((a, b) => a.batch_size - b.batch_size);
  if (files.length === 0) fail(`${folder}: the manifest lists no ONNX file`);
  const sessions = new Map();
  for (const f of files) {
    let bytes;
    try {
      bytes = readFileSync(join(folder, f.path));
    } catch {
      fail(`${f.path} listed in the manifest is missing from ${folder}`);
    }
    const digest = createHash("sha256").update(bytes).digest("hex");
    if (digest !== f.sha256) fail(`${f.path}: sha256 ${digest.slice(0, 12)}... does not match the manifest's ` +
                                  `${f.sha256.slice(0, 12)}...: the file was modified or corrupted`);
    sessions.set(f.batch_size, await ort.InferenceSession.create(bytes, { executionProviders: ["cpu"] }));
  }
  return sessions;
}

// rows as given -> the model's input rows (category indices; NaN where a filled column is null), or one line and exit 1
function checkRows(rows, manifest) {
  try {
    return encodeRows(rows, manifest);
  } catch (e) {
    return fail(e.message);
  }
}

// rows: the model's input rows (checkRows'); -> one probability row per row
export async function predictProba(ort, sessions, manifest, rows) {
  const f = manifest.features.length;
  const out = manifest.signature.outputs.probabilities; // {name, columns}
  const result = new Array(rows.length);
  for (const [start, stop, batch] of plan(rows.length, [...sessions.keys()])) {
    const data = new Float32Array(batch * f); // zero padding beyond stop - start
    for (let r = start; r < stop; r++) data.set(rows[r], (r - start) * f);
    const feeds = { [manifest.signature.input]: new ort.Tensor("float32", data, [batch, f]) };
    const probs = (await sessions.get(batch).run(feeds, [out.name]))[out.name].data; // (batch, columns)
    for (let r = start; r < stop; r++) {
      result[r] = Array.from(probs.subarray((r - start) * out.columns, (r - start + 1) * out.columns));
    }
  }
  return result;
}

async function main() {
  const [folderArg, rowsArg] = process.argv.slice(2);
  if (!folderArg) fail("usage: node predict.mjs ARTIFACT_FOLDER [ROWS.json]  (rows on stdin without ROWS.json)");
  const folder = resolve(folderArg);
  let manifest, rows;
  try {
    manifest = JSON.parse(readFileSync(join(folder, "manifest.json"), "utf8"));
  } catch (e) {
    fail(`${folder}: no readable manifest.json (${e.message})`);
  }
  try {
    rows = JSON.parse(readFileSync(rowsArg ?? 0, "utf8")); // fd 0: stdin
  } catch (e) {
    fail(`rows: not JSON (${e.message})`);
  }
  const inputs = checkRows(rows, manifest);
  const ort = loadOrt();
  const sessions = await openSessions(ort, folder, manifest);
  const probabilities = await predictProba(ort, sessions, manifest, inputs);
  // a multi-label model answers each label on its own (at or above its threshold; none is a valid answer: []),
  // any other model with its most probable class
  const labels = manifest.kind === "multilabel"
    ? probabilities.map((p) => { const on = decide(manifest, p); return manifest.classes.filter((_, i) => on[i]); })
    : probabilities.map((p) => decide(manifest, p));
  process.stdout.write(JSON.stringify({ task: manifest.task, classes: manifest.classes, labels, probabilities }) + "\n");
}

// run as a program; imported (e.g. by the tests, for `plan`), do nothing
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();

// Rows of values -> the model's float32 input rows, read as the Python runtime reads them (edgeclf.runtime.categories
// and inputs), and probabilities -> the decision, as Classifier.predict makes it. Shared by the web page (a classic
// <script>: window.edgeclfRows) and examples/node/predict.mjs (CommonJS require), like plan.js.
// - A category column (manifest features[i].categories) takes its text, looked up in that vocabulary, or its index
//   0..K-1; the graph one-hots the index. Anything else is an error naming the value, the column and the
//   vocabulary: the graph alone would give an out-of-range index an all-zero code, silently.
// - A column the model fills (manifest features[i].fill, trained with --impute median) takes NaN or null (JSON has
//   no NaN) for an empty cell; the graph puts the training median there. Every other number must be finite.
"use strict";

(function (root) {
  // per feature: {name, vocab (array or null), filled (bool)}
  function columns(manifest) {
    return manifest.features.map((f) => ({
      name: f.name, vocab: Array.isArray(f.categories) ? f.categories : null, filled: Number.isFinite(f.fill),
    }));
  }

  // What a row must hold, for the error messages: "2 finite numbers (x1, x2)" for a plain model (the words the
  // page and the Node example always used), else each column's kind.
  function expected(cols) {
    const shown = cols.length <= 8 ? cols : [...cols.slice(0, 3), null, cols[cols.length - 1]];
    if (cols.every((c) => !c.vocab && !c.filled)) {
      return `${cols.length} finite numbers (${shown.map((c) => (c ? c.name : "…")).join(", ")})`;
    }
    const kind = (c) => (!c ? "…" : c.vocab ? `${c.name}: a category` : c.filled ? `${c.name}: a number or null`
      : `${c.name}: a number`);
    return `${cols.length} values (${shown.map(kind).join(", ")})`;
  }

  // the Python runtime's message (edgeclf.runtime.errors), one line: JSON quoting escapes any newline in the value
  function unseen(value, col, row) {
    const text = JSON.stringify(value) ?? String(value);
    const shown = text.length <= 40 ? text : `${text.slice(0, 37)}...`;
    const what = value === null || value === undefined || value === "" ? "empty cell" : `${shown} is not a category seen in training`;
    return new Error(`row ${row}, column '${col.name}': ${what}; expected one of ${JSON.stringify(col.vocab)} ` +
                     `(or its index 0..${col.vocab.length - 1})`);
  }

  // one value of column col (row r) -> the number the graph takes
  function encodeValue(value, col, r, cols, row) {
    if (col.vocab) {
      const i = typeof value === "string" ? col.vocab.indexOf(value) : value;
      if (!(Number.isInteger(i) && i >= 0 && i < col.vocab.length)) throw unseen(value, col, r);
      return i;
    }
    if (typeof value === "number" && Number.isFinite(value)) return value;
    if (col.filled && (value === null || Number.isNaN(value))) return NaN;
    if (cols.every((c) => !c.vocab && !c.filled)) {
      throw new Error(`row ${r}: expected ${expected(cols)}, got ${JSON.stringify(row)}`);
    }
    const fills = cols.filter((c) => c.filled).map((c) => c.name);
    const why = fills.length ? ` (the model fills empty cells in ${JSON.stringify(fills)} only)` : "";
    throw new Error(`row ${r}, column '${col.name}': expected a finite number${why}, got ${JSON.stringify(value)}`);
  }

  // rows: an array of rows, each an array of the manifest's features in order -> array of number arrays.
  // Throws an Error with a one-line message naming the first bad row (and column, value, vocabulary).
  function encodeRows(rows, manifest) {
    const cols = columns(manifest);
    if (!Array.isArray(rows)) throw new Error("expected a JSON array of rows");
    return rows.map((row, r) => {
      if (!Array.isArray(row) || row.length !== cols.length) {
        throw new Error(`row ${r}: expected ${expected(cols)}, got ${JSON.stringify(row)}`);
      }
      return row.map((v, j) => encodeValue(v, cols[j], r, cols, row));
    });
  }

  // The decision for one row of probabilities p: a multi-label model's per-label on/off (P >= that label's
  // threshold, compared in float32 like the Python runtime; a row may have none on), else the most probable class.
  function decide(manifest, p) {
    if (manifest.kind === "multilabel") return p.map((v, i) => v >= Math.fround(manifest.thresholds[i]));
    return manifest.classes[p.indexOf(Math.max(...p))];
  }

  const api = { columns, encodeRows, decide };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.edgeclfRows = api;
})(globalThis);

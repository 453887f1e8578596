// The chunk plan shared by the web page (a classic <script> before app.js: window.edgeclfPlan) and
// examples/node/predict.mjs (CommonJS require): the Python runtime's edgeclf.runtime.classifier.plan_chunks.
// Cover n rows with fixed-size runs: full chunks of the largest size, then the cheapest tail (one run costs about
// as much as CALL_COST_ROWS rows of compute; the last run is padded to its batch size).
"use strict";

(function (root) {
  const CALL_COST_ROWS = 400;

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

  const api = { plan, CALL_COST_ROWS };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.edgeclfPlan = api;
})(globalThis);

"""The model card's "How to load it": one snippet per client, written from the manifest (file names, batch sizes,
input and output names, tuple indices, C prefix), each classifying the same example row and printing its label,
then its probabilities on the last line. tests/test_card_snippets.py extracts and runs them."""

from __future__ import annotations

import json
from collections.abc import Callable

from edgeclf.export.registry import decision_code, example_row, load
from edgeclf.runtime import Manifest
from edgeclf.runtime.formats import FORMATS, TORCHSCRIPT
from edgeclf.runtime.manifest import FileEntry

ORT_NODE = "1.30.0"  # = web/package.json's onnxruntime-node and onnxruntime-web


def _row(m: Manifest, suffix: str = "") -> str:
    return ", ".join(f"{v!r}{suffix}" for v in example_row(m))


def _pad_note(b: int) -> str:
    return f"the file's batch is fixed at {b}: pad with zeros, keep the first row" if b > 1 else "batch fixed at 1"


def _python(m: Manifest) -> str:
    return f"""```python
from edgeclf.runtime import Classifier

clf = Classifier.load("artifacts/{m.task}")  # checks every file's sha256; any number of rows
x = [[{_row(m)}]]
{_python_decision(m)}
print(clf.predict_proba(x)[0].tolist())  # columns {list(m.classes)}
```"""


def _python_decision(m: Manifest) -> str:
    """The Python snippet's decision line: the class, or for a multi-label model every label's 0/1 at its threshold
    (`label=0|1`, the other snippets' form)."""
    if m.multilabel:
        return 'print(" ".join(f"{k}={int(on)}" for k, on in zip(clf.classes_, clf.predict(x)[0])))'
    return "print(clf.predict(x)[0])"


def _cli(m: Manifest) -> str:
    header, row = ",".join(m.feature_names), ",".join(repr(v) for v in example_row(m))
    out = ("one 0/1 column named after each label and one `proba_<label>` column per label" if m.multilabel
           else "`label` and one `proba_<class>` column per class")
    return f"""```sh
printf '{header}\\n{row}\\n' > rows.csv
edgeclf predict artifacts/{m.task} rows.csv --proba
```
CSV out: {out}; any number of rows (CSV, Parquet, JSON Lines, .npy;
`-` reads CSV from stdin), columns matched to the features by name."""


def _js_decision(m: Manifest) -> str:
    """The JS lines that print the decision from p: for a multi-label model every label's 0/1 as `label=0|1` (any
    number of them 1, none included; the other snippets' form), else the most probable class."""
    if m.multilabel:
        return (f"const labels = {json.dumps(list(m.classes))};\n"
                f"const thresholds = {json.dumps(list(m.thresholds))};  // label i is on where P >= thresholds[i]\n"
                "// compared in float32, as the runtime does (p is float32; a threshold is rounded to float32 first)\n"
                'console.log(labels.map((k, i) => `${k}=${p[i] >= Math.fround(thresholds[i]) ? 1 : 0}`).join(" "));')
    return f"console.log({list(m.classes)}[p.indexOf(Math.max(...p))]);"


def _js_run(m: Manifest, e: FileEntry, session: str) -> str:
    f, c, sig = len(m.features), len(m.classes), m.signature
    what = "labels" if m.multilabel else "classes"
    return f"""{session}
const x = new Float32Array({e.batch_size} * {f});  // {_pad_note(e.batch_size)}
x.set([{_row(m)}]);
const out = await session.run({{ "{sig.input}": new ort.Tensor("float32", x, [{e.batch_size}, {f}]) }});
const p = Array.from(out["{sig.probabilities.name}"].data.subarray(0, {c}));  // row 0, {what} in manifest order
{_js_decision(m)}
console.log(JSON.stringify(p));"""


def browser(m: Manifest, e: FileEntry) -> str:
    session = f'const session = await ort.InferenceSession.create("/artifacts/{m.task}/{e.path}");'
    body = "\n".join("  " + line if line else line for line in _js_run(m, e, session).splitlines())
    return f"""Served by `edgeclf serve-web` (onnxruntime-web {ORT_NODE}'s `dist/` at `/ort/`, the artifacts at
`/artifacts/`):
```html
<script src="/ort/ort.wasm.min.js"></script>
<script>
ort.env.wasm.wasmPaths = new URL("/ort/", location.href).href;  // absolute, or the .mjs fails to resolve
(async () => {{
{body}
}})();
</script>
```"""


def node(m: Manifest, e: FileEntry) -> str:
    session = f"""// predict.mjs; `npm install onnxruntime-node@{ORT_NODE}` (offline: ONNXRUNTIME_NODE_INSTALL=skip)
import ort from "onnxruntime-node";

const session = await ort.InferenceSession.create("artifacts/{m.task}/{e.path}");"""
    return f"""```js
{_js_run(m, e, session)}
```
Many rows from the manifest, chunked and padded like the Python runtime: `node examples/node/predict.mjs
artifacts/{m.task} rows.json`."""


def c_api(m: Manifest, e: FileEntry) -> str:
    f, c, sig = len(m.features), len(m.classes), m.signature
    return f"""Not run by the tests (no onnxruntime C headers on the test machine); on Windows the path is wide.
```c
/* gcc -std=c99 main.c -I<onnxruntime>/include -L<onnxruntime>/lib -lonnxruntime */
#include <stdio.h>
#include <onnxruntime_c_api.h>
#define CHECK(call) do {{ OrtStatus *s_ = (call); if (s_) {{ fprintf(stderr, "%s\\n", api->GetErrorMessage(s_)); \\
                                                       return 1; }} }} while (0)
int main(void) {{
    const OrtApi *api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    OrtEnv *env; OrtSessionOptions *opts; OrtSession *session; OrtMemoryInfo *mem;
    OrtValue *input = NULL, *output = NULL;
    static float x[{e.batch_size} * {f}] = {{{_row(m, "f")}}};  /* {_pad_note(e.batch_size)} */
    const int64_t shape[2] = {{{e.batch_size}, {f}}};
    const char *in_names[] = {{"{sig.input}"}}, *out_names[] = {{"{sig.probabilities.name}"}};
    float *p;
    int i;
    CHECK(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "edgeclf", &env));
    CHECK(api->CreateSessionOptions(&opts));
    CHECK(api->CreateSession(env, "artifacts/{m.task}/{e.path}", opts, &session));
    CHECK(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem));
    CHECK(api->CreateTensorWithDataAsOrtValue(mem, x, sizeof x, shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input));
    CHECK(api->Run(session, NULL, in_names, (const OrtValue *const *)&input, 1, out_names, 1, &output));
    CHECK(api->GetTensorMutableData(output, (void **)&p));  /* ({e.batch_size}, {c}): row 0 first */
    for (i = 0; i < {c}; i++) printf("%.9g%s", p[i], i + 1 < {c} ? " " : "\\n");
    api->ReleaseValue(output); api->ReleaseValue(input); api->ReleaseMemoryInfo(mem);
    api->ReleaseSession(session); api->ReleaseSessionOptions(opts); api->ReleaseEnv(env);
    return 0;
}}
```"""


def opencv(m: Manifest, e: FileEntry) -> str:
    sig = m.signature
    return f"""```python
import cv2  # opencv-python-headless
import numpy as np

net = cv2.dnn.readNetFromONNX("artifacts/{m.task}/{e.path}")
x = np.zeros(({e.batch_size}, {len(m.features)}), np.float32)  # {_pad_note(e.batch_size)}
x[0] = [{_row(m)}]
net.setInput(x, "{sig.input}")
p = net.forward("{sig.probabilities.name}")[0]  # name it: forward() alone returns the first output, the logits
{_decision(m)}
print(p.tolist())
```"""


def torch_snippet(m: Manifest, e: FileEntry) -> str:
    lo, pr = m.signature.logits, m.signature.probabilities
    f = len(m.features)
    if e.format == TORCHSCRIPT.name:
        load, x = (f'model = torch.jit.load("artifacts/{m.task}/{e.path}")  # any batch size',
                   f"x = torch.tensor([[{_row(m)}]])")
    else:
        load = f'model = torch.export.load("artifacts/{m.task}/{e.path}").module()'
        x = f"x = torch.zeros({e.batch_size}, {f})  # {_pad_note(e.batch_size)}\nx[0] = torch.tensor([{_row(m)}])"
    return f"""```python
import torch

{load}
{x}
with torch.inference_mode():
    out = model(x)  # a tuple: out[{lo.index}] = {lo.name} (N, {lo.columns}), out[{pr.index}] = {pr.name} (N, {pr.columns})
p = out[{pr.index}][0]
{_decision(m)}
print(p.tolist())
```"""


def _decision(m: Manifest) -> str:
    """The snippet's line that prints the decision from p (one row's probabilities): every label's for a
    multi-label model."""
    return decision_code(m)


def _c_multilabel(m: Manifest, e: FileEntry, p: str) -> str:
    P = p.upper()
    return f"""`{e.path}` (prefix `{p}`): no malloc, no stdio, only `<math.h>`; `{p}_predict` writes one 0/1 per label;
examples/c/predict.c prints every label's for CSV rows.
```c
/* gcc -std=c99 -Iartifacts/{m.task} main.c -lm */
#include <stdio.h>
#include "{e.path}"

int main(void) {{
    const float x[{P}_N_FEATURES] = {{{_row(m, "f")}}};  /* raw values, manifest order */
    float p[{P}_N_LABELS];
    int y[{P}_N_LABELS], i;
    {p}_predict_proba(x, p);
    {p}_predict(x, y);  /* y[i] = p[i] >= {p}_thresholds[i] */
    for (i = 0; i < {P}_N_LABELS; i++) printf("%s=%d%s", {p}_labels[i], y[i], i + 1 < {P}_N_LABELS ? " " : "\\n");
    for (i = 0; i < {P}_N_LABELS; i++) printf("%.9g%s", p[i], i + 1 < {P}_N_LABELS ? " " : "\\n");
    return 0;
}}
```"""


def c_header(m: Manifest, e: FileEntry) -> str:
    p = str(e.details.get("prefix", "edgeclf"))
    P = p.upper()
    if m.multilabel:
        return _c_multilabel(m, e, p)
    return f"""`{e.path}` (prefix `{p}`): no malloc, no stdio, only `<math.h>`; examples/c/predict.c labels CSV rows.
```c
/* gcc -std=c99 -Iartifacts/{m.task} main.c -lm */
#include <stdio.h>
#include "{e.path}"

int main(void) {{
    const float x[{P}_N_FEATURES] = {{{_row(m, "f")}}};  /* raw values, manifest order */
    float p[{P}_N_CLASSES];
    int i;
    {p}_predict_proba(x, p);
    puts({p}_classes[{p}_predict(x)]);
    for (i = 0; i < {P}_N_CLASSES; i++) printf("%.9g%s", p[i], i + 1 < {P}_N_CLASSES ? " " : "\\n");
    return 0;
}}
```"""


Snippet = Callable[[Manifest, FileEntry], str]


def sections(m: Manifest) -> list[tuple[str, str]]:
    """(heading, text) for each snippet the format registry lists whose format the manifest has, in its order."""
    out: list[tuple[str, str]] = []
    for fmt in FORMATS:
        entry = next(iter(m.files_of(fmt.name)), None)
        if entry is not None:
            snippets: list[tuple[str, Snippet]] = [(heading, load(ref)) for heading, ref in fmt.cards]
            out += [(heading, snippet(m, entry)) for heading, snippet in snippets]
    return out


SERVER = "127.0.0.1:8000"  # `edgeclf serve`'s default address


def _served_decision(m: Manifest, row0: str, name0: str) -> str:
    """The Python that prints the server's `label` output for row 0: row0 is one BOOL per label of a multi-label
    model (printed `label=0|1`, as the other snippets print it), name0 the class name of any other. Double quotes
    only: the curl snippet runs it inside a single-quoted shell string."""
    if m.multilabel:
        return f'print(" ".join(f"{{k}}={{int(v)}}" for k, v in zip({json.dumps(list(m.classes))}, {row0})))'
    return f"print({name0})"


def served_sections(m: Manifest) -> list[str]:
    """The model behind `edgeclf serve` (Open Inference Protocol over HTTP): curl and tritonclient.http."""
    f = len(m.features)
    tensor = json.dumps({"name": m.signature.input, "shape": [1, f], "datatype": "FP32", "data": example_row(m)})
    body = f'{{"inputs": [{tensor}]}}'
    curl = f"""With `edgeclf serve artifacts/{m.task}` running (pip install 'edgeclf[serve]'; any Open Inference Protocol
client works, e.g. KServe's or Triton's):
```sh
curl -s http://{SERVER}/v2/models/{m.task}/infer -H 'Content-Type: application/json' \\
  -d '{body}' |
  python3 -c 'import json, sys; o = {{t["name"]: t["data"] for t in json.load(sys.stdin)["outputs"]}}
{_served_decision(m, 'o["label"]', 'o["label"][0]')}; print(o["probabilities"])'
```"""
    triton = f"""```python
import numpy as np
import tritonclient.http as httpclient  # pip install 'tritonclient[http]'

client = httpclient.InferenceServerClient("{SERVER}")
x = np.array([[{_row(m)}]], dtype=np.float32)  # (N, {f}) rows
inp = httpclient.InferInput("{m.signature.input}", list(x.shape), "FP32")
inp.set_data_from_numpy(x)  # sent as binary tensor data
res = client.infer("{m.task}", [inp])  # outputs: probabilities, logits, label
{_served_decision(m, 'res.as_numpy("label")[0]', 'res.as_numpy("label")[0].decode()')}
print(res.as_numpy("probabilities")[0].tolist())
```"""
    return ["### Server (curl)", curl, "### Server (tritonclient)", triton]


def how_to_load(m: Manifest) -> str:
    parts = ["## How to load it",
             f"Each snippet classifies one row (the training means, to 4 digits) and prints its probabilities "
             f"(classes {list(m.classes)}), most also its label. Fixed-batch files: {m.signature.padding}.",
             "### Python (numpy + onnxruntime only)", _python(m), "### CLI", _cli(m)]
    for heading, text in sections(m):
        parts += [f"### {heading}", text]
    parts += served_sections(m)
    return "\n\n".join(parts) + "\n"

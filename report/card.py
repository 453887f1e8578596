"""MODEL_CARD.md, generated from manifest.json and metrics.json alone: nothing here is typed by hand per model."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from edgeclf.artifact.store import METRICS
from edgeclf.export.parity import POLICY_TEXT
from edgeclf.report.howto import how_to_load
from edgeclf.report.multilabel import card_tables
from edgeclf.report.plots import FEW_ROWS
from edgeclf.runtime import Manifest
from edgeclf.runtime.formats import INT8, unchecked
from edgeclf.train.calibration import baseline_verdict


def _pct(v: float) -> str:
    return f"{v:.2%}"


def _features(m: Manifest) -> str:
    rows = "\n".join(f"| `{f.name}` | {f.dtype} | {f.min:g} | {f.max:g} | {f.mean:g} | {f.std:g} |"
                     for f in m.features if None not in (f.min, f.max, f.mean, f.std))
    return ("| feature | dtype | train min | train max | train mean | train std |\n|---|---|---|---|---|---|\n" + rows
            if rows else "")


def _calibration(metrics: dict[str, Any]) -> str:
    calib = metrics.get("calibration") or {}
    if not calib:
        return ""
    names = {"test": "test split", "fresh": "fresh sample (new points from the task's generator, another seed)"}
    rows = "\n".join(f"| {names.get(k, k)} | {v['rows']:,} | {_pct(v['accuracy'])} | {v['log_loss']:.4f} | "
                     f"{v['brier']:.4f} | {v['ece']:.4f} |" for k, v in calib.items())
    return ("| sample | rows | accuracy | log loss | Brier | ECE (10 bins) |\n|---|---|---|---|---|---|\n" + rows +
            "\n\nBrier: mean over rows of the squared distance between the probability vector and the one-hot label. "
            f"In `calibration.png` a bin with fewer than {FEW_ROWS} rows is drawn hollow: its accuracy is noise.")


def _no_calibration(m: Manifest) -> str:
    if m.multilabel:
        return "Per label: the ECE column of the table above, and `reliability.png`."
    return "No labelled data was given: calibration not measured."


def _training(m: Manifest, metrics: dict[str, Any]) -> str:
    if m.origin.kind != "trained" or "train_config" not in metrics:
        warning = m.origin.details.get("warning")
        return (f"Imported model: `{m.origin.class_name}`, {m.origin.parameters:,} parameters, state_dict sha256 "
                f"`{m.origin.state_dict_sha256}`. Not trained by edgeclf: no training metrics."
                + (f"\n\n**Warning**: {warning}." if warning else ""))
    tc = metrics["train_config"]
    decay = f", weight decay {tc['weight_decay']}" if tc.get("weight_decay") else ""
    return (f"{tc['optimizer']} ({'AdamW' if tc['optimizer'] == 'adam' else 'SGD, momentum 0.9'}), lr {tc['lr']}"
            f"{decay}, {metrics['epochs']} epochs, batch {tc.get('batch_size') or 'full'}, seed {metrics['seed']}, "
            f"trained on {metrics['device']}. Test accuracy {_pct(metrics['test_accuracy'])} (train "
            f"{_pct(metrics['train_accuracy'])}){_target(metrics)}.")


def _target(metrics: dict[str, Any]) -> str:
    """A registry task's accuracy target, a table's CV rule, or none (a user's table trained without CV)."""
    met = "met" if metrics.get("target_met") else "**missed**"
    if metrics.get("target"):
        return f"; target ({metrics['target']}) {met}"
    if metrics.get("target_accuracy"):
        return f"; target {_pct(metrics['target_accuracy'])} {met}"
    return "; no accuracy target was set for this data"


def _baseline(metrics: dict[str, Any]) -> str:
    b = metrics.get("baseline")
    if not b:
        return ""
    cv = metrics.get("cv") or {}
    line = (f"\nBaseline (scikit-learn StandardScaler + LogisticRegression, same split): test accuracy "
            f"{_pct(b['test_accuracy'])}, {b['k']}-fold CV {_pct(b['cv_mean'])} ± {_pct(b['cv_std'])}.")
    if cv:
        line += f" This model: {cv['k']}-fold CV {_pct(cv['cv_mean'])} ± {_pct(cv['cv_std'])}."
    return line


def val_loss_name(metrics: Mapping[str, Any]) -> str:
    """What early stopping watched: a multi-label model's loss is binary cross-entropy (mean over its labels)."""
    return "binary cross-entropy" if metrics.get("kind") == "multilabel" else "log loss"


def _recipe(metrics: dict[str, Any]) -> str:
    """Early stopping and the recipe search, as trained (metrics.json: early_stopping, search)."""
    stop, found = metrics.get("early_stopping"), metrics.get("search")
    loss = val_loss_name(metrics)
    text = ""
    if stop:
        text += (f"\nEarly stopping: {stop['validation_rows']:,} validation rows ({stop['validation']}); the lowest "
                 f"validation {loss} {stop['best_val_loss']:.4f} came at epoch {stop['best_epoch']} of "
                 f"{stop['epochs_run']} run (patience {stop['patience']}, at most {stop['max_epochs']}); those "
                 "weights were restored. The validation curve is `history.val_loss` in metrics.json.")
    if found:
        rows = "\n".join(f"| {'**' + str(i) + '**' if i == found['chosen'] else i} | {c['hidden']} | {c['lr']} | "
                         f"{c['weight_decay']} | {c['batch_size']} | {c['best_val_loss']} | {c['best_epoch']} |"
                         for i, c in enumerate(found["candidates"]))
        text += (f"\n\nRecipe search, chosen by {found['by']}: candidate {found['chosen']}.\n\n"
                 f"| candidate | hidden | lr | weight decay | batch | best validation {loss} | at epoch |\n"
                 "|---|---|---|---|---|---|---|\n" + rows)
    return text


def _baselines(metrics: dict[str, Any]) -> str:
    base, mine = metrics.get("baselines"), (metrics.get("calibration") or {}).get("test")
    if not base or not mine:
        return ""
    rows = "\n".join(f"| {name} | {b['model']} | {_pct(b['accuracy'])} | {b['log_loss']:.4f} | {b['ece']:.4f} |"
                     for name, b in base.items())
    verdict = baseline_verdict(metrics)
    return ("\n\nScikit-learn baselines on the same split (test rows):\n\n"
            "| model | what | accuracy | log loss | ECE |\n|---|---|---|---|---|\n"
            f"| **this model** | edgeclf MLP | {_pct(mine['accuracy'])} | {mine['log_loss']:.4f} | {mine['ece']:.4f} |\n"
            + rows + ("\n\n**" + verdict + "**" if verdict else "\n\nNo baseline beats this model on the test rows."))


def _recall(metrics: dict[str, Any]) -> str:
    recall = metrics.get("class_recall")
    if not recall:
        return ""
    rows = "\n".join(f"| `{c}` | {r['rows']:,} | {'-' if r['recall'] is None else _pct(r['recall'])} | "
                     f"{r['predicted']:,} |" for c, r in recall.items())
    warn = metrics.get("never_predicted")
    return ("\n\nPer class on the test rows:\n\n| class | rows | recall | rows predicted as it |\n|---|---|---|---|\n"
            + rows + (f"\n\n**Warning**: {warn}." if warn else ""))


def _outputs(m: Manifest) -> str:
    if m.multilabel:
        cuts = ", ".join(f"`{c}` {t:g}" for c, t in zip(m.classes, m.thresholds))
        return (f"This multi-label model outputs one logit per label; probabilities are their independent sigmoids "
                f"(rows need not sum to 1). A label is predicted where its probability >= its threshold ({cuts}); "
                f"a row may have none.")
    if m.kind == "binary":
        return f"This binary model outputs one logit, the log-odds of `{m.classes[-1]}`; probabilities are `[1-p, p]`."
    return (f"This {len(m.classes)}-class model outputs one logit per class; probabilities are their softmax "
            f"(columns in class order).")


def _parity_rows(m: Manifest) -> str:
    """Every file: the checked ones with their verdict, the others with what stands for a check."""
    rows = []
    for f in m.files:
        p = m.parity.files.get(f.path)
        if p is not None:
            rows.append(f"| `{f.path}` | {p['rows']:,} | {'PASS' if p['passed'] else 'FAIL'} |")
        else:
            rows.append(f"| `{f.path}` | - | {unchecked(f.format)[1] or 'not checked at export'} |")
    return "\n".join(rows)


def _int8(m: Manifest) -> str:
    """The int8 files' report (export/int8.py): their only claim, since the float32 policy does not hold them."""
    from edgeclf.export.int8 import share  # 98.995% must not read as 99.00% (refused)

    files = m.files_of(INT8.name)
    if not files:
        return ""
    rows = "\n".join(
        f"| `{f.path}` | {float(f.details.get('bytes.ratio', 0)):.2f}x | "
        f"{100 * float(f.details.get('test_accuracy.delta', 0)):+.2f} | "
        f"{share(float(f.details.get('check.label_agreement', 0)))} | "
        f"{float(f.details.get('check.max_abs_probability_diff', 0)):.2g} |" for f in files)
    if m.multilabel:  # accuracy is subset accuracy; agreement is per (row, label) cell (export/int8.py)
        measure, agree = "test subset accuracy", "labels agree (cells)"
        how = ("size ratio, test subset accuracy change, per-(row, label) agreement (cells further than the parity "
               "margin from their threshold)")
    else:
        measure, agree = "test accuracy", "labels agree"
        how = "size ratio, test accuracy change, label agreement"
    return (f"\nint8 files (static QDQ quantisation), against their float32 file: {how} "
            "and largest probability difference on the rows above.\n\n"
            f"| file | bytes vs float32 | {measure} (points) | {agree} | max probability diff |\n"
            "|---|---|---|---|---|\n" + rows + "\n")


def model_card(m: Manifest, metrics: dict[str, Any], pictures: Sequence[str]) -> str:
    files = "\n".join(f"| `{f.path}` | {f.format} | {f.batch_size}{'' if f.fixed_batch else ' (any)'} | "
                      f"{f.opset or '-'} | {f.bytes:,} | `{f.sha256[:16]}…` |" for f in m.files)
    checked = _parity_rows(m)
    pics = "\n\n".join(f"![{p}]({p})" for p in pictures)
    data = m.data
    rows = f"; {data['train_rows']:,} training rows, {data['test_rows']:,} test rows ({data['split']})" if data else ""
    return f"""# Model card: {m.task}

Generated by `edgeclf plot` from `manifest.json` ({m.schema}) and `{METRICS}`.

## Task and data
- **{m.task}**: {m.kind} classification of {len(m.features)} features into {len(m.classes)} \
{"labels" if m.multilabel else "classes"}
  {", ".join(f"`{c}`" for c in m.classes)} (probability column i = {"label" if m.multilabel else "class"} i).
- Data: {data.get("description", "supplied by the user")}{rows}.
- Model: {m.origin.architecture}, {m.origin.parameters:,} parameters.

{_features(m)}

## Training and accuracy
{_training(m, metrics)}{_baseline(metrics)}{_recipe(metrics)}{_baselines(metrics)}{_recall(metrics)}
{card_tables(metrics) if m.multilabel else ""}
## Calibration
{_calibration(metrics) or _no_calibration(m)}

## Parity with eager PyTorch
Checked on {m.parity.checked_on}. Policy: {POLICY_TEXT}. `edgeclf verify` re-runs every check on your machine
and prints the measured differences (they depend on the CPU, so they are not stored here).

| file | rows | verdict |
|---|---|---|
{checked}
{_int8(m)}
## Files
| file | format | batch | opset | bytes | sha256 |
|---|---|---|---|---|---|
{files}

Versions: {", ".join(f"{k} {v}" for k, v in m.versions.items())}.

## Pictures
{pics}

## Intended use and limits
- Inputs: {len(m.features)} finite float32 feature values in the units of the training data, in the order
  {list(m.feature_names)}. Checked only inside the domain the parity section names; outside the training range
  the logits of a ReLU network grow linearly and its probabilities saturate without meaning anything
  (`Classifier.out_of_range` flags such rows).
- {_outputs(m)}
- Fixed batch sizes: {m.signature.padding}.

{how_to_load(m)}"""

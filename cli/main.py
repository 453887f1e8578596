"""The `edgeclf` command: a thin click layer over edgeclf.train, edgeclf.export and edgeclf.runtime.

Commands that need torch import it inside the command, so `predict` and `info` run with the core install.
"""

from __future__ import annotations

import errno
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, NoReturn, Sequence

import click

from edgeclf.cli import serve_api
from edgeclf.cli.predict import predict as predict_command
from edgeclf.export import DEFAULT_BATCH_SIZES, DEFAULT_OPSET, EDGE_FORMATS, LAYOUT_CHOICES, MAX_BATCH, MAX_OPSET, MIN_OPSET
from edgeclf.report.text import table
from edgeclf.runtime.errors import EdgeclfError, OutputExists
from edgeclf.runtime.formats import C_HEADER, INT8, OPT_IN, PTE, unchecked
from edgeclf.train.settings import ACTIVATIONS, DEVICES, OPTIMIZERS, pin_arithmetic
from edgeclf.train.tasks import TASK_NAMES

INTERRUPTED = 130  # exit code after Ctrl-C (128 + SIGINT)


class CleanErrors(click.Group):
    """Turns edgeclf's own errors into one-line messages (exit 1), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C: the shell's convention, 128 + SIGINT, not click's "Aborted!" (1)
            click.echo(err=True)  # ends the line the terminal's ^C echo began
            raise click.exceptions.Exit(INTERRUPTED) from None
        except OutputExists as e:  # the API's message says overwrite=True; here the option is --overwrite
            raise click.ClickException(e.cli_message()) from None
        except EdgeclfError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            if e.errno == errno.EPIPE:  # the reader of our output left: click exits quietly
                raise
            raise click.ClickException(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None


EXPORT_NEEDS = ("torch", "sklearn", "onnx", "onnxscript")


def needs_extra(*modules: str, extra: str = "train") -> None:
    """Fail with the extra to install when one of modules is missing (checked with find_spec, not imported)."""
    import importlib.util

    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise click.ClickException(
                f"this command needs the {extra} extra ({name} is missing): pip install 'edgeclf[{extra}]'")


def needs_format_extras(options: Sequence[str]) -> None:
    """The extra each asked-for format needs beyond [train] (the registry's Format.extra), named if missing."""
    for fmt in OPT_IN:
        if fmt.option in options and fmt.extra:
            needs_extra(fmt.extra, extra=fmt.extra)


def parse_hidden(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if value.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(s <= 0 for s in sizes):
        raise click.BadParameter(f"{value!r}: expected comma-separated positive layer sizes, e.g. 10,10 (or 'none')")
    return sizes


def parse_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(","))
    if not all(names):
        raise click.BadParameter(f"{value!r}: expected comma-separated names, e.g. a,b,c")
    return names


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeclf")
def cli() -> None:
    """Train a small classifier, export it (ONNX, TorchScript, .pt2) with proven parity, run it anywhere.

    \b
    Example:
      edgeclf run                      # every task: train, export, verify, summary table
      edgeclf predict artifacts/circles points.csv --proba
    """


task_arg = click.argument("task", type=click.Choice(TASK_NAMES), required=False)
out_opt = click.option("--out", type=click.Path(file_okay=False), default="artifacts", show_default=True,
                       help="Artifacts root; the task's folder is OUT/TASK.")


@cli.command()
@task_arg
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), help="Default: the task's recipe for the optimizer.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate. Default: the task's recipe.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="adam = AdamW; sgd = SGD with momentum 0.9. "
              "Default: the task's (adam).")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="Decoupled weight decay (adam only). "
              "Default: the task's recipe.")
@click.option("--hidden", callback=parse_hidden, help="Hidden layer sizes, e.g. 10,10 ('none': linear model).")
@click.option("--activation", type=click.Choice(ACTIVATIONS), help="Default: the task's (relu).")
@click.option("--seed", type=int, default=42, show_default=True)
@out_opt
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--data", type=click.Path(dir_okay=False), help="Train on your own table instead of TASK: a CSV "
              "(with header) or Parquet file.")
@click.option("--label", help="With --data: the class column, or two or more label columns a,b,c for a multi-label "
              "model (each 0/1, true/false or yes/no).")
@click.option("--features", callback=parse_names, help="With --data: input columns (default: every number column "
              "and every text column of 2-32 values, a category; id-like columns left out).")
@click.option("--name", help="With --data: the artifact's name (default: the file's stem).")
@click.option("--test", "test_file", type=click.Path(dir_okay=False), help="With --data: a test table to use "
              "instead of the stratified 80/20 split.")
@click.option("--cv", type=click.IntRange(min=0), help="With --data: k-fold cross-validation of the model and of "
              "a logistic-regression baseline (default 5 below 2,000 rows for one label, none for multi-label; "
              "0 = none).")
@click.option("--stream/--no-stream", default=None, help="With --data: read the file in batches, again every epoch, "
              "in bounded memory (held-out rows chosen by hash within each class: stratified). Default: only a big "
              "file "
              "(Parquet over 4,000,000 cells, CSV over 64 MiB).")
@click.option("--impute", type=click.Choice(["median"]), help="With --data: fill the empty cells of a feature with "
              "the training median, inside the exported model too (NaN is then accepted in those features). Off by "
              "default: filling hides data problems and changes what the model sees; without it an empty cell is "
              "an error naming its row.")
def train(task: str | None, device: str, epochs: int | None, lr: float | None, optimizer: str | None,
          weight_decay: float | None, hidden: tuple[int, ...] | None, activation: str | None, seed: int, out: str,
          quiet: bool, data: str | None, label: str | None, features: tuple[str, ...] | None, name: str | None,
          test_file: str | None, cv: int | None, stream: bool | None, impute: str | None) -> None:
    """Train TASK (or your own table, --data) and write OUT/NAME/checkpoint.pt and metrics.json.

    \b
    Example:
      edgeclf train circles --epochs 400 --hidden 16,16 --device cpu
      edgeclf train --data patients.csv --label outcome --features age,bmi,bp --name triage
      edgeclf train --data big.parquet --label y --stream     # read in batches: bounded memory
      edgeclf train --data tickets.csv --label billing,outage,login   # multi-label: one sigmoid per label
      edgeclf train --data visits.csv --label outcome --impute median   # empty cells: the training median
    """
    needs_extra("torch", "sklearn")
    pin_arithmetic()  # before torch is imported: the same bytes on any x86-64 CPU
    hyper: dict[str, Any] = dict(hidden=hidden, activation=activation, progress=not quiet, device=device,
                                 epochs=epochs, lr=lr, optimizer=optimizer, seed=seed, weight_decay=weight_decay)
    if data is not None:
        if task is not None or label is None:
            raise click.UsageError("with --data, give --label COLUMN and no TASK")
        from edgeclf.train.api import train_data

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", UserWarning)
            r = train_data(data, label, out, features=features, name=name, test=test_file, cv=cv, stream=stream,
                           impute=impute, **hyper)
        echo_warnings(seen)  # the data's warnings (a constant feature, columns left out)
        report_training(r.model_config.task, r, Path(out) / r.model_config.task)
        return
    if stream is not None or impute is not None:
        raise click.UsageError("--stream/--no-stream and --impute are for --data FILE")
    if task is None:
        raise click.UsageError(f"give TASK (one of {', '.join(TASK_NAMES)}) or --data FILE --label COLUMN")
    from edgeclf.train.api import train_task

    report_training(task, train_task(task, out, **hyper), Path(out) / task)


def report_training(name: str, r: Any, folder: Path) -> None:
    m = r.metrics
    if m.get("kind") == "multilabel":
        report_labels(name, r, folder)
        return
    click.echo(f"{name}: test accuracy {m['test_accuracy']:.2%}, train {m['train_accuracy']:.2%}, "
               f"{m['epochs']} epochs on {r.device} in {r.seconds:.2f}s -> {folder}")
    if "cv" in m:
        click.echo(f"{name}: {m['cv']['k']}-fold CV {m['cv']['cv_mean']:.2%} ± {m['cv']['cv_std']:.2%}; "
                   f"logistic-regression baseline CV {m['baseline']['cv_mean']:.2%}, "
                   f"test {m['baseline']['test_accuracy']:.2%}")
    for line in table_lines(m, warn=False):  # the never-predicted warning came as the data's warning
        click.echo(f"{name}: {line}")
    if not r.target_met:
        target = m.get("target") or f"test accuracy >= {m['target_accuracy']:.2%}"
        click.echo(f"warning: {name} missed its target ({target}): test accuracy {m['test_accuracy']:.2%} "
                   f"(metrics.json: target_met false)", err=True)


def report_labels(name: str, r: Any, folder: Path) -> None:
    """A multi-label model's test metrics (at its thresholds) per label and in all, its k-fold means, its target."""
    m, t = r.metrics, r.metrics["test"]
    click.echo(f"{name}: {m['epochs']} epochs on {r.device} in {r.seconds:.2f}s -> {folder}")
    click.echo(f"{name}: test ({m['rows']['test']:,} rows) subset accuracy {t['subset_accuracy']:.2%}, Hamming loss "
               f"{t['hamming_loss']:.4f}, micro-F1 {t['micro_f1']:.4f}, macro-F1 {t['macro_f1']:.4f}")
    for label, v in t["per_label"].items():
        auc = "-" if v["roc_auc"] is None else f"{v['roc_auc']:.4f}"
        click.echo(f"{name}:   {label:<20} threshold {m['thresholds'][label]:.3f}  precision {v['precision']:.4f}  "
                   f"recall {v['recall']:.4f}  F1 {v['f1']:.4f}  ROC AUC {auc}  ({v['support']:,} positive)")
    cv = m.get("cv")
    if cv:
        parts = [f"{k.replace('_', ' ')} {cv[k]['mean']:.4f} ± {cv[k]['std']:.4f}"
                 for k in ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1")]
        click.echo(f"{name}: {cv['k']}-fold CV {', '.join(parts)}")
    if not r.target_met:
        mlp = m["baselines"]["mlp"]
        click.echo(f"warning: {name} missed its target ({m['target']}): micro-F1 {t['micro_f1']:.4f} vs "
                   f"{mlp['micro_f1']:.4f}, macro-F1 {t['macro_f1']:.4f} vs {mlp['macro_f1']:.4f} "
                   f"(metrics.json: target_met false)", err=True)


@cli.command()
@click.argument("name", required=False)
@click.option("--batch-size", "batch_sizes", type=click.IntRange(1, MAX_BATCH), multiple=True,
              help=f"Fixed batch size of an ONNX file; repeat for several. Default: {DEFAULT_BATCH_SIZES}.")
@click.option("--opset", type=click.IntRange(MIN_OPSET, MAX_OPSET), default=DEFAULT_OPSET, show_default=True)
@out_opt
@click.option("--from", "source", type=click.Path(dir_okay=False),
              help="Export your own model: a torch.export .pt2 file (dynamic batch dimension).")
@click.option("--features", callback=parse_names, help="With --from: the input columns, in order, e.g. a,b,c.")
@click.option("--classes", callback=parse_names, help="With --from: the class names, in logit order.")
@click.option("--check-data", type=click.Path(dir_okay=False), help="With --from: rows parity is measured on "
              "(CSV with header, Parquet or .npy).")
@click.option("--name", "new_name", help="With --from: the artifact's name (default: the .pt2 file's stem).")
@click.option("--format", "edge", type=click.Choice(EDGE_FORMATS), multiple=True,
              help="Also write: " + ", ".join(f"{f.option} ({f.help})" for f in OPT_IN) + ". Repeat for several.")
@click.option("--c-prefix", help="Name prefix of the C header's symbols. Default: the folder's header's, else "
              "edgeclf.")
@click.option("--layout", type=click.Choice(LAYOUT_CHOICES), default="auto", show_default=True,
              help="Arrangement of the ONNX graphs (same function, parity-checked): auto picks per file by the "
                   "layer widths and batch size (docs/benchmarks.md).")
@click.option("--allow-lossy-int8", is_flag=True, help="Write int8 files even where they do not pay: larger than "
              "the float32 file, or changing more than 1% of its labels (refused otherwise).")
def export(name: str | None, batch_sizes: tuple[int, ...], opset: int, out: str, source: str | None,
           features: tuple[str, ...] | None, classes: tuple[str, ...] | None, check_data: str | None,
           new_name: str | None, edge: tuple[str, ...], c_prefix: str | None, layout: str,
           allow_lossy_int8: bool) -> None:
    """Export OUT/NAME's checkpoint (or, with --from, your own .pt2 model) to ONNX, TorchScript and .pt2, check
    parity, write manifest.json. The folder keeps its card, pictures, your files and the --format files it had
    (made again); anything dropped is named on stderr.

    \b
    Example:
      edgeclf export circles --batch-size 1 --batch-size 4096 --opset 20
      edgeclf export digits --format c --format ort --format pte --c-prefix digits
      edgeclf export --from model.pt2 --features a,b,c --classes no,yes --check-data rows.csv --out artifacts
    """
    needs_extra(*EXPORT_NEEDS)
    needs_format_extras(edge)
    sizes = batch_sizes or DEFAULT_BATCH_SIZES
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", UserWarning)
        manifest, results, folder = export_to(name, sizes, opset, out, source, features, classes, check_data,
                                              new_name, edge, c_prefix, layout, allow_lossy_int8)
    echo_warnings(seen)
    for r in results:
        click.echo(str(r))
    for f in manifest.files_of(INT8.name):  # not held to the policy: its report is the claim
        lossy = f" (lossy, allowed: {f.details['lossy_allowed']})" if "lossy_allowed" in f.details else ""
        click.echo(f"int8 {int8_summary(f.path, f.details)}{lossy}")
    click.echo(f"wrote {len(manifest.files)} files and manifest.json to {folder}")


def echo_warnings(seen: list[warnings.WarningMessage]) -> None:
    """edgeclf's own warnings (a file an export dropped, a constant feature), one line each on stderr."""
    for w in seen:
        if issubclass(w.category, UserWarning) and "edgeclf" in (w.filename or "") + str(w.category.__module__):
            click.echo(f"warning: {w.message}", err=True)


def export_to(name: str | None, sizes: tuple[int, ...], opset: int, out: str, source: str | None,
              features: tuple[str, ...] | None, classes: tuple[str, ...] | None, check_data: str | None,
              new_name: str | None, edge: tuple[str, ...], c_prefix: str | None, layout: str,
              allow_lossy_int8: bool = False) -> tuple[Any, Any, Path]:
    if source is not None:
        if layout != "auto":
            raise click.UsageError(f"--layout {layout} applies to edgeclf-trained MLPs; a --from model is exported "
                                   "as traced")
        if name is not None and new_name is not None and name != new_name:
            raise click.UsageError(f"give the name once: NAME {name!r} or --name {new_name!r}")
        return export_from(source, name or new_name, sizes, opset, out, features, classes, check_data, edge,
                           c_prefix, allow_lossy_int8)
    if new_name is not None:
        raise click.UsageError("--name goes with --from; a trained folder is named by NAME")
    if name is None:
        raise click.UsageError("give NAME (a trained folder under --out) or --from MODEL.pt2")
    from edgeclf.export.pipeline import export_artifact
    from edgeclf.report.build import write_card

    folder = Path(out) / name
    manifest, results = export_artifact(folder, sizes, opset, name, edge, c_prefix, layout, card=write_card,
                                        allow_lossy_int8=allow_lossy_int8)
    return manifest, results, folder


def export_from(source: str, name: str | None, sizes: tuple[int, ...], opset: int, out: str,
                features: tuple[str, ...] | None, classes: tuple[str, ...] | None, check_data: str | None,
                edge: tuple[str, ...], c_prefix: str | None, allow_lossy_int8: bool = False) -> tuple[Any, Any, Path]:
    missing = [o for o, v in (("--features", features), ("--classes", classes), ("--check-data", check_data)) if not v]
    if missing:
        raise click.UsageError(f"--from needs {', '.join(missing)}")
    assert features is not None and classes is not None and check_data is not None
    from edgeclf.export.own_model import export_pt2, read_check_data
    from edgeclf.report.build import write_card

    rows = read_check_data(check_data, features)
    manifest, results = export_pt2(source, out, features=features, classes=classes, check_data=rows,
                                   batch_sizes=sizes, opset=opset, name=name, edge=edge, c_prefix=c_prefix,
                                   card=write_card, allow_lossy_int8=allow_lossy_int8)
    return manifest, results, Path(out) / manifest.task


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def verify(folder: str) -> None:
    """Re-hash FOLDER's files against its manifest and re-run every parity check.

    \b
    Example:
      edgeclf verify artifacts/circles
    """
    needs_extra(*EXPORT_NEEDS)
    from edgeclf.export.pipeline import verify_artifact

    report = verify_artifact(Path(folder))
    rows = [(r.file, "ok", r.rows, f"{r.output('logits').max_abs:.1e}", f"{r.output('logits').excess:.2f}",
             f"{r.output('probabilities').max_abs:.1e}", f"{r.label_agreement:.2%}", "PASS" if r else "FAIL")
            for r in report.results]
    click.echo(table(rows, ["file", "sha256", "rows", "logits diff", "of bound", "proba diff", "labels", "parity"]))
    for f in report.manifest.files_of(INT8.name):  # hashed above; not held to the policy: its report is the claim
        click.echo(f"int8 {int8_summary(f.path, f.details)}")
    if not report:
        raise click.ClickException(f"{folder}: parity check failed; re-export with `edgeclf export`")


# reproducible from the weights alone (any run, any x86-64 CPU): committed; .ort and int8 bytes/figures are not
RUN_EDGE = (C_HEADER.option, PTE.option)


@cli.command()
@out_opt
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(out: str, device: str, quiet: bool) -> None:
    """The main job: train, export (every file parity-checked) and plot every task, check the runtime; a summary.

    \b
    Example:
      edgeclf run --out artifacts --device cpu
    """
    needs_extra(*EXPORT_NEEDS, "matplotlib")
    needs_format_extras(RUN_EDGE)
    pin_arithmetic()  # before torch is imported: the same bytes on any x86-64 CPU
    from edgeclf.export.pipeline import export_artifact, runtime_check
    from edgeclf.report.build import plot_artifact
    from edgeclf.train.api import train_task

    rows = []
    for task in TASK_NAMES:
        t0 = time.perf_counter()
        r = train_task(task, out, progress=not quiet, device=device)
        t1 = time.perf_counter()
        export_artifact(Path(out) / task, task=task, edge=RUN_EDGE)
        t2 = time.perf_counter()
        rc = runtime_check(Path(out) / task)
        plot_artifact(Path(out) / task)
        fresh = r.metrics["calibration"].get("fresh", {})
        rows.append((task, f"{r.metrics['test_accuracy']:.2%}", "yes" if r.target_met else "NO",
                     f"{rc.test_accuracy:.2%}", f"{rc.agreement:.2%}",
                     f"{rc.parity.output('probabilities').max_abs:.1e}", f"{fresh.get('log_loss', float('nan')):.4f}",
                     f"{fresh.get('ece', float('nan')):.4f}", r.device, f"{t1 - t0:.2f}", f"{t2 - t1:.2f}"))
    click.echo(table(rows, ["task", "test acc", "target met", "runtime acc", "agree w/ eager", "proba diff",
                            "fresh log loss", "fresh ECE", "device", "train s", "export s"]))


@cli.command()
@click.argument("folder", type=click.Path(exists=True))
def info(folder: str) -> None:
    """Describe FOLDER's artifact: task, classes, features, files, accuracy and parity.

    \b
    Example:
      edgeclf info artifacts/blobs
    """
    from edgeclf.runtime.manifest import Manifest

    m, root = Manifest.read(Path(folder))
    metrics = m.metrics
    if m.multilabel:
        click.echo(f"task        {m.task} ({m.kind}, {len(m.classes)} labels)")
        click.echo(f"labels      {', '.join(f'{c} (threshold {t:g})' for c, t in zip(m.classes, m.thresholds))}")
    else:
        click.echo(f"task        {m.task} ({m.kind}, {len(m.classes)} classes)")
        click.echo(f"classes     {', '.join(m.classes)}")
    click.echo(f"features    {', '.join(m.feature_names)}  (input {m.signature.input!r}, {m.signature.dtype})")
    click.echo(f"batch sizes {', '.join(str(f.batch_size) for f in m.onnx_files)} (ONNX)")
    if "test_accuracy" in metrics:
        measure = "subset accuracy at 0.5: " if m.multilabel else ""
        click.echo(f"accuracy    {measure}test {metrics['test_accuracy']:.2%}, train {metrics['train_accuracy']:.2%} "
                   f"({metrics.get('epochs')} epochs, seed {metrics.get('seed')}, {metrics.get('device')})")
    if m.multilabel and "test" in metrics:
        t, base = metrics["test"], (metrics.get("baselines") or {}).get("mlp")
        mlp = f"; MLP baseline {base['micro_f1']:.4f} / {base['macro_f1']:.4f}" if base else ""
        click.echo(f"F1          test, at the thresholds: subset accuracy {t['subset_accuracy']:.2%}, micro-F1 "
                   f"{t['micro_f1']:.4f}, macro-F1 {t['macro_f1']:.4f}{mlp}")
    for line in table_lines(metrics):
        click.echo(line)
    click.echo(f"model       {m.origin.architecture} ({m.origin.kind}, {m.origin.parameters:,} parameters)")
    click.echo(f"parity      checked on {m.parity.checked_on}")
    rows = []
    for f in m.files:
        p = m.parity.files.get(f.path)
        verdict = ("PASS" if p.get("passed") else "FAIL") if p else (unchecked(f.format)[0] or "-")
        rows.append((f.path, f.format, f.batch_size if f.fixed_batch else "any", f.opset or "-", f"{f.bytes:,}",
                     f.sha256[:12], verdict))
    click.echo(table(rows, ["file", "format", "batch", "opset", "bytes", "sha256", "parity"]))
    for f in m.files_of(INT8.name):
        click.echo(f"int8        {int8_summary(f.path, f.details)}")
    click.echo(f"versions    {', '.join(f'{k} {v}' for k, v in m.versions.items())}")


def table_lines(metrics: Mapping[str, Any], warn: bool = True) -> list[str]:
    """A table model's early stopping, its test calibration beside each scikit-learn baseline's, and the verdict."""
    from edgeclf.report.card import val_loss_name
    from edgeclf.train.calibration import baseline_verdict

    lines = []
    stop = metrics.get("early_stopping")
    if stop:
        lines.append(f"stopping    best validation {val_loss_name(metrics)} {stop['best_val_loss']:.4f} "
                     f"at epoch {stop['best_epoch']} "
                     f"of {stop['epochs_run']} (patience {stop['patience']}, {stop['validation_rows']:,} rows)")
    mine, base = (metrics.get("calibration") or {}).get("test"), metrics.get("baselines")
    if mine and base:
        for head, name, b in [("baselines", "this model", mine), *(("", n, v) for n, v in base.items())]:
            lines.append(f"{head:<12}{name:<23} accuracy {b['accuracy']:.2%}  log loss {b['log_loss']:.4f}  "
                         f"ECE {b['ece']:.4f}")
    verdict = baseline_verdict(dict(metrics))
    if verdict:
        lines.append(f"verdict     {verdict}")
    if warn and metrics.get("never_predicted"):
        lines.append(f"warning     {metrics['never_predicted']}")
    return lines


def int8_summary(path: str, d: Mapping[str, Any]) -> str:
    """One line of an int8 file's report (manifest details, export/int8.py): what quantising it cost."""
    from edgeclf.export.int8 import share

    measure, where = ("subset accuracy", "(row, label) cells") if "check.cells" in d else ("accuracy", "rows")
    return (f"{path}: {d.get('bytes.ratio', float('nan')):.2f}x the float file's bytes, test {measure} "
            f"{100 * float(d.get('test_accuracy.delta', float('nan'))):+.2f} points, labels agree "
            f"{share(float(d.get('check.label_agreement', float('nan'))))} on the check {where}, max probability diff "
            f"{float(d.get('check.max_abs_probability_diff', float('nan'))):.2g}")


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--parity", is_flag=True, help="Also draw parity.png: runtime vs eager on this machine's CPU.")
def plot(folder: str, parity: bool) -> None:
    """Draw FOLDER's pictures (decision regions or confusion matrix, calibration, training) and MODEL_CARD.md.

    \b
    Example:
      edgeclf plot artifacts/blobs --parity
    """
    needs_extra("torch", "sklearn", "matplotlib")
    from edgeclf.report.build import plot_artifact

    for name in plot_artifact(Path(folder), parity):
        click.echo(f"wrote {Path(folder) / name}")


@cli.command("serve-web")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--web", "web_dir", type=click.Path(file_okay=False), help="The page's folder. Default: the page "
              "installed with edgeclf.")
@click.option("--ort", "ort_dir", type=click.Path(file_okay=False), help="onnxruntime-web's dist/ folder. Default: "
              "the page folder's node_modules, else the page loads the pinned version from a CDN.")
@click.option("--artifacts", type=click.Path(file_okay=False), default="artifacts", show_default=True)
def serve_web(port: int, host: str, web_dir: str | None, ort_dir: str | None, artifacts: str) -> None:
    """Serve the browser page, onnxruntime-web and the artifacts on localhost (Ctrl-C stops).

    \b
    Example:
      edgeclf serve-web --port 8000    # then open http://127.0.0.1:8000/?task=blobs
      edgeclf serve-web --artifacts my_models --ort node_modules/onnxruntime-web/dist
    """
    from edgeclf.cli.serve import ORT_CDN, make_server

    server = make_server(Path(web_dir) if web_dir else None, Path(artifacts), host, port,
                         Path(ort_dir) if ort_dir else None)
    click.echo(f"serving http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    if server.ort is None:
        click.echo(f"onnxruntime-web: no local copy (pass --ort DIR), the page loads it from {ORT_CDN}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def parse_rows(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        rows = [int(v) for v in value.split(",")]
    except ValueError:
        rows = []
    if not rows or any(r < 1 for r in rows):
        raise click.BadParameter(f"{value!r}: expected comma-separated positive row counts, e.g. 1,64,4096")
    return rows


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False), required=False)
@click.option("--all", "every", is_flag=True, help="Every artifact folder under --out, then one summary table.")
@out_opt
@click.option("--rows", default="1,64,4096,1000000", show_default=True, callback=parse_rows,
              help="Comma-separated batch sizes N to time.")
@click.option("--threads", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the figures as JSON.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False),
              help="Also draw rows/s vs N (PNG); with --all, the Classifier's ratios to raw and eager vs N.")
@click.option("--no-cold", is_flag=True, help="Skip the cold-start subprocesses.")
@click.option("--layouts", is_flag=True, help="Instead: time the graph layouts export can write, per batch size "
              "(needs the checkpoint, torch and onnx).")
@click.option("--device", type=click.Choice(DEVICES[1:]), default="cpu", show_default=True,
              help="Where eager/TorchScript run; cuda also times the runtime on onnxruntime's CUDA provider.")
def bench(folder: str | None, every: bool, out: str, rows: list[int], threads: int, json_path: str | None,
          chart_path: str | None, no_cold: bool, layouts: bool, device: str) -> None:
    """Time Classifier.predict_proba against eager PyTorch, TorchScript and a raw onnxruntime session.run.

    \b
    Example:
      edgeclf bench artifacts/circles --rows 1,64,4096,1000000 --threads 2 --json bench.json
      edgeclf bench --all --threads 2 --chart ratios.png
      edgeclf bench artifacts/iris --layouts
    """
    from edgeclf.artifact.store import json_bytes, write_text_atomic

    if every == (folder is not None):
        raise click.UsageError("give one FOLDER or --all")
    folders = [Path(folder)] if folder is not None else artifact_folders(Path(out))
    if layouts:
        needs_extra("torch", "onnx")
        from edgeclf.bench.layouts import compare_layouts
        from edgeclf.bench.render import format_layouts

        found = [r for f in folders for r in compare_layouts(f)]
        if not found:
            raise EdgeclfError(f"no edgeclf-trained MLP in {', '.join(map(str, folders))}: nothing to compare")
        click.echo(format_layouts(found))
        if json_path:
            write_text_atomic(Path(json_path), json_bytes([{**vars(r), "timing": vars(r.timing)}
                                                           for r in found]).decode())
        return
    from edgeclf.bench.measure import run_bench
    from edgeclf.bench.render import chart, format_report, ratio_chart, summary

    if device == "cuda":
        needs_extra("torch")
        from edgeclf.train.loop import resolve_device

        resolve_device("cuda")  # a clear error without a GPU
    reports = []
    for f in folders:
        report = run_bench(f, rows, threads, cold=not no_cold and not every, device=device)
        click.echo(format_report(report) + "\n")
        reports.append(report)
    if every:
        click.echo(summary(reports))
    if json_path:
        data = [r.to_dict() for r in reports]
        write_text_atomic(Path(json_path), json_bytes(data if every else data[0]).decode())
    if chart_path:
        (ratio_chart(reports, Path(chart_path)) if every else chart(reports[0], Path(chart_path)))


def artifact_folders(out: Path) -> list[Path]:
    found = sorted(p.parent for p in out.glob("*/manifest.json"))
    if not found:
        raise EdgeclfError(f"no artifact folder (*/manifest.json) under {out}: run `edgeclf run` or give FOLDER")
    return found


cli.add_command(predict_command, "predict")
cli.add_command(serve_api.serve, "serve")


def main() -> None:
    try:
        cli(prog_name="edgeclf")
    except BrokenPipeError:  # `edgeclf predict ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        sys.exit(1)


def console() -> None:
    """The `edgeclf` command (edgeclf.cli.console wraps it for Ctrl-C during start-up). After a local `predict`
    has published its output (nothing left open, no child process), and after any error, the process ends without
    the interpreter's teardown: the atexit handlers run, stdout and stderr are flushed, then os._exit. Tearing down
    numpy, onnxruntime and the sessions took 65-120 ms here, a quarter of a one-row predict (docs/benchmarks.md);
    and after an error, a C++ thread pool still winding down (pyarrow's read-ahead, beside torch's) could abort
    the teardown ("terminate called without an active exception", exit 134) after the error line."""
    import threading

    from edgeclf.cli import predict

    predict.PUBLISHED = False
    try:
        main()  # click's standalone mode always ends in SystemExit
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        # only one thread left: nothing still working that the quick exit would cut off
        if (code == 0 and not predict.PUBLISHED) or threading.active_count() > 1:
            raise
        quick_exit(code)
    quick_exit(0)


def quick_exit(code: int) -> NoReturn:
    """Run the atexit handlers, flush, and end the process without the interpreter's teardown."""
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader left (EPIPE), or the disk is full: not a success
        os._exit(code or 1)
    os._exit(code)

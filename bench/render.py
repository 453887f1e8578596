"""The benchmark's report as text and as a chart."""

from __future__ import annotations

from pathlib import Path

from edgeclf.bench.layouts import CANDIDATES, LayoutTiming
from edgeclf.bench.measure import ENGINES, BenchReport
from edgeclf.report.text import table
from edgeclf.runtime import Manifest


def format_report(report: BenchReport) -> str:
    rows = sorted({t.rows for t in report.timings})
    engines = [e for e in ENGINES if any(t.engine == e for t in report.timings)]
    lines = [f"{report.folder}: {report.machine['cpu']}, {report.machine['cores']} cores, {report.threads} threads, "
             f"torch on {report.device}"]
    head = ["rows"] + [f"{e} M rows/s" for e in engines] + [f"clf/{e}" for e in ENGINES[:3]]
    body = []
    for n in rows:
        got = {e: report.get(e, n) for e in engines}
        cells: list[object] = [f"{n:,}"]
        cells += [f"{t.rows_per_s / 1e6:.3g} ±{(t.p90_s - t.p10_s) / t.median_s / 2:.0%}" if t else "-"
                  for t in got.values()]
        clf = got["classifier"]
        cells += [f"{t.median_s / clf.median_s:.2f}x" if (t and clf) else "-" for t in map(got.get, ENGINES[:3])]
        body.append(cells)
    lines.append(table(body, head))
    lines.append("")
    lines.append(table([(k, f"{v['wall_s']:.3f}", f"{v['peak_rss_mb']:.0f}") for k, v in report.cold_start.items()],
                       ["cold start", "wall s", "peak RSS MB"]))
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def chart(report: BenchReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for engine in ENGINES:
        pts = sorted((t.rows, t.rows_per_s) for t in report.timings if t.engine == engine)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=engine)
    ax.set(xscale="log", yscale="log", xlabel="rows per call (N)", ylabel="rows / s",
           title=f"{Path(report.folder).name}: throughput, {report.threads} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def format_layouts(rows: list[LayoutTiming]) -> str:
    """One line per task and batch size: each candidate's median us per call (its speed-up over the straight
    trace) and its largest probability difference from eager; * marks what `--layout auto` exports."""
    body = []
    for task, batch in dict.fromkeys((r.task, r.batch) for r in rows):
        got = {r.layout: r for r in rows if r.task == task and r.batch == batch}
        base = got["as-traced"].timing.median_s
        cells: list[object] = [task, f"{batch:,}"]
        for name in CANDIDATES:
            r = got[name]
            mark = "*" if r.chosen else ""
            cells.append(f"{r.timing.median_s * 1e6:,.1f} ({base / r.timing.median_s:.2f}x){mark}")
        cells.append(f"{max(r.max_abs_diff for r in got.values()):.1e}")
        body.append(cells)
    head = ["task", "batch"] + [f"{c} us" for c in CANDIDATES] + ["max |p - eager|"]
    return table(body, head) + "\n* = exported by --layout auto; (x) = speed-up over the straight trace, 1 thread"


def summary(reports: list[BenchReport]) -> str:
    """One line per artifact: F, C, the Classifier at the largest N, its ratios to eager and to a raw
    session.run there, its worst ratio to raw over all N, and its one-row latency."""
    body = []
    for r in reports:
        m = Manifest.read(Path(r.folder))[0]
        ns = sorted({t.rows for t in r.timings})
        big = ns[-1]

        def ratio(engine: str, n: int, r: BenchReport = r) -> float | None:
            a, c = r.get(engine, n), r.get("classifier", n)
            return a.median_s / c.median_s if a and c else None

        raw = [(v, n) for n in ns if (v := ratio("onnxruntime", n)) is not None]
        worst = min(raw) if raw else None
        one = r.get("classifier", 1)
        clf = r.get("classifier", big)
        cells: list[object] = [
            m.task, len(m.features), len(m.classes), m.onnx_files[-1].details.get("layout", "-"),
            f"{clf.rows_per_s / 1e6:.1f}" if clf else "-",
            _x(ratio("eager", big)), _x(ratio("onnxruntime", big)),
            f"{worst[0]:.2f}x at {worst[1]:,}" if worst else "-",
            f"{one.median_s * 1e6:.1f}" if one else "-", _x(ratio("onnxruntime", 1)),
        ]
        body.append(cells)
    threads = reports[0].threads if reports else 0
    big_n = max((t.rows for r in reports for t in r.timings), default=0)
    head = ["task", "F", "C", "layout", f"M rows/s at {big_n:,}", "vs eager", "vs raw", "worst vs raw",
            "1 row us", "1 row vs raw"]
    return (table(body, head) + f"\n{threads} threads; ratios = the other's median time / the Classifier's "
            "(above 1: the Classifier is faster)")


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v is not None else "-"


def ratio_chart(reports: list[BenchReport], path: Path) -> None:
    """Classifier speed-up over a raw session.run and over eager PyTorch, against N, one curve per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for ax, peer in zip(axes, ("onnxruntime", "eager")):
        for r in reports:
            pts = [(t.rows, t.median_s / c.median_s) for t in r.timings
                   if t.engine == peer and (c := r.get("classifier", t.rows)) is not None]
            if pts:
                ax.plot(*zip(*sorted(pts)), marker="o", label=Path(r.folder).name)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="rows per call (N)",
               ylabel=f"{'raw session.run' if peer == 'onnxruntime' else 'eager PyTorch'} time / Classifier time",
               title=f"Classifier vs {'raw onnxruntime' if peer == 'onnxruntime' else 'eager PyTorch'}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)

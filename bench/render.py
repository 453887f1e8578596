"""The benchmark's report as text and as a chart."""

from __future__ import annotations

from pathlib import Path

from edgeclf.bench.measure import ENGINES, BenchReport
from edgeclf.report.text import table


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

"""`edgeclf predict`: streaming scoring of files of any size, on this machine or on a Dask cluster.

pyarrow (and dask) are imported inside the command, and only where the input needs them (a small CSV in, CSV out is
read with the csv module), so `edgeclf --help`, the other commands and a one-row predict never load them.
"""

from __future__ import annotations

import click

PUBLISHED = False  # set once a local predict has written its output: edgeclf.cli.main.console may then end quickly
DEFAULT_BATCH_ROWS = 65536  # = edgeclf.scale.files.DEFAULT_BATCH_ROWS (not imported here: it would load pyarrow)


def split_columns(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.strip() for v in value for c in v.split(",") if c.strip())


@click.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", help="File (.csv, .parquet, .jsonl; default: CSV on stdout), or a folder for "
                                     "--engine dask.")
@click.option("--proba", is_flag=True, help="Add one proba_<class> column per class (a multi-label model: one "
                                           "proba_<label> per label, beside its 0/1 column named after the label).")
@click.option("--keep", multiple=True, callback=split_columns, help="Columns to pass through, e.g. --keep id,date.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=DEFAULT_BATCH_ROWS, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", help="Dask scheduler address (tcp://HOST:8786); default: a LocalCluster started here.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes of that LocalCluster.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict(artifact: str, inputs: tuple[str, ...], output: str | None, proba: bool, keep: tuple[str, ...],
            batch_rows: int, overwrite: bool, engine: str, scheduler: str | None, workers: int | None,
            quiet: bool) -> None:
    """Score INPUTS (files or globs of CSV, Parquet, JSONL, .npy; '-' = CSV on stdin) with ARTIFACT's model.

    \b
    Example:
      edgeclf predict artifacts/circles points.csv --proba
      edgeclf predict artifacts/circles 'in/*.parquet' --output pred.parquet --keep id
      edgeclf predict artifacts/circles 'in/*.parquet' --output out/ --engine dask --workers 2
    """
    global PUBLISHED
    if engine == "local" and (scheduler or workers):
        raise click.UsageError("--scheduler and --workers need --engine dask")
    if engine == "dask":
        from edgeclf.scale.dask import score_dask

        if output is None or len(inputs) != 1:
            raise click.UsageError("--engine dask needs one input glob and --output FOLDER")
        report = score_dask(artifact, inputs[0], output, proba=proba, keep=keep, scheduler=scheduler,
                            workers=workers, overwrite=overwrite)
    else:
        from edgeclf.scale.local import score_local  # pyarrow only where the input needs it

        report = score_local(artifact, inputs, output, proba=proba, keep=keep, batch_rows=batch_rows,
                             overwrite=overwrite, progress=not quiet)
    click.echo(str(report), err=True)
    PUBLISHED = engine == "local"

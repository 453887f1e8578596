"""The one-line errors about a table, shared by every reader (pyarrow's and the small-input path's), so that a
mistake reads the same whichever path met it and no reader's own wording reaches the user. Pure Python."""

from __future__ import annotations

from typing import Any, Sequence

from edgeclf.runtime.errors import InputError


def one_line(msg: str, **fields: Any) -> InputError:
    """An InputError of one line whatever the column names or values hold."""
    return InputError(msg.replace("\r", "\\r").replace("\n", "\\n"), **fields)


def show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def position(path: str, kind: str, row: int) -> str:
    """A row's position as its file names it: lines for text files (header on line 1 in CSV), else the row."""
    if kind == "csv":
        return f"{path} line {row + 2:,}"
    if kind == "jsonl":
        return f"{path} line {row + 1:,}"
    return f"{path} row {row:,} (0-based)"


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_header(names: Sequence[str], where: str, expected: str) -> None:
    """A first line of numbers only is data, not a header: say what the header should be."""
    if names and all(is_number(n) for n in names):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise one_line(f"{where}: the first line ({shown}) is all numbers: {expected}", file=where)


def expected_header(features: Sequence[str], keep: Sequence[str] = ()) -> str:
    columns = ",".join(dict.fromkeys([*features, *keep]))
    return f"expected a header line naming the columns, such as: {columns}"


def check_columns(where: str, names: Sequence[str], features: Sequence[str], keep: Sequence[str] = (), *,
                  header: bool = True) -> None:
    """The columns hold every feature and every kept column (any order, extra columns ignored); header: they come
    from a text file's first line, which must not be data."""
    missing = [f for f in features if f not in names]
    if header and missing:  # (features may be named like numbers: then a first line of numbers is their header)
        check_header(names, where, expected_header(features, keep))
    if missing:
        raise one_line(f"{where} has no column {missing[0]!r}: expected the features {', '.join(features)} "
                       f"(found {', '.join(names[:20])})", file=where, column=missing[0])
    absent = [k for k in keep if k not in names]
    if absent:
        raise one_line(f"--keep column {absent[0]!r} is not in {where} (columns: {', '.join(names[:20])})",
                       file=where, column=absent[0])


def bad_cell_count(at: str, got: int, expected: int) -> InputError:
    return one_line(f"{at} has {got} cells where the header has {expected}")


def not_a_number(at: str, column: str, value: Any) -> InputError:
    return one_line(f"{at}: column {column!r}: value {show(value)} is not a number; expected numbers", column=column)


def empty_feature(at: str, feature: str) -> InputError:
    return one_line(f"{at}: feature {feature!r} is empty: expected a number", column=feature)


def nonfinite(at: str, column: str | None) -> InputError:
    return one_line(f"{at}: NaN or inf (or a value beyond float32) in column {column!r}: expected finite numbers",
                    column=column)


def empty_file(where: str, features: Sequence[str], keep: Sequence[str] = ()) -> InputError:
    return one_line(f"{where} is an empty CSV file: {expected_header(features, keep)}", file=where)

"""The few typed errors of edgeclf. Each subclasses a built-in so callers can catch either."""

from __future__ import annotations

from typing import Any, Sequence


class EdgeclfError(Exception):
    """Base of every error edgeclf raises for a mistake in its inputs or artifacts."""


class InputError(EdgeclfError, ValueError):
    """Bad data or a bad argument: the message names the value and what was expected.

    Where the data has a position, it is also in fields, so that a caller that knows more (the file, the line)
    can say so without checking the data again: file, line (1-based, in a text file), row (0-based, of the
    array or batch checked) and column (a feature's name)."""

    def __init__(self, message: str = "", *, file: str | None = None, line: int | None = None,
                 row: int | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.file, self.line, self.row, self.column = file, line, row, column


class OutputExists(InputError):
    """An output file or folder that is there already. The message names the way to replace it in the caller's
    words: overwrite=True in the API; the CLI says --overwrite (cli_message)."""

    def __init__(self, output: str, when: str = "already exists") -> None:
        self.output, self.when = output, when
        super().__init__(f"output {output!r} {when}: pass overwrite=True to replace it")

    def cli_message(self) -> str:
        return f"output {self.output!r} {self.when}: pass --overwrite to replace it"


class UnseenCategory(InputError):
    """A category column's value that training never saw, or an empty cell there: the one message for every
    reader and runtime (the graph alone would give it an all-zero code, silently). at: where it is ("row 3",
    "f.csv line 5"); indices: the caller also takes the value's index in the vocabulary. Callers that know more
    about the position re-raise it with their `at` from value, vocab, column and row."""

    def __init__(self, at: str, column: str, value: Any, vocab: Sequence[str], *, indices: bool = False,
                 row: int | None = None) -> None:
        self.value, self.vocab, self.indices = value, tuple(vocab), indices
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        # a CSV reader gives an empty text cell as "" or as null, a DataFrame or a float array as NaN
        empty = value is None or value == "" or (isinstance(value, float) and value != value)
        what = "empty cell" if empty else f"{shown} is not a category seen in training"
        hint = f" (or its index 0..{len(vocab) - 1})" if indices else ""
        text = f"{at}, column {column!r}: {what}; expected one of {list(vocab)}{hint}"
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"), row=row, column=column)  # one line

    def at(self, where: str) -> UnseenCategory:
        """The same error at a position its caller names better."""
        return UnseenCategory(where, self.column or "", self.value, self.vocab, indices=self.indices, row=self.row)


class ArtifactError(EdgeclfError, RuntimeError):
    """A missing, tampered or malformed artifact folder, manifest or model file."""


class ParityError(EdgeclfError, AssertionError):
    """An exported file does not reproduce eager PyTorch within the tolerance policy."""


def first_line(e: BaseException | str) -> str:
    """An error's first line, at most 300 characters: messages stay one line."""
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__

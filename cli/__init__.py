"""The `edgeclf` command line. console() is the installed entry point: it imports the CLI itself, so that a
Ctrl-C during start-up ends the command like one during its work (exit 130, no traceback)."""

from __future__ import annotations


def console() -> None:
    """`edgeclf`: edgeclf.cli.main.console, with Ctrl-C during its imports ending in exit code 130."""
    try:
        from edgeclf.cli.main import console as run
    except KeyboardInterrupt:
        _interrupted()
    try:
        run()
    except KeyboardInterrupt:  # outside click's invoke (parsing, teardown): the same exit
        _interrupted()


def _interrupted() -> None:
    import os
    import sys

    try:
        sys.stderr.write("\n")
        sys.stderr.flush()
    finally:
        os._exit(130)  # 128 + SIGINT; no teardown: whatever was loading is left as it is

"""The one place below the CLI that writes to the terminal.

Messages go to stderr so that stdout stays clean for tables and ``--json`` output.
``set_quiet(True)`` silences them (tests, library use).
"""

from __future__ import annotations

import sys

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def log(message: str) -> None:
    if not _state["quiet"]:
        print(message, file=sys.stderr, flush=True)


def bar(total: int, desc: str):
    """A per-batch progress bar on an interactive terminal; a no-op object otherwise."""
    if _state["quiet"] or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="batch", file=sys.stderr)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

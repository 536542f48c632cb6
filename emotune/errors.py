"""Errors a user can act on.

Every message says what is wrong, where (file and line when there is one) and how to fix it.
The CLI prints ``emotune: error: <message>`` and exits 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class EmotuneError(Exception):
    """A problem the user can fix; the message is shown as one line."""


class ConfigError(EmotuneError):
    """A bad setting: unknown key, wrong type or a value out of range."""


class DataError(EmotuneError):
    """A dataset that cannot be found, read or used."""


class EmbeddingError(EmotuneError):
    """Word vectors that cannot be found or read."""


def where(path: object, line: int | None = None) -> str:
    """``path`` or ``path line N``, for messages."""
    return f"{path} line {line}" if line is not None else f"{path}"


class TrainingError(EmotuneError):
    """Training itself failed (it diverged), not the input."""

"""What every ``emotune`` command shares: the ``Command`` base class, the output layer and the
common options.

A command is one small class with its parser beside its action (Optuna's CLI habit):
``add_arguments(parser)`` declares its flags, ``take_action(args)`` calls the API and prints
through ``self.out``. Nothing here imports TensorFlow, KerasTuner, pandas or scikit-learn: the
commands import them inside ``take_action``, after the input has been checked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar, TextIO

from emotune.config import MODEL_TYPES
from emotune.tables import FORMATS, render, to_json


class Output:
    """Where a command's results go.

    With ``--format table`` (the default) everything is printed as it always was. With
    ``markdown``, ``json`` or ``csv``, stdout holds the data and nothing else: notes go to
    stderr, and so does anything else printed while the command runs (``guard``), so that
    ``emotune leaderboard --format json | jq`` always reads JSON.

    Args:
        fmt: one of ``emotune.tables.FORMATS``.
        stream: where the data go (default: ``sys.stdout`` at construction).
    """

    def __init__(self, fmt: str = "table", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stdout

    @property
    def machine(self) -> bool:
        """True when stdout is for the data alone (every format but ``table``)."""
        return self.fmt != "table"

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Send stray prints (KerasTuner's, Keras's) to stderr while stdout is for data."""
        if not self.machine:
            yield
            return
        with contextlib.redirect_stdout(sys.stderr):
            yield

    def text(self, text: str) -> None:
        """Print ``text`` on the data stream as it is, with one final newline."""
        print(text.rstrip("\n"), file=self.stream)

    def note(self, line: str = "") -> None:
        """A line for the reader (a path written, a count): stdout in ``table``, else stderr."""
        print(line, file=sys.stderr if self.machine else self.stream)

    def records(self, records: Any, columns: list[str] | None = None, *,
                table: str | None = None, markdown: str | None = None,
                document: Any = None, **style: Any) -> None:
        """Print ``records`` in the chosen format (see ``emotune.tables.render``).

        Args:
            records: a list of mappings or a DataFrame: the rows of ``csv`` and ``json``.
            columns: their order (default: every key).
            table: the ``table`` output when the command has its own layout.
            markdown: the ``markdown`` output when it differs from the records (a report's
                rounded "mean ± std" cells).
            document: the ``json`` output when it is richer than the rows.
            **style: ``headers``, ``cells``, ``align``... for ``table`` and ``markdown`` (CSV
                and JSON keep the raw values).
        """
        if self.fmt == "table" and table is not None:
            return self.text(table)
        if self.fmt == "markdown" and markdown is not None:
            return self.text(markdown)
        if self.fmt == "json" and document is not None:
            return self.text(to_json(document))
        self.text(render(records, columns, self.fmt, **style))


class Command:
    """One ``emotune`` command: its arguments beside its action.

    Subclasses set ``name`` (``"data info"`` for a subcommand of ``data``), ``help`` (its line
    in ``emotune --help``) and ``description``, and implement ``add_arguments`` and
    ``take_action``. One that prints data sets ``prints_data``: it gets ``--format`` (and
    ``--json``) and prints through ``self.out``.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    description: ClassVar[str] = ""
    prints_data: ClassVar[bool] = False

    def __init__(self) -> None:
        self.out = Output()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare this command's flags on ``parser``."""

    def take_action(self, args: argparse.Namespace) -> int:
        """Run the command; return the exit status. Raise ``EmotuneError`` for a user error."""
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        """``take_action`` with the output chosen by ``--format``."""
        self.out = Output(getattr(args, "format", "table"))
        with self.out.guard():
            return self.take_action(args)


# ---------------------------------------------------------------- shared options


def add_format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", choices=FORMATS, default="table",
                   help="how to print the results: an aligned table (default), Markdown, JSON "
                        "or CSV; with markdown, json and csv stdout holds the data alone")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="the same as --format json")


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="YAML file overriding any settings of experiments/defaults.yaml")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", dest="sets", default=[],
                   help="override one setting, e.g. --set lr=0.005 --set model.units=64 "
                        "(repeatable)")
    p.add_argument("--data", metavar="PATH",
                   help="directory of train/val/test files (.txt text;label, .csv, .tsv, "
                        ".jsonl, .parquet; label lists or GoEmotions' TSV with labels.txt for "
                        "multi-label data) or one file to split; default: the dataset named by "
                        "data.dataset (emotion; goemotions) from $EMOTUNE_DATA "
                        "($EMOTUNE_GOEMOTIONS_DATA), the user cache, or a verified download")
    p.add_argument("--glove", metavar="PATH",
                   help="GloVe .txt or .zip to use instead of the packaged 6B 50-d vectors")


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODEL_TYPES,
                   help="model type (default: model.type of the config, gru)")


# ---------------------------------------------------------------- helpers of the actions


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--data, --glove and --set as settings."""
    from emotune.config import parse_sets

    overrides: dict[str, Any] = {}
    if args.data:
        overrides["data.path"] = args.data
    if args.glove:
        overrides["embeddings.source"] = args.glove
    overrides.update(parse_sets(args.sets))
    return overrides


def load_config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    """The configuration of --config, then ``extra``, then --data/--glove/--set."""
    from emotune.config import build_config

    return build_config(args.config, {**(extra or {}), **cli_overrides(args)})


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probing) hidden.

    Those lines are written before TF's log level is read, so stderr is pointed at /dev/null
    for the import only; ``--debug`` skips this and shows everything.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import warnings

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices between trials
    warnings.filterwarnings("ignore", module="keras")

"""The ``emotune`` command: parse arguments, call the API, print. Nothing else lives here.

Each command is a small class beside its parser (``emotune.cli.base.Command``); ``COMMANDS``
lists them in the order ``emotune --help`` shows. A known user error (``EmotuneError``) prints
one line and exits 1, a bad flag one line and exit 2; ``--debug`` shows the traceback.
TensorFlow, KerasTuner, pandas and scikit-learn are imported only by the commands that use
them, so ``emotune --help`` starts at once.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from emotune import __version__
from emotune.cli.base import Command, add_format_option
from emotune.cli.inspection import DataInfo, EmbeddingsInfo
from emotune.cli.searching import Chief, Search, Worker
from emotune.cli.studies import Baseline, Leaderboard, Recommend, Report
from emotune.cli.training import Ensemble, FinalTrain, Predict, Train
from emotune.errors import EmotuneError

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

COMMANDS: tuple[type[Command], ...] = (
    Train, Search, Chief, Worker, Recommend, Report, FinalTrain, Predict, Baseline, Ensemble,
    Leaderboard, DataInfo, EmbeddingsInfo)
# Commands with subcommands ("data info"): (help, description) of the group.
GROUPS = {"data": ("inspect a dataset", "Inspect a dataset."),
          "embeddings": ("inspect word vectors", "Inspect word vectors.")}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, with where to look for help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in ``COMMANDS``; ``args.handler`` is the chosen command."""
    parser = _Parser(prog="emotune",
                     description="Find, train and explain text emotion classifiers over GloVe.")
    parser.add_argument("--version", action="version", version=f"emotune {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's own logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's own logging")
    groups: dict[str, argparse._SubParsersAction] = {}
    for command_type in COMMANDS:
        command = command_type()
        group, _, leaf = command.name.rpartition(" ")
        if group and group not in groups:
            help_, description = GROUPS[group]
            g = sub.add_parser(group, help=help_, description=description)
            groups[group] = g.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND",
                                             parser_class=_Parser, required=True)
        p = (groups[group] if group else sub).add_parser(
            leaf, parents=[common], help=command.help, description=command.description)
        command.add_arguments(p)
        if command.prints_data:
            add_format_option(p)
        p.set_defaults(handler=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``emotune`` command line.

    Args:
        argv: the arguments after ``emotune`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 after a user error (one line on stderr, the
        traceback too with ``--debug``), 130 after Ctrl-C. A bad flag exits with status 2
        (``SystemExit``) after one line on stderr.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    from emotune.provenance import set_command

    set_command(argv)
    command: Command | None = getattr(args, "handler", None)
    if command is None:
        parser.print_help()
        return EXIT_USAGE
    debug = args.debug = bool(getattr(args, "debug", False))
    try:
        return command.run(args)
    except EmotuneError as e:
        if debug:
            traceback.print_exc()
        print(f"emotune: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("emotune: interrupted; nothing partial was written (a search keeps its "
              "finished trials: run it again to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED

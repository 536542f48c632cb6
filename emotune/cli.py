"""The ``emotune`` command: parse arguments, call the API, print. Nothing else lives here.

A known user error (``EmotuneError``, a bad flag) prints one line and exits non-zero; ``--debug``
shows the traceback. TensorFlow is imported only by the commands that train.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from emotune import __version__, commands
from emotune.config import MODEL_TYPES
from emotune.errors import EmotuneError
from emotune.search import STRATEGIES

EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, with where to look for help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------- shared options


def _config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="YAML file overriding any settings of experiments/defaults.yaml")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", dest="sets", default=[],
                   help="override one setting, e.g. --set lr=0.005 --set model.units=64 "
                        "(repeatable)")
    p.add_argument("--data", metavar="PATH",
                   help="directory of train/val/test files (.txt text;label, .csv, .tsv, "
                        ".jsonl, .parquet) or one file to split; default: the emotion dataset "
                        "from $EMOTUNE_DATA, the user cache, or a download")
    p.add_argument("--glove", metavar="PATH",
                   help="GloVe .txt or .zip to use instead of the packaged 6B 50-d vectors")


def _search_options(p: argparse.ArgumentParser) -> None:
    """What defines a study and how it runs: shared by search, chief and worker."""
    p.add_argument("--model", choices=MODEL_TYPES,
                   help="model type (default: model.type of the config, gru)")
    p.add_argument("--param", metavar="NAME",
                   help="parameter(s) to sweep one at a time: lr, batch_size, units, dropout, "
                        "optimizer, embedding (comma-separated), or all")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="joint search over all parameters (or those given by --param)")
    p.add_argument("--trials", type=int, help="joint searches: at most N trials "
                                              "(search.trials, default 20)")
    p.add_argument("--repeats", type=int, metavar="K",
                   help="train every configuration with K seeds; keep mean and std")
    p.add_argument("--prune", action="store_true",
                   help="median stopping: stop a trial whose val accuracy falls below the "
                        "median of finished trials at the same epoch (grid/bayesian/random)")
    p.add_argument("--budget", metavar="DURATION",
                   help="start no new trial after this long (e.g. 15m, 1h30m); the current "
                        "one finishes; rerun to continue")
    p.add_argument("--sample", type=int, metavar="N",
                   help="train on a stratified subsample of N training rows (smoke runs)")
    p.add_argument("--epochs", type=int, help="at most this many epochs per trial")
    p.add_argument("--project", metavar="DIR",
                   help="study folder (default: runs/<model>-<param or strategy>)")
    p.add_argument("--keep-models", action="store_true",
                   help="keep every trial's model, not only the best one")
    _config_options(p)


# ---------------------------------------------------------------- parser and main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emotune",
                     description="Find, train and explain text emotion classifiers over GloVe.")
    parser.add_argument("--version", action="version", version=f"emotune {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's own logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's own logging")

    p = sub.add_parser("train", parents=[common], help="train one configuration",
                       description="Train one configuration with early stopping and write a "
                                   "run folder (config, history.csv, metrics.json).")
    p.add_argument("--model", choices=MODEL_TYPES,
                   help="model type (default: model.type of the config, gru)")
    _config_options(p)
    p.add_argument("--epochs", type=int, help="at most this many epochs (train.epochs)")
    p.add_argument("--seed", type=int, help="random seed (train.seed)")
    p.add_argument("--out", metavar="DIR",
                   help="run folder to create (default: runs/train/<model>-<mode>-<time>)")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser(
        "search", parents=[common], help="one-at-a-time sweeps and joint KerasTuner searches",
        description="Search hyperparameters with KerasTuner. --param NAME sweeps one "
                    "parameter over its values (search.sweeps) with the others at their "
                    "defaults; --param all runs the six sweeps as one study, training the "
                    "shared default configuration once; --strategy runs a joint search. Every "
                    "trial uses early stopping; the objective is val accuracy at the best "
                    "epoch. Running the same command again resumes the study.")
    _search_options(p)
    p.add_argument("--overwrite", action="store_true", help="delete the study and start over")
    p.add_argument("--workers", type=int, metavar="N",
                   help="run N trials at a time: a KerasTuner chief and N worker processes on "
                        "this machine, each with its share of the cores")
    p.add_argument("--role", choices=["chief", "worker"], help=argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_search)

    p = sub.add_parser(
        "chief", parents=[common], help="serve a search to workers on other machines",
        description="Serve a search to `emotune worker` processes on other machines "
                    "(KerasTuner's distributed mode: the chief runs the oracle over gRPC and "
                    "trains nothing). Takes the same study options as `search`; every worker "
                    "must be given the same ones and the same --project, on a folder all "
                    "machines share. Exits when the study is done and every worker has "
                    "finished. README: \"Several machines\".")
    _search_options(p)
    p.add_argument("--overwrite", action="store_true", help="delete the study and start over")
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (default: all interfaces)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.set_defaults(func=commands.cmd_chief)

    p = sub.add_parser(
        "worker", parents=[common], help="train trials served by an `emotune chief`",
        description="Pull trials from an `emotune chief`, train them and report back, until "
                    "the study is done. Give the same study options and --project as the "
                    "chief. A worker that died is restarted with the same command (the same "
                    "--id): the chief hands it back the trial it was running.")
    _search_options(p)
    p.add_argument("--chief", required=True, metavar="HOST:PORT",
                   help="where `emotune chief` listens, e.g. 10.0.0.5:8000")
    p.add_argument("--id", dest="worker_id", metavar="NAME",
                   help="this worker's KerasTuner id, unique per worker (default: the host "
                        "name); reuse it when restarting a worker")
    p.add_argument("--threads", type=int, metavar="N",
                   help="TensorFlow threads for this worker (default: all cores)")
    p.add_argument("--wait", type=float, default=300, metavar="SECONDS",
                   help="give up if the chief does not answer within this long (default 300)")
    p.set_defaults(func=commands.cmd_worker)

    p = sub.add_parser(
        "recommend", parents=[common], help="best value per parameter and a configuration",
        description="For each searched parameter: its best value with val accuracy and loss "
                    "(mean ±std with --repeats); the recommended combined configuration and its "
                    "expected val accuracy. Writes reports/<study>/recommendations.{md,csv,json} "
                    "and experiments/recommended-<study>.yaml (accepted by train and "
                    "final-train). Uses the validation split only.")
    p.add_argument("--project", nargs="+", required=True, metavar="DIR",
                   help="study folder(s) of `emotune search`")
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.add_argument("--experiments-dir", default="experiments", metavar="DIR")
    p.add_argument("--config-out", metavar="FILE",
                   help="write the configuration here instead of "
                        "<experiments-dir>/recommended-<study>.yaml (one study only)")
    p.set_defaults(func=commands.cmd_recommend)

    p = sub.add_parser(
        "report", parents=[common], help="figures, tables and index.html for studies",
        description="Write reports/<study>/: a plot per parameter (best marked), best value "
                    "per parameter, all sweeps side by side, per-trial curves, for joint "
                    "searches the history, parallel coordinates and importance; with several "
                    "studies a comparison. Plus summary.md, trials.csv and a self-contained "
                    "index.html.")
    p.add_argument("--project", nargs="+", required=True, metavar="DIR",
                   help="study folder(s); several give a comparison (e.g. gru vs lstm vs cnn)")
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports/<study>)")
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser(
        "final-train", parents=[common], help="retrain the chosen configuration, test it once",
        description="Retrain a study's recommended configuration (--project) or a config file "
                    "(--config) on train with early stopping on val, then evaluate on the test "
                    "split once. Writes the model bundle models/<name>/ and "
                    "reports/<name>/final/ (metrics, per-class table, confusion matrix, "
                    "curves); with --seeds, one of each per seed and their mean ± std.")
    p.add_argument("--project", metavar="DIR", help="study whose recommendation to train")
    p.add_argument("--name", help="bundle name (default: the study or config file name)")
    p.add_argument("--seed", type=int, help="random seed (train.seed)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="N",
                   help="train once per seed (models/<name>/seed-<N>/, reports/<name>/final/"
                        "seed-<N>/) and report each seed and their mean ± std in "
                        "reports/<name>/final/final.md")
    p.add_argument("--models-dir", default="models", metavar="DIR")
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    _config_options(p)
    p.set_defaults(func=commands.cmd_final_train)

    p = sub.add_parser(
        "predict", parents=[common], help="classify texts with a trained bundle",
        description="Label and class probabilities for each text, tokenised as in training.")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--model-dir", required=True, metavar="DIR",
                   help="a bundle written by final-train (models/<name>)")
    p.add_argument("--file", metavar="FILE", help="classify each line of FILE")
    p.add_argument("--json", action="store_true", help="print JSON with all probabilities")
    p.set_defaults(func=commands.cmd_predict)

    p = sub.add_parser(
        "baseline", parents=[common], help="majority class and TF-IDF + logistic regression",
        description="Scores for scale on the same splits: the majority class, and TF-IDF "
                    "(word 1-2 grams) + logistic regression with C chosen on val. Writes "
                    "reports/baseline/baseline.{md,json}.")
    _config_options(p)
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.set_defaults(func=commands.cmd_baseline)

    p = sub.add_parser(
        "ensemble", parents=[common], help="average several bundles (e.g. the seeds)",
        description="Average the class probabilities of bundles of one configuration (the "
                    "seeds of final-train --seeds): one Keras model, saved as bundle "
                    "models/<name>/ that predict reads, evaluated like final-train (val for "
                    "the record, test once) in reports/<name>/final/.")
    p.add_argument("members", nargs="+", metavar="BUNDLE", help="bundle folders (models/...)")
    p.add_argument("--name", required=True, help="name of the ensemble's bundle and report")
    p.add_argument("--data", metavar="PATH", help="the members' data folder, if not where "
                                                  "their config.yaml says")
    p.add_argument("--models-dir", default="models", metavar="DIR")
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.set_defaults(func=commands.cmd_ensemble)

    p = sub.add_parser(
        "leaderboard", parents=[common], help="all final models and baselines in one table",
        description="Every model final-train wrote to the reports folder (mean ± std over "
                    "seeds where it has several) and the baselines, best validation accuracy "
                    "first, with test accuracy, macro-F1 and per-class F1. Writes "
                    "<reports-dir>/leaderboard.md.")
    p.add_argument("--reports-dir", default="reports", metavar="DIR")
    p.set_defaults(func=commands.cmd_leaderboard)

    p = sub.add_parser("data", help="inspect a dataset", description="Inspect a dataset.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_Parser,
                            required=True)
    p = dsub.add_parser("info", parents=[common], help="rows, labels, lengths, duplicates",
                        description="Rows per split and label, text length percentiles, "
                                    "vocabulary, duplicates within and across splits, checksum.")
    _config_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=commands.cmd_data_info)

    p = sub.add_parser("embeddings", help="inspect word vectors",
                       description="Inspect word vectors.")
    esub = p.add_subparsers(dest="emb_command", metavar="SUBCOMMAND", parser_class=_Parser,
                            required=True)
    p = esub.add_parser("info", parents=[common], help="coverage of the vocabulary",
                        description="Build (or load from cache) the vocabulary-aligned GloVe "
                                    "matrix and report its coverage.")
    _config_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=commands.cmd_embeddings_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    debug = args.debug = bool(getattr(args, "debug", False))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EmotuneError as e:
        if debug:
            traceback.print_exc()
        print(f"emotune: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("emotune: interrupted; finished results are kept, partial ones removed",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

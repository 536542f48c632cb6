"""The ``emotune`` command: parse arguments, call the API, print. Nothing else lives here.

A known user error (``EmotuneError``, a bad flag) prints one line and exits non-zero; ``--debug``
shows the traceback. TensorFlow is imported only by the commands that train.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emotune import __version__
from emotune.errors import EmotuneError

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


def _load_config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    from emotune.config import build_config, parse_sets

    overrides: dict[str, Any] = dict(extra or {})
    if args.data:
        overrides["data.path"] = args.data
    if args.glove:
        overrides["embeddings.source"] = args.glove
    overrides.update(parse_sets(args.sets))
    return build_config(args.config, overrides)


def _import_tensorflow_quietly() -> None:
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


# ---------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from emotune.progress import log
    from emotune.train import default_run_dir, fit, load_inputs, write_run

    extra: dict[str, Any] = {"model.type": args.model} if args.model else {}
    if args.epochs is not None:
        extra["train.epochs"] = args.epochs
    if args.seed is not None:
        extra["train.seed"] = args.seed
    config = _load_config(args, extra)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    if run_dir.exists():
        raise EmotuneError(f"run folder {run_dir} already exists; choose another --out")
    _, prepared, embedding = load_inputs(config)
    if not args.debug:
        _import_tensorflow_quietly()  # only now: bad input above fails in well under a second
    e = embedding.summary()
    log(f"data: {len(prepared.train.labels)} train / {len(prepared.val.labels)} val rows, "
        f"{len(prepared.vocab)} words, max_len {prepared.max_len}; GloVe {e['dim']}-d covers "
        f"{e['type_coverage']:.1%} of words, {e['token_coverage']:.1%} of tokens")
    m, t = config.model, config.train
    log(f"training {m.type} units={m.units} embedding={m.embedding} dropout={m.dropout} "
        f"{t.optimizer} lr={t.lr} batch={t.batch_size} (at most {t.epochs} epochs, "
        f"patience {t.patience})")
    result = fit(config, prepared, embedding)
    write_run(run_dir, config, result, prepared, embedding)
    r = result.metrics
    print(f"val_accuracy {r['val_accuracy']:.4f}  val_loss {r['val_loss']:.4f}  "
          f"val_macro_f1 {r['val_macro_f1']:.4f}  best_epoch {r['best_epoch']}/"
          f"{r['epochs_run']}  {r['seconds']:.1f}s")
    print(f"run folder: {run_dir}")
    return 0


def _study_from_args(args: argparse.Namespace, config: Any) -> Any:
    from emotune.search import Study
    from emotune.space import PARAMS, SearchSpace, resolve_param

    if not args.param and not args.strategy:
        raise EmotuneError("say what to search: --param NAME (or all) for a one-at-a-time "
                           "sweep, or --strategy grid|bayesian|random|hyperband for a joint "
                           "search")
    names = [n.strip() for n in (args.param or "all").split(",") if n.strip()]
    params = list(PARAMS) if names == ["all"] else [resolve_param(n) for n in names]
    if len(set(params)) != len(params):
        raise EmotuneError(f"--param names a parameter twice: {args.param}")
    strategy = args.strategy or "sweep"
    sweep = strategy == "sweep"
    SearchSpace(config, params, sweep)  # checks every value before any data is read
    trials = None if sweep or strategy == "hyperband" else config.search.trials
    return Study(config.model.type, tuple(params), strategy, trials, config.search.repeats,
                 args.sample, config.search.prune)


def _table(frame: Any, columns: list[str]) -> str:
    """A plain-text table of ``columns`` (floats to 4 places)."""
    def cell(value: Any, column: str) -> str:
        if isinstance(value, float) and (value.is_integer() or column == "lr"):
            return f"{value:g}"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    cells = [list(columns)]
    cells += [[cell(row[c], c) for c in columns] for _, row in frame.iterrows()]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells)


def cmd_search(args: argparse.Namespace) -> int:
    from emotune.data import subsample
    from emotune.progress import log
    from emotune.results import top
    from emotune.search import parse_budget, run_search
    from emotune.space import PARAMS
    from emotune.train import load_inputs

    extra: dict[str, Any] = {"model.type": args.model} if args.model else {}
    for key, value in (("search.trials", args.trials), ("search.repeats", args.repeats),
                       ("train.epochs", args.epochs)):
        if value is not None:
            extra[key] = value
    if args.prune:
        extra["search.prune"] = True
    config = _load_config(args, extra)
    budget_s = parse_budget(args.budget)
    if args.sample is not None and args.sample < 1:
        raise EmotuneError(f"--sample must be a positive number of rows. Received: "
                           f"{args.sample}")
    study = _study_from_args(args, config)
    label = "all" if len(study.params) == len(PARAMS) else "-".join(study.params)
    name = f"{study.model}-{label}" if study.sweep else f"{study.model}-{study.strategy}"
    project = Path(args.project or Path("runs") / name)
    _, prepared, embedding = load_inputs(config)
    if args.sample:
        prepared = subsample(prepared, args.sample, config.data.split_seed)
    if not args.debug:
        _import_tensorflow_quietly()
    log(f"study {project}: {study.describe()}; {len(prepared.train.labels)} training rows"
        f"{f', {study.repeats} seeds each' if study.repeats > 1 else ''}")
    outcome = run_search(study, config, prepared, embedding, project=project,
                         overwrite=args.overwrite, keep_models=args.keep_models,
                         budget_s=budget_s)
    frame = outcome.trials
    best = top(frame, 5)
    if not best.empty:
        cols = ["trial_id", "status", *study.params, "val_accuracy", "val_loss", "best_epoch",
                "epochs_run", "seconds"]
        if study.repeats > 1:
            cols.insert(cols.index("val_loss"), "val_accuracy_std")
        print(_table(best, cols))
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    print(f"{len(frame)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
          f"{outcome.trained_now} trained in this run, {outcome.seconds:.0f}s")
    if outcome.budget_spent:
        print(f"budget {args.budget} spent: no new trial was started; run the same command "
              f"again to continue")
    print(f"trials: {project / 'trials.csv'}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from emotune.data import describe, load_dataset, prepare

    config = _load_config(args)
    dataset = load_dataset(config.data)
    info = describe(dataset, prepare(dataset, config.data))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset {info['dataset']}  ({', '.join(info['files'])})")
    print(f"sha256 {info['checksum']}")
    print(f"vocabulary (train) {info['vocabulary']} words, max_len {info['max_len']} tokens")
    names = info["labels"]
    width = max(len(n) for n in names + ["rows"]) + 2
    print("".ljust(width) + "".join(s.rjust(9) for s in info["splits"]))
    for n in ["rows", *names]:
        cells = [sp["rows"] if n == "rows" else sp["per_label"][n] for sp in
                 info["splits"].values()]
        print(n.ljust(width) + "".join(str(c).rjust(9) for c in cells))
    print("words per text (p0 / p50 / p90 / p99 / p100):")
    for s, sp in info["splits"].items():
        p = sp["words_percentiles"]
        print(f"  {s:<6} {p['p0']:g} / {p['p50']:g} / {p['p90']:g} / {p['p99']:g} / "
              f"{p['p100']:g}")
    print("duplicate texts within a split (with conflicting labels):")
    for s, sp in info["splits"].items():
        print(f"  {s:<6} {sp['duplicate_texts']} ({sp['duplicates_with_conflicting_labels']})")
    shared = ", ".join(f"{k} {v}" for k, v in info["shared_texts"].items())
    print(f"texts shared across splits: {shared}")
    return 0


def cmd_embeddings_info(args: argparse.Namespace) -> int:
    from emotune.data import load_dataset, prepare
    from emotune.embeddings import load_embedding

    config = _load_config(args)
    prepared = prepare(load_dataset(config.data), config.data)
    emb = load_embedding(config.embeddings, prepared.vocab, prepared.train_counts)
    s = emb.summary()
    missing = [w for w, f in zip(prepared.vocab[2:], emb.found[2:]) if not f]
    missing.sort(key=lambda w: -prepared.train_counts.get(w, 0))
    if args.json:
        print(json.dumps({**s, "most_frequent_missing": missing[:20]}, indent=2))
        return 0
    print(f"source {s['source']} ({s['source_checksum']})")
    print(f"{s['rows']} x {s['dim']}: {s['type_coverage']:.2%} of vocabulary words found, "
          f"{s['token_coverage']:.2%} of training tokens")
    print(f"most frequent words without a vector: {', '.join(missing[:20]) or 'none'}")
    return 0


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
    p.add_argument("--model", choices=["gru", "lstm", "cnn"],
                   help="model type (default: model.type of the config, gru)")
    _config_options(p)
    p.add_argument("--epochs", type=int, help="at most this many epochs (train.epochs)")
    p.add_argument("--seed", type=int, help="random seed (train.seed)")
    p.add_argument("--out", metavar="DIR",
                   help="run folder to create (default: runs/train/<model>-<mode>-<time>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "search", parents=[common], help="one-at-a-time sweeps and joint KerasTuner searches",
        description="Search hyperparameters with KerasTuner. --param NAME sweeps one "
                    "parameter over its values (search.sweeps) with the others at their "
                    "defaults; --param all runs the six sweeps as one study, training the "
                    "shared default configuration once; --strategy runs a joint search. Every "
                    "trial uses early stopping; the objective is val accuracy at the best "
                    "epoch. Running the same command again resumes the study.")
    p.add_argument("--model", choices=["gru", "lstm", "cnn"],
                   help="model type (default: model.type of the config, gru)")
    p.add_argument("--param", metavar="NAME",
                   help="parameter(s) to sweep one at a time: lr, batch_size, units, dropout, "
                        "optimizer, embedding (comma-separated), or all")
    p.add_argument("--strategy", choices=["grid", "bayesian", "random", "hyperband"],
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
    p.add_argument("--overwrite", action="store_true", help="delete the study and start over")
    p.add_argument("--keep-models", action="store_true",
                   help="keep every trial's model, not only the best one")
    _config_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("data", help="inspect a dataset", description="Inspect a dataset.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_Parser,
                            required=True)
    p = dsub.add_parser("info", parents=[common], help="rows, labels, lengths, duplicates",
                        description="Rows per split and label, text length percentiles, "
                                    "vocabulary, duplicates within and across splits, checksum.")
    _config_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_data_info)

    p = sub.add_parser("embeddings", help="inspect word vectors",
                       description="Inspect word vectors.")
    esub = p.add_subparsers(dest="emb_command", metavar="SUBCOMMAND", parser_class=_Parser,
                            required=True)
    p = esub.add_parser("info", parents=[common], help="coverage of the vocabulary",
                        description="Build (or load from cache) the vocabulary-aligned GloVe "
                                    "matrix and report its coverage.")
    _config_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_embeddings_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

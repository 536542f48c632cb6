"""The bodies of the ``emotune`` commands: each parses nothing, calls the API and prints.

``cli.py`` builds the parser and turns errors into one line; these functions get the parsed
arguments. Heavy modules (TensorFlow, KerasTuner) are imported inside the commands that need
them, after the input has been validated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from emotune.errors import EmotuneError


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--data, --glove and --set as settings."""
    from emotune.config import parse_sets

    overrides: dict[str, Any] = {}
    if args.data:
        overrides["data.path"] = args.data
    if args.glove:
        overrides["embeddings.source"] = args.glove
    overrides.update(parse_sets(args.sets))
    return overrides


def _load_config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    from emotune.config import build_config

    return build_config(args.config, {**(extra or {}), **_cli_overrides(args)})


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
    from emotune.search import StudySpec
    from emotune.space import CORE, SearchSpace, resolve_param

    if not args.param and not args.strategy:
        raise EmotuneError("say what to search: --param NAME (or all) for a one-at-a-time "
                           "sweep, or --strategy grid|bayesian|random|hyperband for a joint "
                           "search")
    names = [n.strip() for n in (args.param or "all").split(",") if n.strip()]
    params = list(CORE) if names == ["all"] else [resolve_param(n) for n in names]
    if len(set(params)) != len(params):
        raise EmotuneError(f"--param names a parameter twice: {args.param}")
    strategy = args.strategy or "sweep"
    sweep = strategy == "sweep"
    SearchSpace(config, params, sweep)  # checks every value before any data is read
    trials = None if sweep or strategy == "hyperband" else config.search.trials
    return StudySpec(config.model.type, tuple(params), strategy, trials, config.search.repeats,
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
    from emotune.search import parse_budget, run_search
    from emotune.space import CORE
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
    label = "all" if study.params == CORE else "-".join(study.params)
    name = f"{study.model}-{label}" if study.sweep else f"{study.model}-{study.strategy}"
    project = Path(args.project or Path("runs") / name)
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise EmotuneError(f"--workers must be >= 1. Received: {workers}")
    supervised = bool(getattr(args, "role", None))  # a process of --workers (hidden --role)
    if workers and workers > 1 and not supervised:
        return _search_with_workers(args, study, project)
    _, prepared, embedding = load_inputs(config)
    if args.sample:
        prepared = subsample(prepared, args.sample, config.data.split_seed)
    if not args.debug:
        _import_tensorflow_quietly()
    log(f"study {project}: {study.describe()}; {len(prepared.train.labels)} training rows"
        f"{f', {study.repeats} seeds each' if study.repeats > 1 else ''}")
    # The supervisor of --workers holds the study's lock; so does `emotune chief`, for its
    # workers (`emotune worker` may run on the chief's machine too).
    outcome = run_search(study, config, prepared, embedding, project=project,
                         overwrite=getattr(args, "overwrite", False) and not supervised,
                         keep_models=args.keep_models, budget_s=budget_s,
                         lock=not supervised and args.command != "worker")
    if supervised:  # the supervisor prints the summary
        return 0
    _print_summary(study, outcome.trials, project, outcome.trained_now, outcome.seconds,
                   args.budget if outcome.budget_spent else None)
    return 0


def _search_with_workers(args: argparse.Namespace, study: Any, project: Path) -> int:
    """Re-run this command as a KerasTuner chief and workers (see emotune.cluster)."""
    from emotune.cluster import run_cluster
    from emotune.results import clear_project, load_trials, study_lock

    argv, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers=") and a != "--overwrite":
            argv.append(a)
    if not args.project:
        argv += ["--project", str(project)]
    with study_lock(project, " ".join(["emotune", *args.argv])):
        if args.overwrite:
            clear_project(project)
        before = len(load_trials(project)) if (project / "kt").is_dir() else 0
        result = run_cluster(argv, args.workers, project / "chief.log")
    frame = load_trials(project)
    _print_summary(study, frame, project, len(frame) - before, result.seconds, None)
    if result.restarts:
        print(f"{result.restarts} worker restart(s): their trials were resumed")
    return 0


def cmd_chief(args: argparse.Namespace) -> int:
    """`emotune search` as KerasTuner's chief: serves the oracle on --host:--port."""
    from emotune.cluster import serve_env

    if not 0 < args.port < 65536:
        raise EmotuneError(f"--port must be between 1 and 65535. Received: {args.port}")
    os.environ.update(serve_env(args.host, args.port))
    from emotune.progress import log

    log(f"KerasTuner chief on {args.host}:{args.port}; start workers with: emotune worker "
        f"--chief <this host>:{args.port} <the same study options>")
    return cmd_search(args)


def cmd_worker(args: argparse.Namespace) -> int:
    """`emotune search` as a KerasTuner worker of the chief at --chief HOST:PORT."""
    import socket

    from emotune.cluster import parse_address, wait_for, worker_env

    host, port = parse_address(args.chief)
    if args.threads is not None and args.threads < 1:
        raise EmotuneError(f"--threads must be >= 1. Received: {args.threads}")
    if not wait_for(host, port, args.wait):
        raise EmotuneError(f"no KerasTuner chief answers at {host}:{port} after "
                           f"{args.wait:g}s; start `emotune chief --port {port}` there first, "
                           f"or check the address and firewall")
    os.environ.update(worker_env(args.worker_id or socket.gethostname(), port, args.threads,
                                 host=host))
    return cmd_search(args)


def _print_summary(study: Any, frame: Any, project: Path, trained_now: int, seconds: float,
                   budget: str | None) -> None:
    from emotune.results import top, write_trials_csv

    if (project / "kt").is_dir():
        frame = write_trials_csv(project)
    best = top(frame, 5)
    if not best.empty:
        cols = ["trial_id", "status", *study.params, "val_accuracy", "val_loss", "best_epoch",
                "epochs_run", "seconds"]
        if study.repeats > 1:
            cols.insert(cols.index("val_loss"), "val_accuracy_std")
        print(_table(best, cols))
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    print(f"{len(frame)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
          f"{trained_now} trained in this run, {seconds:.0f}s")
    if budget:
        print(f"budget {budget} spent: no new trial was started; run the same command "
              f"again to continue")
    print(f"trials: {project / 'trials.csv'}")


def _recommendations(projects: list[str]) -> list[tuple[Any, Any]]:
    from emotune.analysis import load_study, recommend

    studies = [load_study(p) for p in projects]
    return [(st, recommend(st)) for st in studies]


def cmd_recommend(args: argparse.Namespace) -> int:
    from emotune.analysis import recommended_config
    from emotune.config import save_config
    from emotune.report import recommendation_text, write_recommendation

    if args.config_out and len(args.project) > 1:
        raise EmotuneError("--config-out names one file: give one --project with it")
    for study, rec in _recommendations(args.project):
        print(f"== {study.name} ({study.model}, "
              f"{'one-at-a-time sweeps' if study.sweep else study.strategy}, "
              f"{_trial_count(study.done)})")
        print(recommendation_text(rec))
        files = write_recommendation(rec, Path(args.reports_dir) / study.name)
        exp = Path(args.config_out or Path(args.experiments_dir) /
                   f"recommended-{study.name}.yaml")
        exp.parent.mkdir(parents=True, exist_ok=True)
        save_config(recommended_config(study, rec), exp)
        print(f"written: {', '.join(str(f) for f in files)}, {exp}")
        print()
    return 0


def _trial_count(done: Any) -> str:
    pruned = int((done["status"] == "pruned").sum()) if len(done) else 0
    return f"{len(done)} trials" + (f", {pruned} of them pruned" if pruned else "")


def cmd_report(args: argparse.Namespace) -> int:
    from emotune.report import write_report

    pairs = _recommendations(args.project)
    studies, recs = [p[0] for p in pairs], [p[1] for p in pairs]
    name = studies[0].name if len(studies) == 1 else "compare-" + "-".join(
        s.name for s in studies)
    out = Path(args.out) if args.out else Path(args.reports_dir) / name
    paths = write_report(studies, recs, out)
    print(f"{len(paths)} files in {out}; open {out / 'index.html'}")
    return 0


def cmd_final_train(args: argparse.Namespace) -> int:
    from emotune.analysis import load_study, recommend, recommended_config
    from emotune.config import override
    from emotune.final import check_seeds, refuse_existing, train_final
    from emotune.train import load_inputs

    if bool(args.project) == bool(args.config):
        raise EmotuneError("give either --project DIR (train the study's recommended "
                           "configuration) or --config FILE")
    if args.seed is not None and args.seeds:
        raise EmotuneError("give --seed N or --seeds N [N ...], not both")
    if args.seeds:
        check_seeds(args.seeds)
    extra: dict[str, Any] = {} if args.seed is None else {"train.seed": args.seed}
    if args.project:
        study = load_study(args.project)
        base = recommended_config(study, recommend(study))
        config = override(base, {**_cli_overrides(args), **extra})
        name = args.name or study.name
    else:
        config = _load_config(args, extra)
        name = args.name or Path(args.config).stem
    refuse_existing(Path(args.models_dir) / name, args.overwrite)
    _, prepared, embedding = load_inputs(config)
    if not args.debug:
        _import_tensorflow_quietly()
    result = train_final(config, prepared, embedding, name=name, seeds=args.seeds,
                         models_dir=Path(args.models_dir), reports_dir=Path(args.reports_dir),
                         overwrite=args.overwrite)
    report = result.report_dir / "final.md"
    if result.table is None:
        _print_final(result.evaluations[0])
        print(f"model: {result.bundle_dir}; report: {report}")
        return 0
    for e in result.evaluations:
        _print_final(e, f"seed {e.seed}: ")
    t = result.table
    if len(t) > 1:
        print(f"test accuracy {t['test_accuracy'].mean():.4f} ± "
              f"{t['test_accuracy'].std(ddof=1):.4f}, macro-F1 "
              f"{t['test_macro_f1'].mean():.4f} ± {t['test_macro_f1'].std(ddof=1):.4f} "
              f"over {len(t)} seeds")
    print(f"models: {result.bundle_dir}/seed-*; report: {report}")
    return 0


def _print_final(e: Any, prefix: str = "") -> None:
    """One line of a ``final.FinalEvaluation``: its val and test numbers."""
    val, m = e.val, e.test
    epochs = (f" (best epoch {val['best_epoch']}/{val['epochs_run']})" if "best_epoch" in val
              else "")
    print(f"{prefix}val accuracy {val['val_accuracy']:.4f}{epochs}; test accuracy "
          f"{m.accuracy:.4f}, macro-F1 "
          f"{m.macro_f1:.4f}, weighted-F1 {m.weighted_f1:.4f}, cross-entropy "
          f"{m.cross_entropy:.4f}")


def cmd_predict(args: argparse.Namespace) -> int:
    from emotune.bundle import load_bundle

    texts = list(args.texts)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise EmotuneError(f"--file {path} does not exist")
        try:
            texts += [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
        except UnicodeDecodeError:
            raise EmotuneError(f"--file {path} is not UTF-8 text; re-save it as UTF-8") from None
    if not texts:
        raise EmotuneError('nothing to classify: give texts (emotune predict --model-dir DIR '
                           '"i feel great") or --file FILE with one text per line')
    if not args.debug:
        _import_tensorflow_quietly()
    bundle = load_bundle(args.model_dir)
    probs = bundle.predict(texts)
    if args.json:
        print(json.dumps([{"text": t, "label": bundle.labels[int(p.argmax())],
                           "probabilities": {lab: round(float(v), 6)
                                             for lab, v in zip(bundle.labels, p)}}
                          for t, p in zip(texts, probs)], indent=2))
        return 0
    for t, p in zip(texts, probs):
        i = int(p.argmax())
        print(f"{bundle.labels[i]:<10} {p[i]:.3f}  {t}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from emotune.baseline import baseline_markdown, baselines
    from emotune.data import load_dataset
    from emotune.results import atomic_write_json, atomic_write_text

    config = _load_config(args)
    result = baselines(load_dataset(config.data))
    table = baseline_markdown(result)
    out = Path(args.reports_dir) / "baseline"
    atomic_write_json(out / "baseline.json", result)
    atomic_write_text(out / "baseline.md", "# Baselines (same splits)\n\n" + table)
    print(table, end="")
    print(f"written: {out / 'baseline.md'}, {out / 'baseline.json'}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from emotune.config import build_config, override
    from emotune.ensemble import check_members, evaluate_ensemble
    from emotune.final import refuse_existing

    paths = [Path(p) for p in args.members]
    meta = check_members(paths)
    config = build_config(paths[0] / "config.yaml")
    if args.data:
        config = override(config, {"data.path": args.data})
    refuse_existing(Path(args.models_dir) / args.name, args.overwrite)
    from emotune.train import load_inputs

    _, prepared, embedding = load_inputs(config)
    if prepared.checksum != meta["data_checksum"]:
        raise EmotuneError(f"the data at {config.data.path or 'the default location'} are not "
                           f"the data the bundles were trained on; give it with --data")
    if not args.debug:
        _import_tensorflow_quietly()
    e = evaluate_ensemble(paths, config, prepared, embedding, name=args.name,
                          models_dir=Path(args.models_dir), reports_dir=Path(args.reports_dir),
                          overwrite=args.overwrite)
    _print_final(e)
    print(f"model: {Path(args.models_dir) / args.name}; report: "
          f"{Path(args.reports_dir) / args.name / 'final' / 'final.md'}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from emotune.leaderboard import write_leaderboard

    reports = Path(args.reports_dir)
    if not reports.is_dir():
        raise EmotuneError(f"--reports-dir {reports} does not exist; give the folder "
                           f"final-train wrote to (default: reports)")
    out, table = write_leaderboard(reports)
    print(table, end="")
    print(f"written: {out}")
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

"""``emotune search``, ``chief`` and ``worker``: run (or resume) a KerasTuner study."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from emotune.cli.base import (
    Command,
    add_config_options,
    add_model_option,
    cli_overrides,
    import_tensorflow_quietly,
    load_config,
)
from emotune.errors import EmotuneError
from emotune.search import STRATEGIES
from emotune.tables import cell


def add_study_options(p: argparse.ArgumentParser) -> None:
    """What defines a study and how it runs: shared by search, chief and worker."""
    add_model_option(p)
    p.add_argument("--param", metavar="NAME",
                   help="parameter(s) to sweep one at a time, comma-separated: lr, "
                        "batch_size, units, dropout, optimizer, embedding (all: these six), or "
                        "any other of search.sweeps (class_weight, focal_gamma, ...)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="joint search over all parameters (or those given by --param)")
    p.add_argument("--trials", type=int, help="joint searches: at most N trials "
                                              "(search.trials, default 20)")
    p.add_argument("--repeats", metavar="K|auto[:MAX]",
                   help="K: train every configuration with K seeds, keep mean and std; auto: "
                        "race seeds, one per value, then more (up to MAX, default 3) only for "
                        "the values still within noise of the best (sweeps and grid)")
    add_objective_options(p)
    p.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                   help="on by default (search.prune): after search.prune_warmup epochs, "
                        "stop a trial whose objective so far (its value at the best "
                        "monitored epoch) trails the bar at the same epoch by more than "
                        "search.prune_z standard errors: in one-at-a-time sweeps the default "
                        "configuration's; in grid, bayesian and random searches the median "
                        "of the finished trials (once search.prune_min_trials have "
                        "finished). A pruned trial is a lower bound, never a recommendation; "
                        "hyperband budgets epochs itself. --no-prune trains every trial to "
                        "its early stop")
    p.add_argument("--budget", metavar="DURATION",
                   help="start no new trial after this long (e.g. 15m, 1h30m); the current "
                        "one finishes; rerun to continue")
    p.add_argument("--sample", type=int, metavar="N",
                   help="train on a subsample of N training rows, stratified (random for "
                        "multi-label data; smoke runs)")
    p.add_argument("--epochs", type=int, help="at most this many epochs per trial")
    p.add_argument("--project", metavar="DIR",
                   help="study folder (default: runs/<model>-<param or strategy>)")
    p.add_argument("--keep-models", action="store_true",
                   help="keep every trial's model, not only the best one")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files into <project>/tensorboard: "
                        "every epoch's scalars per trial and seed, and the HParams "
                        "dashboard's summaries (tensorboard --logdir <project>/tensorboard)")
    add_config_options(p)


def _overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="delete the study and start over")


OBJECTIVE_HELP = ("rank trials by this validation number at each trial's early-stopping epoch "
                  "(search.objective, default val_accuracy; val_macro_f1 for multi-label data, "
                  "where early stopping then watches it too); val_macro_f1 weighs rare labels "
                  "as much as common ones; val_micro_f1 (multi-label) pools every label "
                  "decision. Its noise: binomial for accuracy, bootstrap over the validation "
                  "texts for F1 and loss")


def add_objective_options(p: argparse.ArgumentParser, monitor: bool = True,
                          help: str = OBJECTIVE_HELP) -> None:
    """--objective (what trials are ranked by) and, with ``monitor``, --monitor (what early
    stopping watches)."""
    from emotune.config import OBJECTIVES

    p.add_argument("--objective", choices=OBJECTIVES, help=help)
    if monitor:
        p.add_argument("--monitor", choices=("val_loss", "objective"),
                       help="what early stopping watches (train.monitor): val_loss (the "
                            "default; the objective for multi-label data) or the objective "
                            "(--patience epochs without a better value)")


def objective_settings(args: argparse.Namespace, objective: str | None = None
                       ) -> dict[str, Any]:
    """The settings that --objective and --monitor stand for. ``--monitor objective``
    watches the objective in force: --objective, else ``objective`` (a study's, or the
    config's ``search.objective`` once it is loaded)."""
    out: dict[str, Any] = {}
    if getattr(args, "objective", None):
        out["search.objective"] = args.objective
    monitor = getattr(args, "monitor", None)
    if monitor == "objective":  # the objective's own name (val_loss for the loss)
        monitor = getattr(args, "objective", None) or objective
    if monitor:
        out["train.monitor"] = monitor
    return out


def load_config_with_objective(args: argparse.Namespace, extra: dict[str, Any]) -> Any:
    """``load_config`` with --objective and --monitor, the latter resolved against the
    objective the loaded settings give (``search.objective`` of --config or --set)."""
    config = load_config(args, {**extra, **objective_settings(args)})
    if getattr(args, "monitor", None) == "objective" and not getattr(args, "objective", None):
        watch = {"train.monitor": config.search.objective}
        config = load_config(args, {**extra, **objective_settings(args), **watch})
    return config


def settle_for_data(args: argparse.Namespace, config: Any, extra: dict[str, Any],
                    dataset: Any = None) -> Any:
    """``config`` with the defaults of its data. Multi-label data ranks by val macro-F1
    (``scores.MULTI_LABEL_OBJECTIVE``) unless an objective is named (--objective, --config,
    --set), and early stopping watches the objective unless a monitor is named.
    ``val_micro_f1`` on single-label data is an error. ``dataset``: ``config.data`` as the
    caller read it (once the arguments are checked); read here when None."""
    from emotune.config import named_keys, override
    from emotune.data import load_dataset
    from emotune.scores import MULTI_LABEL_OBJECTIVE

    named = named_keys(args.config, {**extra, **objective_settings(args), **cli_overrides(args)})
    if getattr(args, "monitor", None) == "objective":
        named.discard("train.monitor")  # "watch the objective": the one settled here
    elif getattr(args, "monitor", None):
        named.add("train.monitor")
    multi = (dataset or load_dataset(config.data)).multi_label
    settle: dict[str, Any] = {}
    if multi:
        goal = (config.search.objective if "search.objective" in named
                else MULTI_LABEL_OBJECTIVE)
        settle["search.objective"] = goal
        if "train.monitor" not in named:
            settle["train.monitor"] = goal
    config = override(config, settle) if settle else config
    if not multi:
        for key, value in (("objective", config.search.objective),
                           ("monitor", config.train.monitor)):
            if value == "val_micro_f1":
                raise EmotuneError(f"{key} val_micro_f1 is for multi-label data (with one "
                                   f"label per text it equals accuracy): use val_accuracy or "
                                   f"val_macro_f1")
    return config


def study_from_args(args: argparse.Namespace, config: Any) -> Any:
    """The ``search.StudySpec`` that --param or --strategy describe, checked."""
    from emotune.config import parse_repeats
    from emotune.search import RACING_NEEDS, StudySpec
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
    repeats, race = parse_repeats(config.search.repeats)
    if race and not (sweep or strategy == "grid"):
        raise EmotuneError(RACING_NEEDS)
    prune = config.search.prune and strategy != "hyperband"  # hyperband budgets epochs itself
    return StudySpec(config.model.type, tuple(params), strategy, trials, repeats,
                     args.sample, prune, race, config.search.objective)


class Search(Command):
    name = "search"
    help = "one-at-a-time sweeps and joint KerasTuner searches"
    description = ("Search hyperparameters with KerasTuner. --param NAME sweeps one parameter "
                   "over its values (search.sweeps) with the others at their defaults; "
                   "--param all runs the six sweeps as one study, training the shared default "
                   "configuration once; --strategy runs a joint search. Every trial uses early "
                   "stopping; the objective (--objective: val accuracy unless asked, val "
                   "macro-F1 for multi-label data) is "
                   "each trial's value at its early-stopping epoch. Running the "
                   "same command again resumes the study. Prints the five best trials.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_study_options(parser)
        _overwrite_option(parser)
        parser.add_argument("--workers", metavar="N|auto",
                            help="trials at a time (search.workers, default auto): N > 1 runs "
                                 "a KerasTuner chief and N worker processes on this machine, "
                                 "each with its share of the cores; auto is one per core "
                                 "where memory allows (~1 GB each), a single process on one "
                                 "core; 1 is a single process")
        parser.add_argument("--role", choices=["chief", "worker"], help=argparse.SUPPRESS)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.data import load_dataset, subsample
        from emotune.progress import log
        from emotune.search import parse_budget, run_search
        from emotune.space import CORE
        from emotune.train import load_inputs

        extra: dict[str, Any] = {"model.type": args.model} if args.model else {}
        for key, value in (("search.trials", args.trials), ("search.repeats", args.repeats),
                           ("train.epochs", args.epochs)):
            if value is not None:
                extra[key] = value
        if args.prune is not None:
            extra["search.prune"] = args.prune
        workers = getattr(args, "workers", None)
        if workers is not None:
            if workers != "auto" and not (workers.isdigit() and int(workers) >= 1):
                raise EmotuneError(f"--workers must be auto or an integer >= 1. Received: "
                                   f"{workers}")
            extra["search.workers"] = workers
        config = load_config_with_objective(args, extra)
        budget_s = parse_budget(args.budget)
        if args.sample is not None and args.sample < 1:
            raise EmotuneError(f"--sample must be a positive number of rows. Received: "
                               f"{args.sample}")
        study_from_args(args, config)  # the arguments checked before the data is read
        dataset = load_dataset(config.data)
        config = settle_for_data(args, config, extra, dataset)
        study = study_from_args(args, config)
        label = "all" if study.params == CORE else "-".join(study.params)
        name = f"{study.model}-{label}" if study.sweep else f"{study.model}-{study.strategy}"
        project = Path(args.project or Path("runs") / name)
        supervised = bool(getattr(args, "role", None))  # a process of --workers (hidden --role)
        if args.command == "search" and not supervised:
            workers = self._workers(config.search.workers, study, config)
            if workers > 1:
                return self._with_workers(args, study, config, project, workers,
                                          dataset.checksum)
        _, prepared, embedding = load_inputs(config, dataset)
        if args.sample:
            prepared = subsample(prepared, args.sample, config.data.split_seed)
        if not args.debug:
            import_tensorflow_quietly()
        seeds = (f", racing up to {study.race} seeds for values within noise of the best"
                 if study.racing else
                 f", {study.repeats} seeds each" if study.repeats > 1 else "")
        # with --workers, the first worker says it once for all (the chief's log has it too)
        if not supervised or os.environ.get("KERASTUNER_TUNER_ID") in ("tuner0", "chief"):
            log(f"study {project}: {study.describe()}; {len(prepared.train.labels)} training "
                f"rows{seeds}")
        # The supervisor of --workers holds the study's lock, and says when it resumes; so does
        # `emotune chief`, for its workers (`emotune worker` may run on the chief's machine too).
        outcome = run_search(study, config, prepared, embedding, project=project,
                             overwrite=getattr(args, "overwrite", False) and not supervised,
                             keep_models=args.keep_models, budget_s=budget_s,
                             lock=not supervised and args.command != "worker",
                             tensorboard=args.tensorboard)
        if supervised:  # the supervisor prints the summary
            return 0
        self._summary(study, outcome.trials, project, outcome.trained_now, outcome.seconds,
                      args.budget if outcome.budget_spent else None)
        return 0

    def _workers(self, setting: str, study: Any, config: Any) -> int:
        """``search.workers`` as a count: ``auto`` by cores and memory, no more than the
        study's first-round trials, said in the log."""
        from emotune.cluster import auto_workers
        from emotune.progress import log
        from emotune.space import SearchSpace

        if setting != "auto":
            return int(setting)
        n, why = auto_workers()
        trials = (SearchSpace(config, list(study.params), True).size() if study.sweep
                  else study.trials)
        if trials and trials < n:
            n, why = trials, f"{why}, {trials} trials to run"
        log(f"--workers auto: {n} trial process{'es' if n > 1 else ''} ({why}); "
            f"--workers 1 for a single one")
        return n

    def _with_workers(self, args: argparse.Namespace, study: Any, config: Any,
                      project: Path, workers: int, checksum: str) -> int:
        """Re-run this command as a KerasTuner chief and workers (see emotune.cluster)."""
        from emotune.cluster import run_cluster
        from emotune.progress import log
        from emotune.results import clear_project, load_trials, study_lock
        from emotune.search import check_resumable, parse_budget

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
            else:  # a different study in the folder: one line here, not a chief's failure
                check_resumable(project, study, config, checksum)
            before = len(load_trials(project)) if (project / "kt").is_dir() else 0
            if before:  # said here: the chief and workers see a fresh study's trials too
                log(f"resuming {project}: {before} trials on disk")
            result = run_cluster(argv, workers, project / "chief.log")
        frame = load_trials(project)
        # each worker stops starting trials when the budget is spent; the wall time says so
        spent = args.budget and result.seconds >= parse_budget(args.budget)
        self._summary(study, frame, project, len(frame) - before, result.seconds,
                      args.budget if spent else None)
        if result.restarts:
            self.out.note(f"{result.restarts} worker restart(s): their trials were resumed")
        return 0

    def _summary(self, study: Any, frame: Any, project: Path, trained_now: int,
                 seconds: float, budget: str | None) -> None:
        """The five best trials, then how many ran and where the rest are."""
        from emotune.results import top, write_trials_csv

        if (project / "kt").is_dir():
            frame = write_trials_csv(project)
        goal = study.objective
        best = top(frame, 5, goal)
        shown = [goal] if goal == "val_accuracy" else [goal, "val_accuracy"]
        cols = ["trial_id", "status", *study.params, *dict.fromkeys([*shown, "val_loss"]),
                "best_epoch", "epochs_run", "seconds"]
        if study.racing:
            cols.insert(cols.index("val_accuracy"), "seeds")
        if study.repeats > 1:
            cols.insert(cols.index("val_loss"), "val_accuracy_std")
        if not best.empty or self.out.machine:  # an empty table is still a table to parse
            self.out.records(best, cols, cells={"lr": _lr})
        counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
        self.out.note(f"{len(frame)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}"
                      f"); {trained_now} trained in this run, {seconds:.0f}s")
        if budget:
            self.out.note(f"budget {budget} spent: no new trial was started; run the same "
                          f"command again to continue")
        self.out.note(f"trials: {project / 'trials.csv'}")


def _lr(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else cell(value)


class Chief(Search):
    name = "chief"
    help = "serve a search to workers on other machines"
    description = ("Serve a search to `emotune worker` processes on other machines "
                   "(KerasTuner's distributed mode: the chief runs the oracle over gRPC and "
                   "trains nothing). Takes the same study options as `search`; every worker "
                   "must be given the same ones and the same --project, on a folder all "
                   "machines share. Exits when the study is done and every worker has "
                   "finished. README: \"Several machines\".")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_study_options(parser)
        _overwrite_option(parser)
        parser.add_argument("--host", default="0.0.0.0",
                            help="address to listen on (default: all interfaces)")
        parser.add_argument("--port", type=int, default=8000,
                            help="port to listen on (default 8000)")

    def take_action(self, args: argparse.Namespace) -> int:
        """`emotune search` as KerasTuner's chief: serves the oracle on --host:--port."""
        from emotune.cluster import serve_env
        from emotune.progress import log

        if not 0 < args.port < 65536:
            raise EmotuneError(f"--port must be between 1 and 65535. Received: {args.port}")
        os.environ.update(serve_env(args.host, args.port))
        log(f"KerasTuner chief on {args.host}:{args.port}; start workers with: emotune worker "
            f"--chief <this host>:{args.port} <the same study options>")
        return super().take_action(args)


class Worker(Search):
    name = "worker"
    help = "train trials served by an `emotune chief`"
    description = ("Pull trials from an `emotune chief`, train them and report back, until the "
                   "study is done. Give the same study options and --project as the chief. A "
                   "worker that died is restarted with the same command (the same --id): the "
                   "chief hands it back the trial it was running.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_study_options(parser)
        parser.add_argument("--chief", required=True, metavar="HOST:PORT",
                            help="where `emotune chief` listens, e.g. 10.0.0.5:8000")
        parser.add_argument("--id", dest="worker_id", metavar="NAME",
                            help="this worker's KerasTuner id, unique per worker (default: the "
                                 "host name); reuse it when restarting a worker")
        parser.add_argument("--threads", type=int, metavar="N",
                            help="TensorFlow threads for this worker (default: all cores)")
        parser.add_argument("--wait", type=float, default=300, metavar="SECONDS",
                            help="give up if the chief does not answer within this long "
                                 "(default 300)")

    def take_action(self, args: argparse.Namespace) -> int:
        """`emotune search` as a KerasTuner worker of the chief at --chief HOST:PORT."""
        import socket

        from emotune.cluster import parse_address, wait_for, worker_env

        host, port = parse_address(args.chief)
        if args.threads is not None and args.threads < 1:
            raise EmotuneError(f"--threads must be >= 1. Received: {args.threads}")
        if not wait_for(host, port, args.wait):
            raise EmotuneError(f"no KerasTuner chief answers at {host}:{port} after "
                               f"{args.wait:g}s; start `emotune chief --port {port}` there "
                               f"first, or check the address and firewall")
        os.environ.update(worker_env(args.worker_id or socket.gethostname(), port,
                                     args.threads, host=host))
        return super().take_action(args)

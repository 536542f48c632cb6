"""``emotune train``, ``final-train``, ``ensemble`` and ``predict``: the commands that train or
load Keras models (TensorFlow is imported only after their input has been checked)."""

from __future__ import annotations

import argparse
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
from emotune.cli.searching import (
    add_objective_options,
    load_config_with_objective,
    objective_settings,
    settle_for_data,
)
from emotune.errors import EmotuneError


class Train(Command):
    name = "train"
    help = "train one configuration"
    description = ("Train one configuration with early stopping and write a run folder "
                   "(config, history.csv, metrics.json).")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_model_option(parser)
        add_config_options(parser)
        parser.add_argument("--epochs", type=int,
                            help="at most this many epochs (train.epochs)")
        parser.add_argument("--seed", type=int, help="random seed (train.seed)")
        parser.add_argument("--out", metavar="DIR",
                            help="run folder to create (default: "
                                 "runs/train/<model>-<mode>-<time>)")

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.data import load_dataset
        from emotune.progress import log
        from emotune.train import default_run_dir, fit, load_inputs, write_run

        extra: dict[str, Any] = {"model.type": args.model} if args.model else {}
        if args.epochs is not None:
            extra["train.epochs"] = args.epochs
        if args.seed is not None:
            extra["train.seed"] = args.seed
        config = load_config(args, extra)
        run_dir = Path(args.out) if args.out else default_run_dir(config)
        if run_dir.exists():
            raise EmotuneError(f"run folder {run_dir} already exists; choose another --out")
        dataset = load_dataset(config.data)
        config = settle_for_data(args, config, extra, dataset)  # multi-label: stop on macro-F1
        _, prepared, embedding = load_inputs(config, dataset)
        if not args.debug:
            import_tensorflow_quietly()  # only now: bad input above fails in well under a second
        e = embedding.summary()
        log(f"data: {len(prepared.train.labels)} train / {len(prepared.val.labels)} val rows, "
            f"{len(prepared.vocab)} words, max_len {prepared.max_len}; GloVe {e['dim']}-d "
            f"covers {e['type_coverage']:.1%} of words, {e['token_coverage']:.1%} of tokens")
        m, t = config.model, config.train
        log(f"training {m.type} units={m.units} embedding={m.embedding} dropout={m.dropout} "
            f"{t.optimizer} lr={t.lr} batch={t.batch_size} (at most {t.epochs} epochs, "
            f"patience {t.patience})")
        result = fit(config, prepared, embedding)
        write_run(run_dir, config, result, prepared, embedding)
        r = result.metrics
        record = {"run_folder": str(run_dir),
                  **{k: r[k] for k in ("val_accuracy", "val_loss", "val_macro_f1", "best_epoch",
                                       "epochs_run", "seconds")}}
        self.out.records([record], table=(
            f"val_accuracy {r['val_accuracy']:.4f}  val_loss {r['val_loss']:.4f}  "
            f"val_macro_f1 {r['val_macro_f1']:.4f}  best_epoch {r['best_epoch']}/"
            f"{r['epochs_run']}  {r['seconds']:.1f}s"))
        self.out.note(f"run folder: {run_dir}")
        return 0


def _final_line(e: Any, prefix: str = "") -> str:
    """One line of a ``final.FinalEvaluation``: its val and test numbers."""
    val, m = e.val, e.test
    epochs = (f" (best epoch {val['best_epoch']}/{val['epochs_run']})" if "best_epoch" in val
              else "")
    if m.multi is not None:
        return (f"{prefix}val macro-F1 {val['val_macro_f1']:.4f} at {val['threshold']:g}"
                f"{epochs}; test "
                f"macro-F1 {m.macro_f1:.4f}, micro-F1 {m.multi.micro_f1:.4f}, subset accuracy "
                f"{m.accuracy:.4f} at the {m.multi.rule} thresholds tuned on val")
    return (f"{prefix}val accuracy {val['val_accuracy']:.4f}{epochs}; test accuracy "
            f"{m.accuracy:.4f}, macro-F1 {m.macro_f1:.4f}, weighted-F1 "
            f"{m.weighted_f1:.4f}, cross-entropy {m.cross_entropy:.4f}")


def _final_record(e: Any, **first: Any) -> dict[str, Any]:
    """One trained (or averaged) model's val and test numbers, for --format csv/json."""
    m = e.test
    return {**first, **e.val, "test_accuracy": m.accuracy, "test_macro_f1": m.macro_f1,
            "test_weighted_f1": m.weighted_f1, "test_cross_entropy": m.cross_entropy}


class FinalTrain(Command):
    name = "final-train"
    help = "retrain the chosen configuration, test it once"
    description = ("Retrain a study's recommended configuration (--project) or a config file "
                   "(--config) on train with early stopping on val, then evaluate on the test "
                   "split once. Writes the model bundle models/<name>/ and "
                   "reports/<name>/final/ (metrics, per-class table, confusion matrix, "
                   "curves); with --seeds, one of each per seed and their mean ± std. "
                   "Multi-label: decision thresholds tuned on val (train.threshold_rule) "
                   "are kept in the bundle, and the report has per-label thresholds, "
                   "PR curves and the label-wise confusion.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--project", metavar="DIR",
                            help="study whose recommendation to train")
        parser.add_argument("--name",
                            help="bundle name (default: the study or config file name)")
        parser.add_argument("--seed", type=int, help="random seed (train.seed)")
        parser.add_argument("--seeds", type=int, nargs="+", metavar="N",
                            help="train once per seed (models/<name>/seed-<N>/, "
                                 "reports/<name>/final/seed-<N>/) and report each seed and "
                                 "their mean ± std in reports/<name>/final/final.md")
        parser.add_argument("--models-dir", default="models", metavar="DIR")
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace an existing bundle and its report (only once the "
                                 "new one is trained: a failed run leaves the old one)")
        parser.add_argument("--tensorboard", action="store_true",
                            help="also write TensorBoard event files into "
                                 "reports/<name>/final/tensorboard (every epoch's scalars and "
                                 "an HParams summary with the val and test numbers, per seed)")
        add_objective_options(parser)
        add_config_options(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.analysis import load_study, recommend, recommended_config
        from emotune.config import override
        from emotune.data import load_dataset
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
            study = load_study(args.project, args.objective)
            base = recommended_config(study, recommend(study))
            extra.update(objective_settings(args, study.goal.name))
            config = override(base, {**cli_overrides(args), **extra})
            name = args.name or study.name
        else:
            config = load_config_with_objective(args, extra)
            name = args.name or Path(args.config).stem
        refuse_existing(Path(args.models_dir) / name, args.overwrite)
        dataset = load_dataset(config.data)
        if not args.project:  # a study's settings were settled when it searched
            config = settle_for_data(args, config, extra, dataset)
        _, prepared, embedding = load_inputs(config, dataset)
        if not args.debug:
            import_tensorflow_quietly()
        result = train_final(config, prepared, embedding, name=name, seeds=args.seeds,
                             models_dir=Path(args.models_dir),
                             reports_dir=Path(args.reports_dir), overwrite=args.overwrite,
                             tensorboard=args.tensorboard)
        report = result.report_dir / "final.md"
        if result.table is None:
            e = result.evaluations[0]
            if self.out.machine:  # the sentence goes to stderr beside the data
                self.out.note(_final_line(e))
            self.out.records([_final_record(e, name=name, seed=e.seed,
                                            bundle=str(result.bundle_dir))],
                             table=_final_line(e))
            self.out.note(f"model: {result.bundle_dir}; report: {report}")
            return 0
        for e in result.evaluations:
            self.out.note(_final_line(e, f"seed {e.seed}: "))
        t = result.table
        if len(t) > 1:
            self.out.note(
                f"test accuracy {t['test_accuracy'].mean():.4f} ± "
                f"{t['test_accuracy'].std(ddof=1):.4f}, macro-F1 "
                f"{t['test_macro_f1'].mean():.4f} ± {t['test_macro_f1'].std(ddof=1):.4f} "
                f"over {len(t)} seeds")
        if self.out.machine:
            self.out.records([_final_record(e, name=name, seed=e.seed,
                                            bundle=str(result.bundle_dir / f"seed-{e.seed}"))
                              for e in result.evaluations])
        self.out.note(f"models: {result.bundle_dir}/seed-*; report: {report}")
        return 0


class Ensemble(Command):
    name = "ensemble"
    help = "average several bundles (e.g. the seeds)"
    description = ("Average the class probabilities of bundles of one configuration (the "
                   "seeds of final-train --seeds): one Keras model, saved as bundle "
                   "models/<name>/ that predict reads, evaluated like final-train (val for the "
                   "record, test once) in reports/<name>/final/.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("members", nargs="+", metavar="BUNDLE",
                            help="bundle folders (models/...)")
        parser.add_argument("--name", required=True,
                            help="name of the ensemble's bundle and report")
        parser.add_argument("--data", metavar="PATH",
                            help="the members' data folder, if not where their config.yaml "
                                 "says")
        parser.add_argument("--models-dir", default="models", metavar="DIR")
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace an existing bundle and its report (only once the "
                                 "new one is evaluated)")

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.config import build_config, override
        from emotune.ensemble import check_members, evaluate_ensemble
        from emotune.final import refuse_existing
        from emotune.train import load_inputs

        paths = [Path(p) for p in args.members]
        meta = check_members(paths)
        config = build_config(paths[0] / "config.yaml")
        if args.data:
            config = override(config, {"data.path": args.data})
        target = Path(args.models_dir) / args.name
        refuse_existing(target, args.overwrite)
        _, prepared, embedding = load_inputs(config)
        if prepared.checksum != meta["data_checksum"]:
            raise EmotuneError(f"the data at {config.data.path or 'the default location'} are "
                               f"not the data the bundles were trained on; give it with --data")
        if not args.debug:
            import_tensorflow_quietly()
        e = evaluate_ensemble(paths, config, prepared, embedding, name=args.name,
                              models_dir=Path(args.models_dir),
                              reports_dir=Path(args.reports_dir), overwrite=args.overwrite)
        self.out.records([_final_record(e, name=args.name, bundle=str(target))],
                         table=_final_line(e))
        self.out.note(f"model: {target}; report: "
                      f"{Path(args.reports_dir) / args.name / 'final' / 'final.md'}")
        return 0


class Predict(Command):
    name = "predict"
    help = "classify texts with a trained bundle"
    description = ("Label and class probabilities for each text, tokenised as in training. "
                   "--format table prints one line per text (label, its probability, text; "
                   "for a multi-label model every label at or above its threshold, most "
                   "probable first, or 'none'); the other formats give every class's "
                   "probability too.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
        parser.add_argument("--model-dir", required=True, metavar="DIR",
                            help="a bundle written by final-train (models/<name>)")
        parser.add_argument("--file", metavar="FILE", help="classify each line of FILE")

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.bundle import load_bundle

        texts = list(args.texts)
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise EmotuneError(f"--file {path} does not exist")
            try:
                texts += [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
            except UnicodeDecodeError:
                raise EmotuneError(f"--file {path} is not UTF-8 text; re-save it as "
                                   f"UTF-8") from None
        if not texts:
            raise EmotuneError('nothing to classify: give texts (emotune predict --model-dir '
                               'DIR "i feel great") or --file FILE with one text per line')
        if not args.debug:
            import_tensorflow_quietly()
        bundle = load_bundle(args.model_dir)
        probs = bundle.predict(texts)
        decided = bundle.decide(probs)
        records = [{"text": t,
                    **({"labels": [lab for lab, _ in d]} if bundle.multi_label
                       else {"label": d[0][0]}),
                    "probabilities": {lab: round(float(v), 6)
                                      for lab, v in zip(bundle.labels, p)}}
                   for t, p, d in zip(texts, probs, decided)]
        if bundle.multi_label:
            lines = [f"{' '.join(f'{lab} {v:.3f}' for lab, v in d) or 'none':<30}  {t}"
                     for t, d in zip(texts, decided)]
        else:
            lines = [f"{d[0][0]:<10} {d[0][1]:.3f}  {t}" for t, d in zip(texts, decided)]
        self.out.records(records, table="\n".join(lines))
        return 0

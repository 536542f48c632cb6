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
        _, prepared, embedding = load_inputs(config)
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


def _refuse_existing(bundle_dir: Path, overwrite: bool) -> None:
    if bundle_dir.exists() and not overwrite:
        raise EmotuneError(f"model folder {bundle_dir} already exists; choose another --name "
                           f"or add --overwrite")


def _final_line(metrics: Any, val: dict[str, Any], prefix: str = "") -> str:
    epochs = (f" (best epoch {val['best_epoch']}/{val['epochs_run']})" if "best_epoch" in val
              else "")
    return (f"{prefix}val accuracy {val['val_accuracy']:.4f}{epochs}; test accuracy "
            f"{metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f}, weighted-F1 "
            f"{metrics.weighted_f1:.4f}, cross-entropy {metrics.cross_entropy:.4f}")


def _final_record(metrics: Any, val: dict[str, Any], **first: Any) -> dict[str, Any]:
    """One trained (or averaged) model's val and test numbers, for --format csv/json."""
    return {**first, **val, "test_accuracy": metrics.accuracy,
            "test_macro_f1": metrics.macro_f1, "test_weighted_f1": metrics.weighted_f1,
            "test_cross_entropy": metrics.cross_entropy}


class FinalTrain(Command):
    name = "final-train"
    help = "retrain the chosen configuration, test it once"
    description = ("Retrain a study's recommended configuration (--project) or a config file "
                   "(--config) on train with early stopping on val, then evaluate on the test "
                   "split once. Writes the model bundle models/<name>/ and "
                   "reports/<name>/final/ (metrics, per-class table, confusion matrix, "
                   "curves); with --seeds, one of each per seed and their mean ± std.")
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
                            help="replace an existing bundle")
        add_config_options(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        import shutil

        from emotune.analysis import load_study, recommend, recommended_config
        from emotune.config import override
        from emotune.final import final_train
        from emotune.progress import log
        from emotune.train import load_inputs

        if bool(args.project) == bool(args.config):
            raise EmotuneError("give either --project DIR (train the study's recommended "
                               "configuration) or --config FILE")
        if args.seed is not None and args.seeds:
            raise EmotuneError("give --seed N or --seeds N [N ...], not both")
        if args.seeds and len(set(args.seeds)) != len(args.seeds):
            raise EmotuneError(f"--seeds repeats a seed ({' '.join(map(str, args.seeds))}); "
                               f"give distinct seeds, e.g. --seeds 1 2 3")
        extra: dict[str, Any] = {} if args.seed is None else {"train.seed": args.seed}
        if args.project:
            study = load_study(args.project)
            base = recommended_config(study, recommend(study))
            config = override(base, {**cli_overrides(args), **extra})
            name = args.name or study.name
        else:
            config = load_config(args, extra)
            name = args.name or Path(args.config).stem
        models_dir, reports_dir = Path(args.models_dir), Path(args.reports_dir)
        _refuse_existing(models_dir / name, args.overwrite)
        if (models_dir / name).exists():
            shutil.rmtree(models_dir / name)
        _, prepared, embedding = load_inputs(config)
        if not args.debug:
            import_tensorflow_quietly()
        m, t = config.model, config.train
        log(f"final training of {name}: {m.type} units={m.units} embedding={m.embedding} "
            f"dropout={m.dropout} {t.optimizer} lr={t.lr} batch={t.batch_size}")
        report_dir = reports_dir / name / "final"
        if not args.seeds:
            metrics, val = final_train(config, prepared, embedding, name=name,
                                       bundle_dir=models_dir / name, report_dir=report_dir)
            self.out.note(_final_line(metrics, val))
            if self.out.machine:
                self.out.records([_final_record(metrics, val, name=name,
                                                seed=config.train.seed,
                                                bundle=str(models_dir / name))])
            self.out.note(f"model: {models_dir / name}; report: {report_dir / 'final.md'}")
            return 0
        from emotune.final import seeds_table, write_seeds_report

        runs, records = [], []
        for seed in args.seeds:
            log(f"seed {seed} ({len(runs) + 1}/{len(args.seeds)})")
            bundle = models_dir / name / f"seed-{seed}"
            metrics, val = final_train(override(config, {"train.seed": seed}), prepared,
                                       embedding, name=f"{name} (seed {seed})",
                                       bundle_dir=bundle, report_dir=report_dir / f"seed-{seed}")
            self.out.note(_final_line(metrics, val, f"seed {seed}: "))
            runs.append((seed, metrics, val))
            records.append(_final_record(metrics, val, name=name, seed=seed,
                                         bundle=str(bundle)))
        table = seeds_table(runs)
        if len(runs) > 1:
            write_seeds_report(report_dir, name, table)
            self.out.note(
                f"test accuracy {table['test_accuracy'].mean():.4f} ± "
                f"{table['test_accuracy'].std(ddof=1):.4f}, macro-F1 "
                f"{table['test_macro_f1'].mean():.4f} ± "
                f"{table['test_macro_f1'].std(ddof=1):.4f} over {len(runs)} seeds")
        if self.out.machine:
            self.out.records(records)
        self.out.note(f"models: {models_dir / name}/seed-*; report: {report_dir / 'final.md'}")
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
                            help="replace an existing bundle")

    def take_action(self, args: argparse.Namespace) -> int:
        import shutil

        from emotune.config import build_config, override
        from emotune.ensemble import check_members, evaluate_ensemble

        paths = [Path(p) for p in args.members]
        meta = check_members(paths)
        config = build_config(paths[0] / "config.yaml")
        if args.data:
            config = override(config, {"data.path": args.data})
        target = Path(args.models_dir) / args.name
        _refuse_existing(target, args.overwrite)
        from emotune.train import load_inputs

        _, prepared, embedding = load_inputs(config)
        if prepared.checksum != meta["data_checksum"]:
            raise EmotuneError(f"the data at {config.data.path or 'the default location'} are "
                               f"not the data the bundles were trained on; give it with --data")
        if not args.debug:
            import_tensorflow_quietly()
        if target.exists():
            shutil.rmtree(target)
        report = Path(args.reports_dir) / args.name / "final"
        m, val = evaluate_ensemble(paths, config, prepared, embedding, name=args.name,
                                   bundle_dir=target, report_dir=report)
        self.out.records([_final_record(m, val, name=args.name, bundle=str(target))],
                         table=_final_line(m, val))
        self.out.note(f"model: {target}; report: {report / 'final.md'}")
        return 0


class Predict(Command):
    name = "predict"
    help = "classify texts with a trained bundle"
    description = ("Label and class probabilities for each text, tokenised as in training. "
                   "--format table prints one line per text (label, its probability, text); "
                   "the other formats give every class's probability.")
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
        records = [{"text": t, "label": bundle.labels[int(p.argmax())],
                    "probabilities": {lab: round(float(v), 6)
                                      for lab, v in zip(bundle.labels, p)}}
                   for t, p in zip(texts, probs)]
        lines = [f"{bundle.labels[int(p.argmax())]:<10} {p[int(p.argmax())]:.3f}  {t}"
                 for t, p in zip(texts, probs)]
        self.out.records(records, table="\n".join(lines))
        return 0

"""``emotune recommend``, ``report``, ``leaderboard`` and ``baseline``: read results, print and
write tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from emotune.cli.base import Command, add_config_options, load_config
from emotune.errors import EmotuneError


def recommend_columns(objective: str = "val_accuracy") -> list[str]:
    """The columns of recommendations.csv (and ``recommend --format csv``), for objective."""
    return ["study", "parameter", "searched", "recommended", "best_value",
            f"best_{objective}", f"best_{objective}_std", "best_seeds", "default",
            f"default_{objective}", "margin", "noise", "verdict", "ties",
            "paired_margin", "paired_95", "paired_seeds"]


def _recommendations(projects: list[str], out: Any, baseline: bool,
                     objective: str | None = None) -> list[tuple[Any, Any]]:
    """Each study and its recommendation (ranked by ``objective``, else by each study's
    own); with ``baseline``, set against the cached TF-IDF + logistic regression baseline
    of its dataset (computed on first use)."""
    from emotune.analysis import against_baseline, load_study, recommend
    from emotune.baseline import study_baselines

    pairs = []
    for path in projects:
        study = load_study(path, objective)
        rec = recommend(study)
        if baseline:
            try:
                found = study_baselines(study.record["base_config"],
                                        study.record.get("data_checksum"), out.note)
            except EmotuneError as e:
                from dataclasses import replace
                rec = replace(rec, notes=(f"No baseline shown: {e} (--no-baseline skips it).",
                                          *rec.notes))
            else:
                rec = against_baseline(study, rec, found)
        pairs.append((study, rec))
    return pairs


def _add_objective_option(parser: argparse.ArgumentParser) -> None:
    from emotune.cli.searching import add_objective_options

    add_objective_options(parser, monitor=False, help=(
        "rank by this instead of the objective the study searched with (val_accuracy, or "
        "val_macro_f1 for multi-label data, unless its search said --objective); its noise: "
        "binomial for accuracy, the trials' bootstrap error for F1 and loss"))


def _add_baseline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="do not set the best tuned configuration against the TF-IDF + "
                             "logistic regression baseline on the same split (computed once "
                             "per dataset and cached in $EMOTUNE_CACHE/baselines)")


def _trial_count(done: Any) -> str:
    pruned = int((done["status"] == "pruned").sum()) if len(done) else 0
    return f"{len(done)} trials" + (f", {pruned} of them pruned" if pruned else "")


def _header(study: Any, reports: Path) -> str:
    """Who wrote a recommended configuration, and from what: its YAML's first lines."""
    from emotune.provenance import provenance

    who = provenance()
    dirty = " (with uncommitted changes)" if who["dirty"] else ""
    return (f"Written by `{who['command']}` at commit {who['commit']}{dirty}, "
            f"{who['written']}, on {who['cpu']} ({who['simd']}).\n"
            f"Chosen from study {study.name} by the one-standard-error rule on "
            f"{study.goal.label}; see {reports / study.name / 'recommendations.md'}.")


class Recommend(Command):
    name = "recommend"
    help = "a configuration by the one-standard-error rule, with its noise"
    description = ("For each searched parameter, by the one-standard-error rule: among the "
                   "values within one standard error of the best objective (the study's, or "
                   "--objective; val accuracy by default, val macro-F1 for multi-label "
                   "data), the one nearest the default. The noise is the binomial error of an "
                   "accuracy on the validation texts (the bootstrap error for F1 and loss), "
                   "or the seeds' spread where "
                   "larger. With the best value, the margin over the "
                   "default, the noise and whether the margin is detectable. Pruned trials "
                   "are lower bounds, never chosen. Then the combined configuration and its "
                   "expected objective. Writes reports/<study>/recommendations."
                   "{md,csv,json} and experiments/recommended-<study>.yaml (accepted by train "
                   "and final-train). Uses the validation split only.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--project", nargs="+", required=True, metavar="DIR",
                            help="study folder(s) of `emotune search`")
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")
        parser.add_argument("--experiments-dir", default="experiments", metavar="DIR")
        parser.add_argument("--config-out", metavar="FILE",
                            help="write the configuration here instead of "
                                 "<experiments-dir>/recommended-<study>.yaml (one study only)")
        _add_objective_option(parser)
        _add_baseline_option(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.analysis import recommended_config
        from emotune.config import save_config
        from emotune.report import (
            baseline_record,
            fmt,
            recommendation_records,
            recommendation_text,
            value_records,
            write_recommendation,
        )

        if args.config_out and len(args.project) > 1:
            raise EmotuneError("--config-out names one file: give one --project with it")
        records, documents = [], []
        pairs = _recommendations(args.project, self.out, args.baseline, args.objective)
        objectives = {rec.objective for _, rec in pairs}
        if self.out.machine and len(objectives) > 1:
            raise EmotuneError(f"these studies rank by different objectives "
                               f"({', '.join(sorted(objectives))}); add --objective to rank "
                               f"them alike in one table")
        for study, rec in pairs:
            kind = "one-at-a-time sweeps" if study.sweep else study.strategy
            self.out.note(f"== {study.name} ({study.model}, {kind}, {_trial_count(study.done)})")
            if not self.out.machine:
                self.out.text(recommendation_text(rec))
            files = write_recommendation(rec, Path(args.reports_dir) / study.name)
            exp = Path(args.config_out or Path(args.experiments_dir) /
                       f"recommended-{study.name}.yaml")
            exp.parent.mkdir(parents=True, exist_ok=True)
            save_config(recommended_config(study, rec), exp,
                        header=_header(study, Path(args.reports_dir)))
            self.out.note(f"written: {', '.join(str(f) for f in files)}, {exp}")
            self.out.note()
            rows = recommendation_records(rec)
            records += rows
            documents.append({
                "study": study.name, "model": study.model, "search": kind,
                "trials": len(study.done), "recommended": rec.values,
                "objective": rec.objective, f"expected_{rec.objective}": rec.expected,
                "expected_se": rec.expected_se, "expected_val_loss": rec.expected_loss,
                "basis": rec.basis, "n_val": rec.n_val, "best_trial": rec.best_trial,
                "parameters": [{k: v for k, v in r.items() if k != "study"} for r in rows],
                "values": value_records(rec), "baseline": baseline_record(rec),
                "notes": list(rec.notes), "config": str(exp)})
        if self.out.machine:
            self.out.records(records, recommend_columns(objectives.pop()), document=documents,
                             cells=dict.fromkeys(("recommended", "best_value", "default"), fmt))
        return 0


class Report(Command):
    name = "report"
    help = "figures, tables and index.html for studies"
    description = ("Write reports/<study>/: a plot per parameter (±1 SE error bars, the "
                   "one-SE band, pruned values as lower bounds, the chosen value starred), "
                   "the chosen value per parameter, all sweeps side by side, per-trial "
                   "curves, for joint "
                   "searches the history, parallel coordinates and importance; with several "
                   "studies a comparison. Plus summary.md, trials.csv and a self-contained "
                   "index.html.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--project", nargs="+", required=True, metavar="DIR",
                            help="study folder(s); several give a comparison (e.g. gru vs "
                                 "lstm vs cnn)")
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")
        parser.add_argument("--out", metavar="DIR",
                            help="report folder (default: reports/<study>)")
        _add_objective_option(parser)
        _add_baseline_option(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.report import write_report

        pairs = _recommendations(args.project, self.out, args.baseline, args.objective)
        studies, recs = [p[0] for p in pairs], [p[1] for p in pairs]
        name = studies[0].name if len(studies) == 1 else "compare-" + "-".join(
            s.name for s in studies)
        out = Path(args.out) if args.out else Path(args.reports_dir) / name
        paths = write_report(studies, recs, out)
        self.out.note(f"{len(paths)} files in {out}; open {out / 'index.html'}")
        return 0


class Leaderboard(Command):
    name = "leaderboard"
    help = "all final models and baselines in one table"
    description = ("Every model final-train wrote to the reports folder (mean ± std over "
                   "seeds where it has several) and the baselines, best validation accuracy "
                   "first, with test accuracy, macro-F1 and per-class F1; multi-label models "
                   "in a table of their own (best val macro-F1 first, test macro-/micro-F1, "
                   "subset accuracy, the multi-label baselines). Writes "
                   "<reports-dir>/leaderboard.md.")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.leaderboard import write_leaderboard

        reports = Path(args.reports_dir)
        if not reports.is_dir():
            raise EmotuneError(f"--reports-dir {reports} does not exist; give the folder "
                               f"final-train wrote to (default: reports)")
        out, records, md = write_leaderboard(reports)
        self.out.records(records, table=md, markdown=md)
        self.out.note(f"written: {out}")
        return 0


class Baseline(Command):
    name = "baseline"
    help = "majority class and TF-IDF + logistic regression"
    description = ("Scores for scale on the same splits: the majority class, and TF-IDF "
                   "(word 1-2 grams) + logistic regression with C chosen on val (multi-label "
                   "data: the most frequent label, and one-vs-rest logistic regression with "
                   "per-label thresholds tuned on val). Computed once per dataset and split "
                   "and cached ($EMOTUNE_CACHE/baselines; recommend and report read the same "
                   "cache). Writes reports/baseline/baseline.{md,json} (a dataset by name other "
                   "than emotion: reports/baseline-<dataset>/; --name to choose).")
    prints_data = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_config_options(parser)
        parser.add_argument("--reports-dir", default="reports", metavar="DIR")
        parser.add_argument("--name", metavar="NAME",
                            help="the report folder under --reports-dir (default: baseline; "
                                 "baseline-<dataset> for a dataset by name other than emotion)")

    def take_action(self, args: argparse.Namespace) -> int:
        from emotune.baseline import (
            baseline_columns,
            baseline_markdown,
            baseline_records,
            cached_baselines,
        )
        from emotune.data import load_dataset
        from emotune.results import atomic_write_json, atomic_write_text

        config = load_config(args)
        dataset = load_dataset(config.data)
        result, cached = cached_baselines(dataset, announce=self.out.note)
        if cached:
            self.out.note("from the cache: computed before by "
                          f"`{result.get('provenance', {}).get('command', '?')}`")
        # baseline/ for the emotion dataset and data given by path; another dataset by name
        # (goemotions) in baseline-<its name>/
        named = not config.data.path and config.data.dataset != "emotion"
        out = Path(args.reports_dir) / (args.name or ("baseline" if not named
                                                      else f"baseline-{dataset.name}"))
        atomic_write_json(out / "baseline.json", result)
        table = baseline_markdown(result)
        atomic_write_text(out / "baseline.md", "# Baselines (same splits)\n\n" + table)
        self.out.records(baseline_records(result), baseline_columns(result), table=table,
                         markdown=table)
        self.out.note(f"written: {out / 'baseline.md'}, {out / 'baseline.json'}")
        return 0


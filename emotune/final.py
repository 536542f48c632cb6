"""`emotune final-train`: retrain one configuration, evaluate it on the test split once.

Training uses train with early stopping on val, exactly as in a search; the test split is read
here and nowhere else. This module computes: ``fit_and_evaluate`` returns a ``FinalEvaluation``
(test metrics, per-class table, confusion matrix, val numbers, per-epoch curves with the
gradient norm and learning rate) and ``train_final`` trains each seed, then hands the model to
``bundle.py`` and the evaluation to ``report_final.py``, which owns every figure and file format.
The bundle and the report folder are replaced together, and only once every seed has succeeded.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotune.data import Prepared
from emotune.errors import EmotuneError


def gradient_probe(prepared: Prepared, rows: int = 512) -> Any:
    """A ``GradientProbe`` on the first ``rows`` training rows (padded to their longest)."""
    from emotune.callbacks import GradientProbe
    from emotune.train import label_array

    n = min(rows, len(prepared.train.labels))
    enc = prepared.train
    return GradientProbe(enc.ids[:n, : max(int(enc.lengths[:n].max()), 1)],
                         label_array(enc)[:n])


@dataclass(frozen=True)
class SplitMetrics:
    """One split's numbers. Multi-label (``multi`` set): ``accuracy`` is subset accuracy (every
    label of a text right), ``cross_entropy`` the binary one averaged over labels, ``per_class``
    also has each label's threshold and average precision, and ``confusion[i, j]`` counts the
    texts labelled i for which j was predicted (the diagonal: hits; a row's other cells: the
    labels predicted alongside or instead)."""

    accuracy: float
    macro_f1: float
    weighted_f1: float
    cross_entropy: float
    per_class: Any  # DataFrame: label, precision, recall, f1, support
    confusion: np.ndarray  # counts, rows = true label
    multi: MultiLabelExtra | None = None

    @property
    def confusion_percent(self) -> np.ndarray:
        """The confusion matrix as percentages of each true label's row (multi-label: of
        the label's texts)."""
        if self.multi is not None:
            support = self.per_class["support"].to_numpy(dtype=float)[:, None]
            return np.where(support > 0, 100.0 * self.confusion / np.maximum(support, 1), 0.0)
        return row_percent(self.confusion)

    def as_dict(self) -> dict[str, Any]:
        out = {"test_accuracy": self.accuracy, "test_macro_f1": self.macro_f1,
               "test_weighted_f1": self.weighted_f1, "test_cross_entropy": self.cross_entropy,
               "per_class": self.per_class.to_dict("records"),
               "confusion": self.confusion.tolist()}
        if self.multi is not None:
            out.update({"multi_label": True, "test_subset_accuracy": self.accuracy,
                        **{f"test_{k}": v for k, v in self.multi.scores().items()},
                        "threshold_rule": self.multi.rule,
                        "thresholds": [float(t) for t in self.multi.thresholds]})
        return out


@dataclass(frozen=True)
class MultiLabelExtra:
    """What a multi-label split has beyond ``SplitMetrics``: the thresholds it was decided at
    (tuned on validation by ``rule``), micro-F1, Hamming loss, label-ranking numbers, the
    macro- and micro-F1 under the other threshold rules (for reference), and the PR curves of
    the weakest labels."""

    rule: str  # per-label | global | fixed
    thresholds: np.ndarray  # per label
    micro_f1: float
    hamming_loss: float
    macro_ap: float  # mean average precision over labels (threshold-free)
    by_rule: dict[str, dict[str, float]]  # rule -> {"macro_f1", "micro_f1"}
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]]  # label -> (recall, precision)

    def scores(self) -> dict[str, float]:
        return {"micro_f1": self.micro_f1, "hamming_loss": self.hamming_loss,
                "macro_average_precision": self.macro_ap}


# finer where rare labels' thresholds fall (a label on 1% of texts rarely reaches 0.5)
THRESHOLD_GRID = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.075,
                           *np.round(np.arange(0.1, 0.951, 0.05), 2)])
THRESHOLD_RULES = ("per-label", "global", "fixed")


def tune_thresholds(y: np.ndarray, probs: np.ndarray, rule: str = "per-label",
                    fixed: float = 0.5) -> np.ndarray:
    """Decision thresholds for multi-label ``probs`` chosen on (validation) labels ``y``.

    ``per-label``: each label's threshold on ``THRESHOLD_GRID`` maximising that label's F1
    (ties: the one nearest 0.5; a label without positives keeps ``fixed``); ``global``: one
    threshold for all labels maximising macro-F1; ``fixed``: ``fixed`` for every label.
    """
    from emotune.scores import f1_from_counts, per_class_f1

    k = probs.shape[1]
    if rule == "fixed":
        return np.full(k, fixed)
    true = (y > 0)[None]  # 1 x n x labels
    pred = probs[None] >= THRESHOLD_GRID[:, None, None]  # grid x n x labels
    tp = (pred & true).sum(1).astype(float)
    predicted = pred.sum(1).astype(float)
    actual = np.broadcast_to(true.sum(1), tp.shape).astype(float)
    f1 = per_class_f1(tp, predicted, actual)  # grid x labels
    near = np.abs(THRESHOLD_GRID - 0.5)
    if rule == "global":
        macro, _ = f1_from_counts(tp, predicted, actual, every_label=True)
        best = max(range(len(THRESHOLD_GRID)), key=lambda i: (round(macro[i], 12), -near[i]))
        return np.full(k, THRESHOLD_GRID[best])
    if rule != "per-label":
        raise EmotuneError(f"unknown threshold rule {rule!r}: expected one of "
                           f"{', '.join(THRESHOLD_RULES)}")
    out = np.full(k, fixed)
    for j in range(k):
        if actual[0, j] > 0:
            out[j] = THRESHOLD_GRID[max(range(len(THRESHOLD_GRID)),
                                        key=lambda i: (round(f1[i, j], 12), -near[i]))]
    return out


def evaluate_multi_label(y: np.ndarray, probs: np.ndarray, labels: list[str],
                         thresholds: np.ndarray, rule: str,
                         other: dict[str, np.ndarray] | None = None,
                         curves: int = 4) -> SplitMetrics:
    """The numbers of one multi-label split at ``thresholds`` (pure; see ``SplitMetrics``).

    Args:
        y: the 0/1 label matrix (texts x labels).
        probs: one sigmoid probability per label.
        labels: the label names.
        thresholds: one per label (``tune_thresholds`` on validation).
        rule: how they were chosen, for the record.
        other: the thresholds of the other rules, scored for reference.
        curves: PR curves are kept for this many labels with the lowest F1.
    """
    import pandas as pd
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        hamming_loss,
        precision_recall_curve,
        precision_recall_fscore_support,
    )

    from emotune.scores import cross_entropies

    true = (y > 0).astype(int)
    pred = (probs >= thresholds[None]).astype(int)
    p, r, f, s = precision_recall_fscore_support(true, pred, zero_division=0)
    ap = np.array([average_precision_score(true[:, j], probs[:, j]) if true[:, j].any()
                   else np.nan for j in range(len(labels))])
    per_class = pd.DataFrame({"label": labels, "threshold": thresholds, "precision": p,
                              "recall": r, "f1": f, "support": s, "average_precision": ap})

    def f1s(pr: np.ndarray) -> dict[str, float]:
        return {"macro_f1": float(f1_score(true, pr, average="macro", zero_division=0)),
                "micro_f1": float(f1_score(true, pr, average="micro", zero_division=0))}

    by_rule = {name: {**f1s((probs >= t[None]).astype(int)),
                      "threshold": float(t[0]) if np.all(t == t[0]) else math.nan}
               for name, t in (other or {}).items()}
    weakest = [int(j) for j in np.argsort(f, kind="stable") if s[j] > 0][:curves]
    pr_curves = {}
    for j in weakest:
        prec, rec, _ = precision_recall_curve(true[:, j], probs[:, j])
        pr_curves[labels[j]] = (rec, prec)
    extra = MultiLabelExtra(rule, np.asarray(thresholds, dtype=float),
                            f1s(pred)["micro_f1"], float(hamming_loss(true, pred)),
                            float(np.nanmean(ap)), by_rule, pr_curves)
    return SplitMetrics(
        accuracy=float((pred == true).all(1).mean()),
        macro_f1=float(f1_score(true, pred, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(true, pred, average="weighted", zero_division=0)),
        cross_entropy=float(cross_entropies(y, probs).mean()),
        per_class=per_class, confusion=true.T @ pred, multi=extra)


def evaluate_split(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> SplitMetrics:
    """The numbers of one split from its true labels and the predicted probabilities (pure).

    Args:
        y: True label ids, shape ``(n,)``.
        probs: Predicted class probabilities, shape ``(n, len(labels))``.
        labels: The class names, in label-id order.

    Returns:
        ``SplitMetrics``: accuracy, macro- and weighted-F1, cross-entropy, the per-class table
        and the confusion matrix (rows: true label). A class absent from ``y`` scores 0.
    """
    import pandas as pd
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
    )

    k = len(labels)
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    per_class = pd.DataFrame({"label": labels, "precision": p, "recall": r, "f1": f,
                              "support": s})
    return SplitMetrics(
        accuracy=float(accuracy_score(y, pred)),
        macro_f1=float(f1_score(y, pred, average="macro", labels=range(k), zero_division=0)),
        weighted_f1=float(f1_score(y, pred, average="weighted", labels=range(k),
                                   zero_division=0)),
        cross_entropy=float(log_loss(y, np.clip(probs, 1e-7, 1), labels=range(k))),
        per_class=per_class,
        confusion=confusion_matrix(y, pred, labels=range(k)))


def row_percent(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1, keepdims=True)
    return np.where(totals > 0, 100.0 * confusion / np.maximum(totals, 1), 0.0)


@dataclass(frozen=True)
class FinalEvaluation:
    """One model evaluated on the test split once: everything its report is drawn from.

    ``title`` heads the report ("best-gru", "best-gru (seed 2)", "ens (mean of 3 bundles)").
    ``val`` holds the validation numbers kept for the record (``val_accuracy``,
    ``val_macro_f1``, ``val_loss``; for a trained model also ``best_epoch``, ``epochs_run``,
    ``seconds`` and ``params``; for an ensemble ``params`` and ``members``). ``history`` is
    the per-epoch table (with ``grad_norm`` and ``learning_rate``), None for an ensemble,
    which has no epochs of its own.
    """

    title: str
    labels: tuple[str, ...]
    test: SplitMetrics
    val: Mapping[str, Any]
    seed: int | None = None
    history: Any = None


@dataclass(frozen=True)
class FinalTraining:
    """What ``train_final`` did: one evaluation per seed, and where bundle and report are.

    ``table`` is ``seeds_table(evaluations)`` when seeds were given (bundles in
    ``bundle_dir/seed-<N>/``, reports in ``report_dir/seed-<N>/``), else None.
    """

    name: str
    evaluations: tuple[FinalEvaluation, ...]
    bundle_dir: Path
    report_dir: Path
    table: Any = None


def fit_and_evaluate(config: Any, prepared: Prepared, embedding: Any, *,
                     title: str, board: Path | None = None) -> tuple[Any, FinalEvaluation]:
    """Train on train (early stopping on val), evaluate on test once; nothing is written but
    TensorBoard event files into ``board`` when given (every epoch's scalars).

    Returns:
        The trained Keras model and its ``FinalEvaluation``.

    Raises:
        TrainingError: Training diverged (the loss became NaN).
    """
    from emotune.train import fit, predict_probs

    probe = gradient_probe(prepared)
    scalars: tuple[Any, ...] = ()
    if board is not None:
        from emotune.tensorboard import EpochScalars

        scalars = (EpochScalars(board),)
    result = fit(config, prepared, embedding, callbacks=(probe, *scalars))
    history = result.history.copy()
    extra = probe.rows[: len(history)]
    history["grad_norm"] = [r["grad_norm"] for r in extra]
    history["learning_rate"] = [r["learning_rate"] for r in extra]
    labels = tuple(prepared.label_names)
    probs = predict_probs(result.model, prepared.test)
    val = {k: result.metrics[k] for k in ("val_accuracy", "val_loss", "val_macro_f1",
                                          "best_epoch", "epochs_run", "seconds", "params")}
    if prepared.multi_label:  # val micro-F1: fit's, at train.threshold on the best epoch
        val["val_micro_f1"] = result.metrics["val_micro_f1"]
        test, val = evaluate_multi_label_model(config, prepared, result.val_probs, probs, val)
    else:
        test = evaluate_split(prepared.test.labels, probs, list(labels))
    return result.model, FinalEvaluation(title, labels, test, val, config.train.seed, history)


def evaluate_multi_label_model(config: Any, prepared: Prepared, val_probs: np.ndarray,
                                test_probs: np.ndarray, val: dict[str, Any]
                                ) -> tuple[SplitMetrics, dict[str, Any]]:
    """Thresholds tuned on validation (``train.threshold_rule``; the other rules' too, for
    reference) from the model's validation predictions ``val_probs``, then the test split
    scored once at them; ``val`` gains the validation macro- and micro-F1 at the tuned
    thresholds (optimistic: chosen there)."""
    from emotune.scores import multi_label_scores

    tc = config.train
    rules = {r: tune_thresholds(prepared.val.labels, val_probs, r, tc.threshold)
             for r in THRESHOLD_RULES}
    chosen = rules[tc.threshold_rule]
    tuned = multi_label_scores(prepared.val.labels, val_probs, math.nan, chosen)
    val = {**val, "threshold": tc.threshold, "val_macro_f1_tuned": tuned["val_macro_f1"],
           "val_micro_f1_tuned": tuned["val_micro_f1"]}
    test = evaluate_multi_label(prepared.test.labels, test_probs, list(prepared.label_names),
                                chosen, tc.threshold_rule, rules)
    return test, val


def train_final(config: Any, prepared: Prepared, embedding: Any, *, name: str,
                seeds: Sequence[int] | None = None, models_dir: Path, reports_dir: Path,
                overwrite: bool = False, tensorboard: bool = False) -> FinalTraining:
    """Train ``config`` (once, or once per seed), test each model once, write bundles and reports.

    The bundle goes to ``models_dir/name/`` and the report to ``reports_dir/name/final/``
    (with ``seeds``: one ``seed-<N>/`` of each per seed, and a seeds report with their mean
    and sample std in ``final/``, for one seed too). Both are written into temporary folders
    beside them and put in place together once every seed has succeeded; a failure leaves
    the earlier bundle and report as they were.

    Args:
        config: The configuration to train (``train.seed`` is replaced by each of ``seeds``).
        prepared: The tokenised splits; the test split is read once per model.
        embedding: The vocabulary-aligned word vectors.
        name: The bundle and report name.
        seeds: Distinct seeds to train one model each with; None trains ``config`` as it is.
        models_dir: The folder of bundles (``models``).
        reports_dir: The folder of reports (``reports``).
        overwrite: Replace an existing bundle of this name.
        tensorboard: Also write TensorBoard event files into ``final/tensorboard/`` of the
            report (``run/`` or ``seed-<N>/``: every epoch's scalars, and an HParams summary
            with the configuration and its val and test numbers).

    Returns:
        A ``FinalTraining``: one ``FinalEvaluation`` per seed and the folders written.

    Raises:
        EmotuneError: The bundle exists and ``overwrite`` is False, or ``seeds`` is empty or
            repeats a seed.
        TrainingError: A seed's training diverged (nothing is replaced then).
    """
    from emotune.bundle import save_bundle
    from emotune.config import override
    from emotune.progress import log
    from emotune.report_final import write_final_report, write_seeds_report
    from emotune.train import package_versions

    bundle_dir, report_dir = Path(models_dir) / name, Path(reports_dir) / name / "final"
    refuse_existing(bundle_dir, overwrite)
    if seeds is not None:
        check_seeds(seeds)
    m, t = config.model, config.train
    log(f"final training of {name}: {m.type} units={m.units} embedding={m.embedding} "
        f"dropout={m.dropout} {t.optimizer} lr={t.lr} batch={t.batch_size}")
    versions = package_versions()
    runs = [(None, name)] if seeds is None else [(s, f"{name} (seed {s})") for s in seeds]
    evaluations = []
    with replacing(bundle_dir, report_dir) as (bundle_tmp, report_tmp):
        for k, (seed, title) in enumerate(runs):
            if seed is not None:
                log(f"seed {seed} ({k + 1}/{len(runs)})")
            cfg = config if seed is None else override(config, {"train.seed": seed})
            board = None
            if tensorboard:
                from emotune.tensorboard import DIR

                board = report_tmp / DIR / ("run" if seed is None else f"seed-{seed}")
            model, e = fit_and_evaluate(cfg, prepared, embedding, title=title, board=board)
            if board is not None:
                from emotune.space import hp_values
                from emotune.tensorboard import write_run_summary

                write_run_summary(board, hp_values(cfg), {
                    **{k: e.val[k] for k in ("val_accuracy", "val_macro_f1", "val_loss")},
                    "test_accuracy": e.test.accuracy, "test_macro_f1": e.test.macro_f1},
                    board.name)
            metrics = {**e.val, **e.test.as_dict(), "seed": e.seed,
                       "data_checksum": prepared.checksum, "embedding": embedding.summary()}
            sub = Path() if seed is None else Path(f"seed-{seed}")
            thresholds = None if e.test.multi is None else e.test.multi.thresholds
            save_bundle(bundle_tmp / sub, model, cfg, prepared, metrics, versions, thresholds)
            write_final_report(report_tmp / sub, e)
            evaluations.append(e)
        table = None if seeds is None else seeds_table(evaluations)
        if table is not None:
            write_seeds_report(report_tmp, name, table)
    return FinalTraining(name, tuple(evaluations), bundle_dir, report_dir, table)


def check_seeds(seeds: Sequence[int]) -> None:
    """Raise unless ``seeds`` is a non-empty list of distinct seeds."""
    if not seeds:
        raise EmotuneError("--seeds names no seed; give distinct seeds, e.g. --seeds 1 2 3")
    if len(set(seeds)) != len(seeds):
        raise EmotuneError(f"--seeds repeats a seed ({' '.join(map(str, seeds))}); give "
                           f"distinct seeds, e.g. --seeds 1 2 3")


def refuse_existing(bundle_dir: Path, overwrite: bool) -> None:
    """Raise if the bundle folder exists and may not be replaced."""
    if bundle_dir.exists() and not overwrite:
        raise EmotuneError(f"model folder {bundle_dir} already exists; choose another --name "
                           f"or add --overwrite")


def seeds_table(evaluations: Sequence[FinalEvaluation]) -> Any:
    """Pure: one row per seed (val and test numbers, per-class test F1) as a DataFrame."""
    import pandas as pd

    rows = []
    for e in evaluations:
        m, val = e.test, e.val
        row = {"seed": e.seed, "val_accuracy": val["val_accuracy"],
               "val_macro_f1": val["val_macro_f1"], "best_epoch": val["best_epoch"],
               "test_accuracy": m.accuracy, "test_macro_f1": m.macro_f1,
               "test_weighted_f1": m.weighted_f1}
        if m.multi is not None:
            row["test_micro_f1"] = m.multi.micro_f1
        row.update({f"f1_{r.label}": r.f1 for r in m.per_class.itertuples()})
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- replacing folders as one


@contextlib.contextmanager
def replacing(*targets: Path) -> Iterator[tuple[Path, ...]]:
    """Yield a temporary path beside each target folder, for the block to write into.

    When the block ends normally the temporary folders take the targets' places together and
    the old folders are deleted only then; if a rename fails, the old folders are put back.
    If the block raises, the temporary folders (and parents made for them) are deleted and
    the targets are not touched.
    """
    targets = tuple(Path(t) for t in targets)
    tmps = tuple(t.with_name(f".{t.name}.partial-{os.getpid()}") for t in targets)
    made = [p for t in targets for p in (t.parent, *t.parent.parents) if not p.exists()]
    for tmp in tmps:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run with the same pid
    try:
        yield tmps
        for tmp in tmps:
            tmp.mkdir(parents=True, exist_ok=True)
    except BaseException:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        for parent in sorted(set(made), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if empty
        raise
    _swap(targets, tmps)


def _swap(targets: tuple[Path, ...], tmps: tuple[Path, ...]) -> None:
    old: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for target, tmp in zip(targets, tmps):
            if target.exists():
                aside = target.with_name(f".{target.name}.old-{os.getpid()}")
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(target, aside)
                old.append((target, aside))
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            shutil.rmtree(target, ignore_errors=True)
        for target, aside in old:
            os.replace(aside, target)
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, aside in old:
        shutil.rmtree(aside, ignore_errors=True)

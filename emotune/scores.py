"""Scores of predicted class probabilities against the labels: what every epoch logs, what a
search can rank by (``OBJECTIVES``), and how noisy each is on the validation texts.

Pure numpy over one split's labels and probabilities; the same numbers scikit-learn gives
(tests/test_scores.py), without its per-call overhead, so they can be taken every epoch.

Cross-entropy and KL divergence are measured against the targets the loss trains on: one-hot,
or smoothed (``(1 - e) one-hot + e / K``) with label smoothing ``e``. KL = cross-entropy minus
the targets' entropy, so the two are equal with one-hot targets and differ exactly when
smoothing is on (by that constant entropy). ``val_loss`` is the training loss itself (with
smoothing and focal weighting when those are on), which is what early stopping watches by
default; ``val_nll`` is the plain cross-entropy to the one-hot labels (the negative
log-likelihood), equal to ``val_loss`` with neither, and comparable across loss settings: it is
what the ``val_loss`` objective ranks by (``per_epoch``).

Multi-label (labels a 0/1 matrix, probabilities one sigmoid per label): a label is predicted
when its probability reaches the decision threshold (``train.threshold``, 0.5 by default, while
training and searching; final-train tunes one per label on validation). ``val_accuracy`` is
then subset accuracy (every label of a text right), ``val_micro_f1`` pools all labels' counts,
``val_hamming`` is the share of wrong label decisions, and cross-entropy is the binary one,
averaged over labels (``MULTI_LABEL_SCORES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON], as Keras's losses do


@dataclass(frozen=True)
class Objective:
    """A validation number a search ranks by."""

    name: str  # its column in trials.csv and history.csv
    maximize: bool
    label: str  # in tables and notes

    def better(self, a: float, b: float) -> bool:
        """``a`` is better than ``b``."""
        return a > b if self.maximize else a < b

    def signed(self, value: float) -> float:
        """The value with higher always better (a loss negated)."""
        return value if self.maximize else -value


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("val_accuracy", True, "val accuracy"),
    Objective("val_macro_f1", True, "val macro-F1"),
    Objective("val_micro_f1", True, "val micro-F1"),
    Objective("val_loss", False, "val loss"),
)}
MULTI_LABEL_OBJECTIVE = "val_macro_f1"  # the default for multi-label data
DEFAULT_OBJECTIVE = "val_accuracy"

# Logged for every epoch (history.csv), in this order.
EPOCH_SCORES = ("val_loss", "val_accuracy", "val_macro_f1", "val_weighted_f1",
                "val_cross_entropy", "val_kl", "val_nll")
MULTI_LABEL_SCORES = ("val_loss", "val_accuracy", "val_macro_f1", "val_micro_f1",
                      "val_weighted_f1", "val_hamming", "val_nll")


def per_epoch(name: str) -> str:
    """The history.csv column that follows objective ``name`` epoch by epoch: the trial's
    ``val_loss`` is the plain cross-entropy, which per epoch is ``val_nll`` (``val_loss`` there
    is the training loss, smoothed or focal when those are on)."""
    return "val_nll" if name == "val_loss" else name


def objective(name: str | None) -> Objective:
    """The objective called ``name`` (None: the default); unknown names raise ValueError."""
    name = name or DEFAULT_OBJECTIVE
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}: expected one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def per_class_f1(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Each class's F1 from its counts (0 where it was neither predicted nor present)."""
    denom = predicted + actual
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)


def f1_from_counts(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray,
                   every_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Macro- and weighted-F1 from per-class counts (last axis: classes; leading axes: e.g.
    bootstrap resamples). Classes neither in the labels nor in the predictions do not count,
    and F1 is 0 where a class was never predicted or never present (scikit-learn's
    ``zero_division=0`` over the labels it sees). With ``every_label`` (multi-label, as
    scikit-learn averages label matrices) every class counts, an absent one as 0."""
    f1, denom = per_class_f1(tp, predicted, actual), predicted + actual
    seen = np.ones_like(denom, dtype=bool) if every_label else denom > 0
    macro = (f1 * seen).sum(-1) / np.maximum(seen.sum(-1), 1)
    weighted = (f1 * actual).sum(-1) / np.maximum(actual.sum(-1), 1)
    return macro, weighted


def target_entropy(smoothing: float, num_classes: int) -> float:
    """The entropy of a smoothed one-hot target (0 without smoothing), in nats."""
    if not smoothing:
        return 0.0
    hi = 1 - smoothing + smoothing / num_classes
    lo = smoothing / num_classes
    return -(hi * math.log(hi) + (num_classes - 1) * lo * math.log(lo))


def cross_entropies(y: np.ndarray, probs: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Per text, the cross-entropy from its (smoothed) one-hot target to ``probs``; for
    multi-label ``y`` (a 0/1 matrix) the binary cross-entropy averaged over the labels."""
    if y.ndim == 2:
        p = np.clip(probs.astype(np.float64), EPSILON, 1 - EPSILON)
        t = y * (1 - smoothing) + 0.5 * smoothing
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1)
    k = probs.shape[1]
    logp = np.log(np.clip(probs.astype(np.float64), EPSILON, 1 - EPSILON))
    true = logp[np.arange(len(y)), y]
    if not smoothing:
        return -true
    return -((1 - smoothing) * true + smoothing / k * logp.sum(axis=1))


def epoch_scores(y: np.ndarray, probs: np.ndarray, loss: float, smoothing: float = 0.0,
                 threshold: float = 0.5) -> dict[str, float]:
    """Every ``EPOCH_SCORES`` number of one pass over validation (``MULTI_LABEL_SCORES`` for
    multi-label ``y``).

    Args:
        y: integer labels (n), or a 0/1 matrix (n x labels) for multi-label data.
        probs: predicted probabilities (n x classes).
        loss: the training loss's mean over these texts (``val_loss``).
        smoothing: the label smoothing the loss trains with.
        threshold: multi-label only: the probability at which a label is predicted.
    """
    if y.ndim == 2:
        return multi_label_scores(y, probs, loss, threshold)
    k = probs.shape[1]
    if not np.isfinite(probs).all():  # a diverged model: no score is meaningful
        return {key: (float(loss) if key == "val_loss" else math.nan) for key in EPOCH_SCORES}
    pred = probs.argmax(axis=1)
    hit = pred == y
    tp = np.bincount(y[hit], minlength=k).astype(float)
    macro, weighted = f1_from_counts(tp, np.bincount(pred, minlength=k).astype(float),
                                     np.bincount(y, minlength=k).astype(float))
    ce = float(cross_entropies(y, probs, smoothing).mean())
    nll = ce if not smoothing else float(cross_entropies(y, probs).mean())
    return {"val_loss": float(loss), "val_accuracy": float(hit.mean()),
            "val_macro_f1": float(macro), "val_weighted_f1": float(weighted),
            "val_cross_entropy": ce, "val_kl": ce - target_entropy(smoothing, k),
            "val_nll": nll}


def multi_label_counts(y: np.ndarray, probs: np.ndarray, threshold: Any = 0.5
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text and label: predicted (probability >= ``threshold``, one or one per label),
    true, and both (each n x labels, float)."""
    pred = (probs >= np.asarray(threshold)).astype(float)
    true = (y > 0).astype(float)
    return pred, true, pred * true


def micro_f1(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Micro-F1 from per-label counts (last axis: labels): every decision pooled."""
    tp, denom = tp.sum(-1), predicted.sum(-1) + actual.sum(-1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)


def multi_label_scores(y: np.ndarray, probs: np.ndarray, loss: float, threshold: Any = 0.5
                       ) -> dict[str, float]:
    """Every ``MULTI_LABEL_SCORES`` number of one pass over validation (see the module
    docstring); the same numbers as scikit-learn's on label matrices
    (tests/test_multilabel.py)."""
    if not np.isfinite(probs).all():
        return {key: (float(loss) if key == "val_loss" else math.nan)
                for key in MULTI_LABEL_SCORES}
    pred, true, both = multi_label_counts(y, probs, threshold)
    tp, predicted, actual = both.sum(0), pred.sum(0), true.sum(0)
    macro, weighted = f1_from_counts(tp, predicted, actual, every_label=True)
    return {"val_loss": float(loss), "val_accuracy": float((pred == true).all(1).mean()),
            "val_macro_f1": float(macro), "val_micro_f1": float(micro_f1(tp, predicted, actual)),
            "val_weighted_f1": float(weighted), "val_hamming": float((pred != true).mean()),
            "val_nll": float(cross_entropies(y, probs).mean())}


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` texts is drawn in each of ``resamples`` bootstrap resamples
    (resamples x n)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(resamples, n))
    return np.bincount((rows + n * np.arange(resamples)[:, None]).ravel(),
                       minlength=resamples * n).reshape(resamples, n).astype(float)


def bootstrap_se(y: np.ndarray, probs: np.ndarray, losses: np.ndarray | None = None,
                 resamples: int = 1000, seed: int = 0, threshold: Any = 0.5
                 ) -> dict[str, float]:
    """Bootstrap standard errors over the validation texts (Efron & Tibshirani 1993): each
    score recomputed on ``resamples`` resamples of the texts drawn with replacement, and the
    standard deviation taken. Macro-F1 has no simple binomial error like accuracy's, so this
    is its noise; accuracy's bootstrap error agrees with the binomial one.

    Args:
        losses: per-text losses, for the SE of ``val_loss`` (omitted without them).

    Returns:
        ``{"val_accuracy": se, "val_macro_f1": se, "val_weighted_f1": se[, "val_loss": se]}``,
        and ``val_micro_f1`` for multi-label ``y`` (labels predicted at ``threshold``).
    """
    n, k = probs.shape
    weights = resample_weights(n, resamples, seed)
    out: dict[str, float] = {}
    if y.ndim == 2:
        pred, true, both = multi_label_counts(y, probs, threshold)
        tp, predicted, actual = weights @ both, weights @ pred, weights @ true
        macro, weighted = f1_from_counts(tp, predicted, actual, every_label=True)
        exact = (pred == true).all(1).astype(float)
        out = {"val_accuracy": float((weights @ exact / n).std(ddof=1)),
               "val_macro_f1": float(macro.std(ddof=1)),
               "val_micro_f1": float(micro_f1(tp, predicted, actual).std(ddof=1)),
               "val_weighted_f1": float(weighted.std(ddof=1))}
        if losses is not None:
            out["val_loss"] = float((weights @ losses / n).std(ddof=1))
        return out
    pred = probs.argmax(axis=1)
    hit = (pred == y).astype(float)
    onehot_pred, onehot_y = np.eye(k)[pred], np.eye(k)[y]
    tp = weights @ (onehot_y * hit[:, None])
    macro, weighted = f1_from_counts(tp, weights @ onehot_pred, weights @ onehot_y)
    out = {"val_accuracy": float((weights @ hit / n).std(ddof=1)),
           "val_macro_f1": float(macro.std(ddof=1)),
           "val_weighted_f1": float(weighted.std(ddof=1))}
    if losses is not None:
        out["val_loss"] = float((weights @ losses / n).std(ddof=1))
    return out


def mean_loss(loss: Any, y: np.ndarray, probs: np.ndarray) -> tuple[float, np.ndarray]:
    """The compiled loss (a Keras loss name or ``Loss`` object) per text and its mean."""
    import keras

    if isinstance(loss, keras.losses.Loss):
        values = loss.call(y, probs)  # per text: without the Loss's reduction
    else:
        values = keras.losses.get(loss)(y, probs)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(values.mean()), values

"""Baselines for scale: the majority class and TF-IDF + logistic regression (scikit-learn).

Multi-label data: the most frequent label for every text, and one-vs-rest logistic regression
(one per label). Its ``val`` scores are at threshold 0.5 (as a search's epochs are scored); its
``test`` scores at per-label thresholds tuned on validation, as ``final-train`` decides.

Same splits and tokeniser as the neural models. The regularisation strength C is chosen on the
validation split; the test split is scored once, with the chosen C. A dataset's baselines are
computed once and cached under ``data.cache_dir()/baselines``, keyed by the splits' contents,
so ``recommend`` and ``report`` can show them beside every study of that dataset.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotune.data import Dataset, cache_dir, tokenize
from emotune.errors import EmotuneError
from emotune.tables import render

C_VALUES = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
METHOD = "tfidf-1-2gram-sublinear-mindf2-logreg-v1"  # a cached result of another method is redone
BASELINE_COLUMNS = ["baseline", "label", "C", "val_accuracy", "val_macro_f1", "test_accuracy",
                    "test_macro_f1"]


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro"))}


def _vectorised(dataset: Dataset, splits: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                          ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x = {"train": vec.fit_transform(dataset.splits["train"].texts)}
    for s in splits:
        x[s] = vec.transform(dataset.splits[s].texts)
    return vec, x


def _multi_label_scores(y: np.ndarray, probs: np.ndarray, threshold: Any = 0.5
                        ) -> dict[str, float]:
    """Subset accuracy, macro- and micro-F1 of ``probs`` decided at ``threshold``."""
    from emotune.scores import multi_label_scores

    s = multi_label_scores(y, probs, math.nan, threshold)
    return {k: s[f"val_{k}"] for k in ("accuracy", "macro_f1", "micro_f1")}


def multi_label_baselines(dataset: Dataset, test: bool = True) -> dict[str, Any]:
    """``baselines`` of multi-label data (see the module docstring); C by val macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from emotune.data import label_matrix
    from emotune.final import tune_thresholds

    index = {name: i for i, name in enumerate(dataset.label_names)}
    scored = ("val", "test") if test else ("val",)
    y = {s: label_matrix(dataset.splits[s].labels, index) for s in ("train", *scored)}
    top = int(y["train"].sum(0).argmax())
    only = lambda n: np.eye(len(index), dtype=np.uint8)[np.full(n, top)]  # noqa: E731
    out: dict[str, Any] = {"multi_label": True, "majority": {
        "label": dataset.label_names[top],
        **{s: _multi_label_scores(y[s], only(len(y[s]))) for s in scored}}}
    start = time.perf_counter()
    vec, x = _vectorised(dataset, scored)
    by_c = {}
    for c in C_VALUES:
        clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000, solver="liblinear"))
        clf.fit(x["train"], y["train"])
        by_c[c] = (_multi_label_scores(y["val"], clf.predict_proba(x["val"])), clf)
    best_c = max(by_c, key=lambda c: by_c[c][0]["macro_f1"])
    val, clf = by_c[best_c]
    result = {"C": best_c, "features": len(vec.vocabulary_),
              "val_macro_f1_by_C": {str(c): v[0]["macro_f1"] for c, v in by_c.items()},
              "val": val, "threshold_rule": "per-label"}
    if test:
        val_probs = clf.predict_proba(x["val"])
        thresholds = tune_thresholds(y["val"], val_probs, "per-label")
        result["test"] = _multi_label_scores(y["test"], clf.predict_proba(x["test"]),
                                             thresholds)
    out["tfidf_logreg"] = {**result, "seconds": round(time.perf_counter() - start, 1)}
    return out


def baselines(dataset: Dataset, test: bool = True) -> dict[str, Any]:
    """Val and (with ``test``) test scores of the majority class and of TF-IDF (1-2 grams) +
    LR; without ``test`` the test split is not scored."""
    from sklearn.linear_model import LogisticRegression

    if dataset.multi_label:
        return multi_label_baselines(dataset, test)
    index = {name: i for i, name in enumerate(dataset.label_names)}
    y = {s: np.array([index[v] for v in sp.labels]) for s, sp in dataset.splits.items()
         if test or s != "test"}
    majority = int(np.bincount(y["train"]).argmax())
    scored = ("val", "test") if test else ("val",)
    out: dict[str, Any] = {"majority": {
        "label": dataset.label_names[majority],
        **{s: _scores(y[s], np.full_like(y[s], majority)) for s in scored}}}

    start = time.perf_counter()
    vec, x = _vectorised(dataset, scored)
    by_c = {}
    for c in C_VALUES:
        clf = LogisticRegression(C=c, max_iter=3000).fit(x["train"], y["train"])
        by_c[c] = (_scores(y["val"], clf.predict(x["val"])), clf)
    best_c = max(by_c, key=lambda c: by_c[c][0]["accuracy"])
    val, clf = by_c[best_c]
    out["tfidf_logreg"] = {
        "C": best_c, "features": len(vec.vocabulary_),
        "val_accuracy_by_C": {str(c): v[0]["accuracy"] for c, v in by_c.items()},
        "val": val, **({"test": _scores(y["test"], clf.predict(x["test"]))} if test else {}),
        "seconds": round(time.perf_counter() - start, 1)}
    return out


MULTI_LABEL_COLUMNS = ["baseline", "label", "C", "val_accuracy", "val_macro_f1",
                       "val_micro_f1", "test_accuracy", "test_macro_f1", "test_micro_f1"]


def baseline_columns(result: dict[str, Any]) -> list[str]:
    """The record keys of ``baseline_records(result)``."""
    return MULTI_LABEL_COLUMNS if result.get("multi_label") else BASELINE_COLUMNS


def baseline_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The two baselines of ``baselines(...)`` as records (keys: ``baseline_columns``)."""
    m, t = result["majority"], result["tfidf_logreg"]
    scores = [c for c in baseline_columns(result) if c.startswith(("val_", "test_"))]
    return [{"baseline": name, **extra,
             **{c: r[c.split("_", 1)[0]][c.split("_", 1)[1]] for c in scores}}
            for name, extra, r in (("majority", {"label": m["label"]}, m),
                                   ("tfidf_logreg", {"C": t["C"]}, t))]


def baseline_markdown(result: dict[str, Any]) -> str:
    """The Markdown table of ``baseline.md`` for ``baselines(...)``'s result."""
    m, t = result["majority"], result["tfidf_logreg"]
    multi = bool(result.get("multi_label"))
    names = [f"{'most frequent label' if multi else 'majority class'} ({m['label']})",
             f"TF-IDF 1-2 grams + {'one-vs-rest ' if multi else ''}logistic regression "
             f"(C={t['C']:g}, chosen on val)"]
    titles = {"baseline": "baseline", "val_accuracy": "val acc",
              "val_macro_f1": "val macro-F1", "test_accuracy": "test acc",
              "test_macro_f1": "test macro-F1"}
    if multi:
        titles = {"baseline": "baseline", "val_accuracy": "val subset acc",
                  "val_macro_f1": "val macro-F1", "val_micro_f1": "val micro-F1",
                  "test_accuracy": "test subset acc", "test_macro_f1": "test macro-F1",
                  "test_micro_f1": "test micro-F1"}
    rows = [{**r, "baseline": n} for r, n in zip(baseline_records(result), names)]
    table = render(rows, list(titles), "markdown", headers=titles,
                   cells=dict.fromkeys(list(titles)[1:], "{:.4f}".format)) + "\n"
    if multi:
        table += ("\nMulti-label: val scores at threshold 0.5 (as a search scores its "
                  "epochs); test scores at per-label thresholds tuned on val (as final-train "
                  "decides).\n")
    return table


def split_key(dataset: Dataset) -> str:
    """A digest of what the baselines depend on: the method, scikit-learn's version and every
    split's texts and labels (so a new split seed or fraction is a new key, whatever the
    files' checksum)."""
    import sklearn

    h = hashlib.sha256(f"{METHOD}|{C_VALUES}|{list(dataset.label_names)}|"
                       f"{sklearn.__version__}".encode())  # its solver's result may change
    for name in ("train", "val", "test"):
        split = dataset.splits[name]
        h.update(f"|{name}|{len(split.texts)}|".encode())
        for text, label in zip(split.texts, split.labels):
            h.update(f"{text}\t{label}\n".encode())
    return h.hexdigest()


def cached_baselines(dataset: Dataset, cache: Path | None = None,
                     announce: Callable[[str], None] | None = None, test: bool = True
                     ) -> tuple[dict[str, Any], bool]:
    """``baselines(dataset, test)``, computed once per dataset and split and cached.

    Args:
        dataset: the loaded, split dataset.
        cache: the cache folder (default ``data.cache_dir() / "baselines"``).
        announce: called with a line before a computation (not for a cache hit).
        test: score the test split too; a cached result without it is computed again
            (``recommend`` asks for validation only, ``emotune baseline`` for both).

    Returns:
        The result (with ``key``, ``n_val`` and the ``provenance`` of the run that computed it)
        and whether it came from the cache.
    """
    from emotune.provenance import provenance
    from emotune.results import atomic_write_json, read_json

    key = split_key(dataset)
    path = (cache or cache_dir() / "baselines") / f"{key[:24]}.json"
    if path.is_file():
        try:
            found = read_json(path, attempts=1)
            if found.get("key") == key and (not test or "test" in found["tfidf_logreg"]):
                return found, True
        except EmotuneError:
            pass  # damaged: compute it again below
    if announce:
        announce(f"computing the baselines of this dataset once (TF-IDF + logistic regression "
                 f"for {len(C_VALUES)} values of C: about a minute on 16k texts, two on "
                 f"GoEmotions' 43k); cached in {path.parent}")
    result = {"key": key, "n_val": len(dataset.splits["val"].texts),
              **baselines(dataset, test), "provenance": provenance()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return result, False


def study_baselines(base_config: dict[str, Any], checksum: str | None,
                    announce: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The cached baselines of the dataset a study searched on (its recorded data settings),
    validation scores only (a cached result may hold test scores too: they are not shown).

    Raises:
        EmotuneError: the data is not on this machine (nothing is downloaded) or cannot be
            read, or its files changed since the study ran.
    """
    from emotune.config import build_config
    from emotune.data import load_dataset

    dataset = load_dataset(build_config(overrides=base_config).data, download=False)
    if checksum and dataset.checksum != checksum:
        raise EmotuneError("the study's data files have changed since it ran (their checksum "
                           "differs), so a baseline on them would not be on the same split")
    try:
        return cached_baselines(dataset, announce=announce, test=False)[0]
    except ValueError as e:  # scikit-learn: e.g. no word occurs twice, or one class only
        raise EmotuneError(f"the baseline cannot be fitted on this data ({e})") from e

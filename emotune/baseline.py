"""Baselines for scale: the majority class and TF-IDF + logistic regression (scikit-learn).

Same splits and tokeniser as the neural models. The regularisation strength C is chosen on the
validation split; the test split is scored once, with the chosen C.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from emotune.data import Dataset, tokenize
from emotune.tables import render

C_VALUES = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
BASELINE_COLUMNS = ["baseline", "label", "C", "val_accuracy", "val_macro_f1", "test_accuracy",
                    "test_macro_f1"]


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro"))}


def baselines(dataset: Dataset) -> dict[str, Any]:
    """Val and test scores of the majority class and of TF-IDF (1-2 grams) + LR."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    index = {name: i for i, name in enumerate(dataset.label_names)}
    y = {s: np.array([index[v] for v in sp.labels]) for s, sp in dataset.splits.items()}
    majority = int(np.bincount(y["train"]).argmax())
    out: dict[str, Any] = {"majority": {
        "label": dataset.label_names[majority],
        **{s: _scores(y[s], np.full_like(y[s], majority)) for s in ("val", "test")}}}

    start = time.perf_counter()
    vec = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                          ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x = {"train": vec.fit_transform(dataset.splits["train"].texts)}
    for s in ("val", "test"):
        x[s] = vec.transform(dataset.splits[s].texts)
    by_c = {}
    for c in C_VALUES:
        clf = LogisticRegression(C=c, max_iter=3000).fit(x["train"], y["train"])
        by_c[c] = (_scores(y["val"], clf.predict(x["val"])), clf)
    best_c = max(by_c, key=lambda c: by_c[c][0]["accuracy"])
    val, clf = by_c[best_c]
    out["tfidf_logreg"] = {
        "C": best_c, "features": len(vec.vocabulary_),
        "val_accuracy_by_C": {str(c): v[0]["accuracy"] for c, v in by_c.items()},
        "val": val, "test": _scores(y["test"], clf.predict(x["test"])),
        "seconds": round(time.perf_counter() - start, 1)}
    return out


def baseline_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The two baselines of ``baselines(...)`` as records (keys: ``BASELINE_COLUMNS``)."""
    m, t = result["majority"], result["tfidf_logreg"]
    return [{"baseline": name, **extra, "val_accuracy": r["val"]["accuracy"],
             "val_macro_f1": r["val"]["macro_f1"], "test_accuracy": r["test"]["accuracy"],
             "test_macro_f1": r["test"]["macro_f1"]}
            for name, extra, r in (("majority", {"label": m["label"]}, m),
                                   ("tfidf_logreg", {"C": t["C"]}, t))]


def baseline_markdown(result: dict[str, Any]) -> str:
    """The Markdown table of ``baseline.md`` for ``baselines(...)``'s result."""
    m, t = result["majority"], result["tfidf_logreg"]
    names = [f"majority class ({m['label']})",
             f"TF-IDF 1-2 grams + logistic regression (C={t['C']:g}, chosen on val)"]
    titles = {"baseline": "baseline", "val_accuracy": "val acc",
              "val_macro_f1": "val macro-F1", "test_accuracy": "test acc",
              "test_macro_f1": "test macro-F1"}
    rows = [{**r, "baseline": n} for r, n in zip(baseline_records(result), names)]
    return render(rows, list(titles), "markdown", headers=titles,
                  cells=dict.fromkeys(list(titles)[1:], "{:.4f}".format)) + "\n"

"""`emotune final-train`: retrain one configuration, evaluate it on the test split once.

Training uses train with early stopping on val, exactly as in a search; the test split is read
here and nowhere else. Outputs: the model bundle (bundle.py) and a report folder with the test
metrics, per-class table, confusion matrix (counts and row percent) and per-epoch curves,
including the gradient norm and learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotune.data import Prepared
from emotune.report import _plt, _save, md_table
from emotune.results import atomic_write_json, atomic_write_text


def gradient_probe(prepared: Prepared, rows: int = 512) -> Any:
    """A ``GradientProbe`` on the first ``rows`` training rows (padded to their longest)."""
    from emotune.callbacks import GradientProbe

    n = min(rows, len(prepared.train.labels))
    enc = prepared.train
    return GradientProbe(enc.ids[:n, : max(int(enc.lengths[:n].max()), 1)], enc.labels[:n])


@dataclass(frozen=True)
class SplitMetrics:
    accuracy: float
    macro_f1: float
    weighted_f1: float
    cross_entropy: float
    per_class: Any  # DataFrame: label, precision, recall, f1, support
    confusion: np.ndarray  # counts, rows = true label

    def as_dict(self) -> dict[str, Any]:
        return {"test_accuracy": self.accuracy, "test_macro_f1": self.macro_f1,
                "test_weighted_f1": self.weighted_f1, "test_cross_entropy": self.cross_entropy,
                "per_class": self.per_class.to_dict("records"),
                "confusion": self.confusion.tolist()}


def evaluate_split(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> SplitMetrics:
    """Pure: the test-set numbers from true labels and predicted probabilities."""
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


def write_final_report(out: Path, name: str, m: SplitMetrics, labels: list[str], history: Any,
                       val: dict[str, Any]) -> list[Path]:
    """The report of one evaluated model; ``history`` (per-epoch curves) may be None, as for an
    ensemble, which has no epochs of its own."""
    import pandas as pd

    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "test_metrics.json", {**m.as_dict(), **val})
    atomic_write_text(out / "per_class.csv", m.per_class.to_csv(index=False))
    counts = pd.DataFrame(m.confusion, index=labels, columns=labels)
    pct = pd.DataFrame(row_percent(m.confusion).round(1), index=labels, columns=labels)
    atomic_write_text(out / "confusion_counts.csv", counts.to_csv(index_label="true\\pred"))
    atomic_write_text(out / "confusion_percent.csv", pct.to_csv(index_label="true\\pred"))
    if history is not None:
        atomic_write_text(out / "history.csv", history.to_csv(index=False))
    epochs = (f", best epoch {val['best_epoch']}/{val['epochs_run']}" if "best_epoch" in val
              else "")
    pc = [[r.label, f"{r.precision:.4f}", f"{r.recall:.4f}", f"{r.f1:.4f}", int(r.support)]
          for r in m.per_class.itertuples()]
    md = [f"# Final evaluation: {name}\n\n",
          f"Test accuracy **{m.accuracy:.4f}**, macro-F1 **{m.macro_f1:.4f}**, weighted-F1 "
          f"{m.weighted_f1:.4f}, cross-entropy {m.cross_entropy:.4f} "
          f"({int(m.confusion.sum())} test texts, evaluated once). Selected on validation: "
          f"val accuracy {val['val_accuracy']:.4f}, val macro-F1 {val['val_macro_f1']:.4f}"
          f"{epochs}.\n\n",
          "## Per class\n\n", md_table(pc, ["label", "precision", "recall", "F1", "support"]),
          "\n## Confusion matrix (rows: true label; counts)\n\n",
          md_table([[lab, *map(int, row)] for lab, row in zip(labels, m.confusion)],
                   ["true \\ pred", *labels]),
          "\n## Confusion matrix (row percent)\n\n",
          md_table([[lab, *(f"{v:.1f}" for v in row)] for lab, row in
                    zip(labels, row_percent(m.confusion))], ["true \\ pred", *labels]),
          "\n![confusion](confusion.png)\n",
          "" if history is None else "![curves](curves.png)\n"]
    atomic_write_text(out / "final.md", "".join(md))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, data, title, fmt_ in ((axes[0], m.confusion, "counts", "d"),
                                  (axes[1], row_percent(m.confusion), "row percent", ".1f")):
        ax.imshow(data, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Confusion matrix ({title})")
        hi = data.max()
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, format(data[i, j], fmt_), ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > hi / 2 else "black")
    fig.tight_layout()
    paths = [_save(fig, out / "confusion.png")]
    files = ["final.md", "test_metrics.json", "per_class.csv", "confusion_counts.csv",
             "confusion_percent.csv"]
    if history is None:
        return paths + [out / f for f in files]

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    e = history["epoch"]
    axes[0].plot(e, history["loss"], label="train")
    axes[0].plot(e, history["val_loss"], label="val")
    axes[0].set_title("loss")
    axes[1].plot(e, history["accuracy"], label="train")
    axes[1].plot(e, history["val_accuracy"], label="val")
    axes[1].set_title("accuracy")
    axes[2].plot(e, history["grad_norm"], color="purple")
    axes[2].set_title("gradient norm (512 training rows)")
    axes[3].plot(e, history["learning_rate"], color="gray")
    axes[3].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    paths.append(_save(fig, out / "curves.png"))
    return paths + [out / f for f in (*files, "history.csv")]


def final_train(config: Any, prepared: Prepared, embedding: Any, *, name: str,
                bundle_dir: Path, report_dir: Path) -> tuple[SplitMetrics, dict[str, Any]]:
    """Train on train (early stopping on val), evaluate on test once, write the bundle to
    ``bundle_dir`` and the report to ``report_dir``."""
    from emotune.bundle import save_bundle
    from emotune.train import fit, package_versions, predict_probs

    probe = gradient_probe(prepared)
    result = fit(config, prepared, embedding, callbacks=(probe,))
    history = result.history.copy()
    extra = probe.rows[: len(history)]
    history["grad_norm"] = [r["grad_norm"] for r in extra]
    history["learning_rate"] = [r["learning_rate"] for r in extra]
    probs = predict_probs(result.model, prepared.test)
    m = evaluate_split(prepared.test.labels, probs, list(prepared.label_names))
    val = {k: result.metrics[k] for k in ("val_accuracy", "val_loss", "val_macro_f1",
                                          "best_epoch", "epochs_run", "seconds", "params")}
    versions = package_versions()
    metrics = {**val, **m.as_dict(), "seed": config.train.seed,
               "data_checksum": prepared.checksum, "embedding": embedding.summary()}
    save_bundle(bundle_dir, result.model, config, prepared, metrics, versions)
    write_final_report(report_dir, name, m, list(prepared.label_names), history, val)
    return m, val


def seeds_table(runs: list[tuple[int, SplitMetrics, dict[str, Any]]]) -> Any:
    """Pure: one row per seed (val and test numbers, per-class test F1) as a DataFrame."""
    import pandas as pd

    rows = []
    for seed, m, val in runs:
        row = {"seed": seed, "val_accuracy": val["val_accuracy"],
               "val_macro_f1": val["val_macro_f1"], "best_epoch": val["best_epoch"],
               "test_accuracy": m.accuracy, "test_macro_f1": m.macro_f1,
               "test_weighted_f1": m.weighted_f1}
        row.update({f"f1_{r.label}": r.f1 for r in m.per_class.itertuples()})
        rows.append(row)
    return pd.DataFrame(rows)


def write_seeds_report(out: Path, name: str, table: Any) -> list[Path]:
    """final.md, seeds.csv and seeds.json for one configuration trained with several seeds:
    each seed's numbers and their mean and sample standard deviation."""
    out.mkdir(parents=True, exist_ok=True)
    cols = [c for c in table.columns if c != "seed"]
    mean, std = table[cols].mean(), table[cols].std(ddof=1)
    summary = {c: {"mean": float(mean[c]), "std": float(std[c])} for c in cols}
    atomic_write_text(out / "seeds.csv", table.to_csv(index=False))
    atomic_write_json(out / "seeds.json", {"name": name, "seeds": table["seed"].tolist(),
                                           "summary": summary,
                                           "runs": table.to_dict("records")})

    def fmt(c: str, v: float) -> str:
        return str(int(v)) if c == "best_epoch" else f"{v:.4f}"

    rows = [[int(r["seed"]), *(fmt(c, r[c]) for c in cols)] for _, r in table.iterrows()]
    rows.append(["mean ± std", *(f"{mean[c]:.4f} ± {std[c]:.4f}" for c in cols)])
    md = [f"# Final evaluation: {name}, {len(table)} seeds\n\n",
          f"Test accuracy **{mean['test_accuracy']:.4f} ± {std['test_accuracy']:.4f}**, "
          f"macro-F1 **{mean['test_macro_f1']:.4f} ± {std['test_macro_f1']:.4f}** (mean ± "
          f"sample std over seeds {', '.join(map(str, table['seed']))}). The configuration "
          f"was chosen on validation; each seed's model was evaluated once on the test split. "
          f"Each seed's full report: `seed-<seed>/final.md`.\n\n",
          md_table(rows, ["seed", *cols])]
    atomic_write_text(out / "final.md", "".join(md))
    return [out / f for f in ("final.md", "seeds.csv", "seeds.json")]

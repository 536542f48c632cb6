"""Draw and write what final.py computed: the report of a final model and of its seeds.

``write_final_report`` turns one ``FinalEvaluation`` into ``final.md``, ``test_metrics.json``,
``per_class.csv``, the confusion matrix (CSV, counts and row percent, and ``confusion.png``) and,
for a trained model, ``history.csv`` and ``curves.png``. ``write_seeds_report`` writes the
mean ± sample std over seeds (``final.md``, ``seeds.csv``, ``seeds.json``). Nothing here trains
or evaluates; the Markdown is built by pure functions, then written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotune.provenance import provenance
from emotune.report import _plt, _save
from emotune.results import atomic_write_json, atomic_write_text
from emotune.tables import render

if TYPE_CHECKING:
    from emotune.final import FinalEvaluation, SplitMetrics

FILES = ("final.md", "test_metrics.json", "per_class.csv", "confusion_counts.csv",
         "confusion_percent.csv")


def final_markdown(e: FinalEvaluation) -> str:
    """The text of ``final.md`` for one evaluated model."""
    if e.test.multi is not None:
        return multi_label_markdown(e)
    m, val, labels = e.test, e.val, list(e.labels)
    epochs = (f", best epoch {val['best_epoch']}/{val['epochs_run']}" if "best_epoch" in val
              else "")
    four = "{:.4f}".format
    per_class = render(m.per_class, ["label", "precision", "recall", "f1", "support"],
                       "markdown", headers={"f1": "F1"},
                       cells={"precision": four, "recall": four, "f1": four,
                              "support": lambda v: str(int(v))})
    corner = "true \\ pred"
    counts = render([{corner: lab, **dict(zip(labels, map(int, row)))}
                     for lab, row in zip(labels, m.confusion)], [corner, *labels], "markdown")
    percent = render([{corner: lab, **{k: f"{v:.1f}" for k, v in zip(labels, row)}}
                      for lab, row in zip(labels, m.confusion_percent)], [corner, *labels],
                     "markdown")
    md = [f"# Final evaluation: {e.title}\n\n",
          f"Test accuracy **{m.accuracy:.4f}**, macro-F1 **{m.macro_f1:.4f}**, weighted-F1 "
          f"{m.weighted_f1:.4f}, cross-entropy {m.cross_entropy:.4f} "
          f"({int(m.confusion.sum())} test texts, evaluated once). Selected on validation: "
          f"val accuracy {val['val_accuracy']:.4f}, val macro-F1 {val['val_macro_f1']:.4f}"
          f"{epochs}.\n\n",
          "## Per class\n\n", per_class,
          "\n\n## Confusion matrix (rows: true label; counts)\n\n", counts,
          "\n\n## Confusion matrix (row percent)\n\n", percent,
          "\n\n![confusion](confusion.png)\n"]
    if e.history is not None:
        md += ["\n## Per epoch (validation)\n\n", epoch_table(e.history),
               "\n\n![curves](curves.png)\n"]
    return "".join(md)


def multi_label_markdown(e: FinalEvaluation) -> str:
    """``final.md`` of a multi-label model: the headline numbers, the threshold rules, the
    per-label table (weakest first), the labels most often predicted for each true label, and
    the per-epoch table."""
    m, val, x = e.test, e.val, e.test.multi
    four = "{:.4f}".format
    epochs = (f", best epoch {val['best_epoch']}/{val['epochs_run']}" if "best_epoch" in val
              else "")
    n = len(e.labels)
    table = m.per_class.sort_values("f1", kind="stable")
    per_label = render(table, ["label", "threshold", "precision", "recall", "f1", "support",
                               "average_precision"], "markdown",
                       headers={"f1": "F1", "average_precision": "AP"},
                       cells={"threshold": "{:.2f}".format, "precision": four, "recall": four,
                              "f1": four, "average_precision": four,
                              "support": lambda v: str(int(v))})
    rules = render([{**v, "rule": r if math.isnan(v["threshold"])
                     else f"{r} ({v['threshold']:g})", "used": "yes" if r == x.rule else ""}
                    for r, v in x.by_rule.items()], ["rule", "macro_f1", "micro_f1", "used"],
                   "markdown", headers={"macro_f1": "test macro-F1", "micro_f1": "test micro-F1"},
                   cells={"macro_f1": four, "micro_f1": four})
    labels = list(e.labels)
    confused = []
    for i, lab in enumerate(labels):
        row = [(int(c), labels[j]) for j, c in enumerate(m.confusion[i]) if j != i and c > 0]
        top = ", ".join(f"{name} {c}" for c, name in sorted(row, key=lambda t: -t[0])[:3])
        confused.append({"true label": lab, "texts": int(m.per_class["support"].iloc[i]),
                         "hits": int(m.confusion[i, i]), "also or instead predicted": top})
    confusion = render(confused, ["true label", "texts", "hits", "also or instead predicted"],
                       "markdown")
    md = [f"# Final evaluation: {e.title} (multi-label, {n} labels)\n\n",
          f"Test macro-F1 **{m.macro_f1:.4f}**, micro-F1 **{x.micro_f1:.4f}**, weighted-F1 "
          f"{m.weighted_f1:.4f}, subset accuracy {m.accuracy:.4f}, Hamming loss "
          f"{x.hamming_loss:.4f}, mean average precision {x.macro_ap:.4f}, binary "
          f"cross-entropy {m.cross_entropy:.4f} (evaluated once), at the {x.rule} thresholds "
          f"tuned on validation. Selected on validation: val macro-F1 {val['val_macro_f1']:.4f} "
          f"at threshold {val.get('threshold', 0.5):g} during training{epochs}; "
          f"{val.get('val_macro_f1_tuned', float('nan')):.4f} at the tuned thresholds "
          f"(optimistic: tuned there).\n\n",
          "## Threshold rules\n\nEach rule's thresholds were chosen on validation before the "
          "test split was read; the bundle uses the one marked (train.threshold_rule, chosen "
          "before testing). The others are shown for reference, not to pick from.\n\n", rules,
          "\n\n## Per label (weakest first)\n\nAP: average precision, threshold-free.\n\n",
          per_label,
          "\n\n## Label-wise confusion\n\nFor the texts carrying each label: how many got it "
          "(hits) and which other labels were predicted most for them (alongside or "
          "instead).\n\n", confusion,
          "\n\n![label-wise confusion](confusion.png)\n\n"
          "![PR curves of the weakest labels](pr_curves.png)\n"]
    if e.history is not None:
        md += ["\n## Per epoch (validation)\n\n", epoch_table(e.history),
               "\n\n![curves](curves.png)\n"]
    return "".join(md)


EPOCH_COLUMNS = {"epoch": "epoch", "loss": "train loss", "accuracy": "train acc",
                 "val_loss": "val loss", "val_accuracy": "val acc",
                 "val_macro_f1": "val macro-F1", "val_micro_f1": "val micro-F1",
                 "val_weighted_f1": "val weighted-F1", "val_hamming": "val Hamming",
                 "val_cross_entropy": "val CE", "val_kl": "val KL",
                 "grad_norm": "grad norm", "learning_rate": "lr", "seconds": "s"}


def epoch_table(history: Any) -> str:
    """The per-epoch history as a Markdown table (the columns it has; older histories lack
    F1 and KL). KL equals the cross-entropy unless label smoothing is on."""
    cols = [c for c in EPOCH_COLUMNS if c in history.columns]
    four = "{:.4f}".format
    cells = {c: four for c in cols if c not in ("epoch", "learning_rate", "seconds")}
    cells.update({"epoch": lambda v: str(int(v)), "learning_rate": "{:.3g}".format,
                  "seconds": "{:.1f}".format})
    return render(history[cols].to_dict("records"), cols, "markdown",
                  headers={c: EPOCH_COLUMNS[c] for c in cols}, cells=cells)


def write_final_report(out: Path, e: FinalEvaluation) -> list[Path]:
    """Write the report of one evaluated model into ``out`` (created if missing).

    Args:
        out: The report folder, e.g. ``reports/best-gru/final`` or its ``seed-<N>/``.
        e: The evaluation; without a ``history`` (an ensemble) no curves are written.

    Returns:
        The files written: ``confusion.png``, ``curves.png`` (with a history), ``final.md``,
        ``test_metrics.json``, ``per_class.csv``, ``confusion_counts.csv``,
        ``confusion_percent.csv`` and ``history.csv`` (with a history).
    """
    import pandas as pd

    m, labels = e.test, list(e.labels)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "test_metrics.json", {**m.as_dict(), **e.val,
                                                  "provenance": provenance()})
    atomic_write_text(out / "per_class.csv", m.per_class.to_csv(index=False))
    counts = pd.DataFrame(m.confusion, index=labels, columns=labels)
    pct = pd.DataFrame(m.confusion_percent.round(1), index=labels, columns=labels)
    atomic_write_text(out / "confusion_counts.csv", counts.to_csv(index_label="true\\pred"))
    atomic_write_text(out / "confusion_percent.csv", pct.to_csv(index_label="true\\pred"))
    if e.history is not None:
        atomic_write_text(out / "history.csv", e.history.to_csv(index=False))
    atomic_write_text(out / "final.md", final_markdown(e))
    paths = [confusion_figure(m, labels, out / "confusion.png")]
    if m.multi is not None:
        paths.append(pr_curves_figure(m, out / "pr_curves.png"))
    if e.history is None:
        return paths + [out / f for f in FILES]
    paths.append(training_curves_figure(e.history, out / "curves.png"))
    return paths + [out / f for f in (*FILES, "history.csv")]


def pr_curves_figure(m: SplitMetrics, path: Path) -> Path:
    """Precision against recall for the weakest labels of a multi-label split, each with the
    point its threshold gives."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.8))
    rows = m.per_class.set_index("label")
    for name, (rec, prec) in m.multi.pr_curves.items():
        line, = ax.plot(rec, prec, label=f"{name} (AP {rows.loc[name, 'average_precision']:.2f})")
        ax.plot(rows.loc[name, "recall"], rows.loc[name, "precision"], "o",
                color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("PR curves of the weakest labels (dot: tuned threshold)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def confusion_figure(m: SplitMetrics, labels: list[str], path: Path) -> Path:
    """The confusion matrix side by side as counts and as row percent."""
    plt = _plt()
    big = m.multi is not None and len(labels) > 10  # GoEmotions: 28 labels, no cell numbers
    fig, axes = plt.subplots(1, 2, figsize=(22, 10) if big else (12, 4.8))
    for ax, data, title, fmt_ in ((axes[0], m.confusion, "counts", "d"),
                                  (axes[1], m.confusion_percent, "row percent", ".1f")):
        ax.imshow(data, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{'Label-wise confusion' if m.multi is not None else 'Confusion matrix'}"
                     f" ({title if m.multi is None or title == 'counts' else 'percent of texts'})")
        hi = data.max()
        for i in range(len(labels) if not big else 0):
            for j in range(len(labels)):
                ax.text(j, i, format(data[i, j], fmt_), ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > hi / 2 else "black")
    fig.tight_layout()
    return _save(fig, path)


def training_curves_figure(history: Any, path: Path) -> Path:
    """Loss, accuracy, val macro-/weighted-F1, val KL divergence (with the cross-entropy
    where smoothing makes them differ), gradient norm and learning rate per epoch; the
    panels the history has columns for."""
    plt = _plt()
    scores = "val_macro_f1" in history.columns
    fig, axes = plt.subplots(1, 6 if scores else 4, figsize=(24 if scores else 16, 3.4))
    e = history["epoch"]
    axes[0].plot(e, history["loss"], label="train")
    axes[0].plot(e, history["val_loss"], label="val")
    axes[0].set_title("loss")
    axes[1].plot(e, history["accuracy"], label="train")
    axes[1].plot(e, history["val_accuracy"], label="val")
    axes[1].set_title("accuracy" if "val_kl" in history.columns or not scores
                      else "accuracy (train: per label; val: subset)")
    if scores:
        axes[2].plot(e, history["val_macro_f1"], label="macro")
        if "val_micro_f1" in history.columns:
            axes[2].plot(e, history["val_micro_f1"], label="micro")
        axes[2].plot(e, history["val_weighted_f1"], label="weighted")
        axes[2].set_title("val F1")
        axes[2].legend()
        if "val_kl" in history.columns:
            axes[3].plot(e, history["val_kl"], label="KL", color="teal")
            if not np.allclose(history["val_kl"], history["val_cross_entropy"]):
                axes[3].plot(e, history["val_cross_entropy"], label="cross-entropy",
                             color="gray", linestyle="--")
                axes[3].legend()
            axes[3].set_title("val KL divergence")
        else:  # multi-label
            axes[3].plot(e, history["val_hamming"], color="teal")
            axes[3].set_title("val Hamming loss")
    axes[-2].plot(e, history["grad_norm"], color="purple")
    axes[-2].set_title("gradient norm (512 training rows)")
    axes[-1].plot(e, history["learning_rate"], color="gray")
    axes[-1].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- several seeds


def seeds_summary(table: Any) -> dict[str, dict[str, float | None]]:
    """Each column's mean and sample std over seeds (std None for one seed)."""
    cols = [c for c in table.columns if c != "seed"]
    mean, std = table[cols].mean(), table[cols].std(ddof=1)
    one = len(table) == 1
    return {c: {"mean": float(mean[c]), "std": None if one else float(std[c])} for c in cols}


def seeds_markdown(name: str, table: Any) -> str:
    """The text of the seeds report's ``final.md``."""
    cols = [c for c in table.columns if c != "seed"]
    summary = seeds_summary(table)

    def fmt(c: str, v: float) -> str:
        return str(int(v)) if c == "best_epoch" else f"{v:.4f}"

    columns = ["seed", *cols]
    rows = [{"seed": int(r["seed"]), **{c: fmt(c, r[c]) for c in cols}}
            for _, r in table.iterrows()]
    acc, f1 = summary["test_accuracy"], summary["test_macro_f1"]
    if len(table) == 1:
        seed = int(table["seed"].iloc[0])
        return "".join([
            f"# Final evaluation: {name}, 1 seed\n\n",
            f"Test accuracy **{acc['mean']:.4f}**, macro-F1 **{f1['mean']:.4f}** (seed {seed}; "
            f"one seed, so no spread over seeds). The configuration was chosen on validation; "
            f"the model was evaluated once on the test split. Its full report: "
            f"`seed-{seed}/final.md`.\n\n",
            render(rows, columns, "markdown"), "\n"])
    rows.append({"seed": "mean ± std",
                 **{c: f"{summary[c]['mean']:.4f} ± {summary[c]['std']:.4f}" for c in cols}})
    return "".join([
        f"# Final evaluation: {name}, {len(table)} seeds\n\n",
        f"Test accuracy **{acc['mean']:.4f} ± {acc['std']:.4f}**, "
        f"macro-F1 **{f1['mean']:.4f} ± {f1['std']:.4f}** (mean ± "
        f"sample std over seeds {', '.join(map(str, table['seed']))}). The configuration "
        f"was chosen on validation; each seed's model was evaluated once on the test split. "
        f"Each seed's full report: `seed-<seed>/final.md`.\n\n",
        render(rows, columns, "markdown"), "\n"])


def write_seeds_report(out: Path, name: str, table: Any) -> list[Path]:
    """final.md, seeds.csv and seeds.json for one configuration trained with seeds.

    Args:
        out: The report folder (``reports/<name>/final``), beside the ``seed-<N>/`` reports.
        name: The bundle and report name, recorded as ``seeds.json``'s ``name``.
        table: ``final.seeds_table(...)``: one row per seed.

    Returns:
        The three files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "seeds.csv", table.to_csv(index=False))
    atomic_write_json(out / "seeds.json", {"name": name, "provenance": provenance(),
                                           "seeds": table["seed"].tolist(),
                                           "summary": seeds_summary(table),
                                           "runs": table.to_dict("records")})
    atomic_write_text(out / "final.md", seeds_markdown(name, table))
    return [out / f for f in ("final.md", "seeds.csv", "seeds.json")]

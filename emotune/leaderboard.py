"""`emotune leaderboard`: every final model in a reports folder, and the baselines, in one table.

Reads what `final-train` wrote (``<reports>/<name>/final/test_metrics.json``, or with
``--seeds`` ``seeds.json`` and ``seed-<N>/test_metrics.json``) and
``<reports>/baseline/baseline.json``. Rows are ordered by validation accuracy, the number
models were chosen by; the test columns are there to read, not to choose. Multi-label models
(GoEmotions) are a table of their own, by val macro-F1, with the multi-label baselines
(``<reports>/baseline-*/baseline.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emotune.errors import EmotuneError
from emotune.results import atomic_write_text
from emotune.tables import render


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EmotuneError(f"{path} is unreadable ({e}); rerun the final-train that wrote "
                           f"it, or remove its folder") from None


def _commit(record: dict[str, Any]) -> str:
    """The short commit that wrote a result (+dirty for uncommitted changes); "" before
    provenance was recorded."""
    who = record.get("provenance") or {}
    commit = str(who.get("commit", ""))
    short = commit[:7] if commit and commit != "unknown" else commit
    return short + ("+dirty" if who.get("dirty") else "")


def _single(name: str, m: dict[str, Any]) -> dict[str, Any]:
    members = m.get("members")  # an ensemble's bundles
    return {"name": name, "seeds": f"ensemble of {len(members)}" if members else 1,
            "commit": _commit(m), "params": m.get("params"),
            "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
            "test_accuracy_std": None, "test_macro_f1": m["test_macro_f1"],
            "test_macro_f1_std": None,
            **{f"f1_{c['label']}": c["f1"] for c in m["per_class"]}}


def _multi(name: str, final: Path) -> dict[str, Any] | None:
    """A multi-label model's row (the mean over seeds where it has several); None for a
    single-label one."""
    single = final / "test_metrics.json"
    seeds = final / "seeds.json"
    if seeds.is_file() and not single.is_file():
        s = _read(seeds)
        first = _read(final / f"seed-{s['seeds'][0]}" / "test_metrics.json")
        if not first.get("multi_label"):
            return None
        summary = s["summary"]
        pick = {k: (summary[k]["mean"], summary[k]["std"]) for k in
                ("val_macro_f1", "test_macro_f1", "test_micro_f1", "test_accuracy")
                if k in summary}
        return {"name": name, "seeds": len(s["seeds"]), "commit": _commit(s),
                "params": first.get("params"), **{k: v for k, (v, _) in pick.items()},
                "test_macro_f1_std": pick.get("test_macro_f1", (0, None))[1]}
    if not single.is_file():
        return None
    m = _read(single)
    if not m.get("multi_label"):
        return None
    return {"name": name, "seeds": 1, "commit": _commit(m), "params": m.get("params"),
            "val_macro_f1": m["val_macro_f1"], "test_macro_f1": m["test_macro_f1"],
            "test_macro_f1_std": None, "test_micro_f1": m["test_micro_f1"],
            "test_accuracy": m["test_accuracy"]}


def multi_label_table(reports_dir: Path) -> str | None:
    """The Markdown table of the multi-label final models and baselines (None if there is no
    such model), best val macro-F1 first."""
    rows = [r for d in sorted(p for p in Path(reports_dir).iterdir() if p.is_dir())
            if (r := _multi(d.name, d / "final")) is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: -r["val_macro_f1"])
    shown = [{"name": r["name"], "seeds": str(r["seeds"]), "commit": r["commit"],
              "params": f"{r['params']:,}" if r.get("params") else "",
              "val_macro_f1": f"{r['val_macro_f1']:.4f}",
              "test_macro_f1": _pm(r["test_macro_f1"], r["test_macro_f1_std"]),
              "test_micro_f1": f"{r['test_micro_f1']:.4f}" if "test_micro_f1" in r else "",
              "test_accuracy": f"{r['test_accuracy']:.4f}"} for r in rows]
    for base in sorted(Path(reports_dir).glob("baseline*/baseline.json")):
        b = _read(base)
        if b.get("multi_label") and "test" in b["tfidf_logreg"]:
            t = b["tfidf_logreg"]
            shown.append({"name": f"baseline: TF-IDF + one-vs-rest LR (C={t['C']:g}, "
                                  f"{base.parent.name})",
                          "val_macro_f1": f"{t['val']['macro_f1']:.4f}",
                          "test_macro_f1": f"{t['test']['macro_f1']:.4f}",
                          "test_micro_f1": f"{t['test']['micro_f1']:.4f}",
                          "test_accuracy": f"{t['test']['accuracy']:.4f}"})
    titles = {"name": "model", "seeds": "seeds", "commit": "commit", "params": "parameters",
              "val_macro_f1": "val macro-F1 (at 0.5)", "test_macro_f1": "test macro-F1",
              "test_micro_f1": "test micro-F1", "test_accuracy": "test subset acc"}
    return render(shown, list(titles), "markdown", headers=titles) + "\n"


def _seeds(name: str, final: Path) -> dict[str, Any]:
    s = _read(final / "seeds.json")
    summary = s["summary"]
    first = _read(final / f"seed-{s['seeds'][0]}" / "test_metrics.json")
    return {"name": name, "seeds": len(s["seeds"]), "commit": _commit(s),
            "params": first.get("params"),
            "val_accuracy": summary["val_accuracy"]["mean"],
            "test_accuracy": summary["test_accuracy"]["mean"],
            "test_accuracy_std": summary["test_accuracy"]["std"],
            "test_macro_f1": summary["test_macro_f1"]["mean"],
            "test_macro_f1_std": summary["test_macro_f1"]["std"],
            **{k: v["mean"] for k, v in summary.items() if k.startswith("f1_")}}


def collect(reports_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The final models in ``reports_dir`` and the baselines, as plain rows.

    A model is ``<name>/final/`` holding ``seeds.json`` (trained with ``--seeds``: mean and
    std over seeds) or ``test_metrics.json`` (one model, or an ensemble). Where a folder holds
    both, one was left by an earlier run: the newer file is read (by the time each records
    in its provenance; by file time for files from before that).

    Args:
        reports_dir: The folder final-train wrote to (``reports``).

    Returns:
        The rows, best validation accuracy first, and ``baseline/baseline.json`` (or None).

    Raises:
        EmotuneError: A file is unreadable.
    """
    rows = []
    for d in sorted(p for p in Path(reports_dir).iterdir() if p.is_dir()):
        final = d / "final"
        if _multi(d.name, final) is not None:
            continue  # multi_label_table's
        seeds, single = final / "seeds.json", final / "test_metrics.json"
        if seeds.is_file() and not (single.is_file() and _newer(_read(single), _read(seeds),
                                                                single, seeds)):
            rows.append(_seeds(d.name, final))
        elif single.is_file():
            rows.append(_single(d.name, _read(single)))
    rows.sort(key=lambda r: -r["val_accuracy"])
    base = Path(reports_dir) / "baseline" / "baseline.json"
    return rows, (_read(base) if base.is_file() else None)


def _newer(a: dict[str, Any], b: dict[str, Any], a_path: Path, b_path: Path) -> bool:
    """Whether result ``a`` was written after ``b``: by their provenance's time where both
    record one (a checkout or copy resets file times), else by file time."""
    wa, wb = ((x.get("provenance") or {}).get("written") for x in (a, b))
    if wa and wb:
        return wa > wb
    return a_path.stat().st_mtime_ns > b_path.stat().st_mtime_ns


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def leaderboard_records(rows: list[dict[str, Any]], baseline: dict[str, Any] | None
                        ) -> tuple[list[dict[str, Any]], list[dict[str, str]], dict[str, str]]:
    """``collect``'s rows and baselines as records and as the cells of leaderboard.md.

    Args:
        rows: The final models, as ``collect`` returns them.
        baseline: ``baseline.json``, or None.

    Returns:
        The records (raw numbers, for CSV and JSON), the same rows as rounded cells
        ("mean ± std") and the column titles of those cells, keyed by column.
    """
    classes = sorted({k for r in rows for k in r if k.startswith("f1_")})
    titles = {"name": "model", "seeds": "seeds", "commit": "commit", "params": "parameters",
              "val_accuracy": "val acc", "test_accuracy": "test acc",
              "test_macro_f1": "test macro-F1", **{c: f"F1 {c[3:]}" for c in classes}}
    shown = [{"name": r["name"], "seeds": str(r["seeds"]), "commit": r.get("commit", ""),
              "params": f"{r['params']:,}" if r["params"] else "",
              "val_accuracy": f"{r['val_accuracy']:.4f}",
              "test_accuracy": _pm(r["test_accuracy"], r["test_accuracy_std"]),
              "test_macro_f1": _pm(r["test_macro_f1"], r["test_macro_f1_std"]),
              **{c: f"{r[c]:.3f}" if c in r else "" for c in classes}} for r in rows]
    records = list(rows)
    if baseline:
        m, t = baseline["majority"], baseline["tfidf_logreg"]
        for name, b in ((f"baseline: TF-IDF + logistic regression (C={t['C']:g})", t),
                        (f"baseline: majority class ({m['label']})", m)):
            scores = {"val_accuracy": b["val"]["accuracy"],
                      "test_accuracy": b["test"]["accuracy"],
                      "test_macro_f1": b["test"]["macro_f1"]}
            records.append({"name": name, **scores})
            shown.append({"name": name, **{k: f"{v:.4f}" for k, v in scores.items()}})
    return records, shown, titles


def write_leaderboard(reports_dir: Path) -> tuple[Path, list[dict[str, Any]], str]:
    """Write ``<reports_dir>/leaderboard.md``: every final model and the baselines.

    Args:
        reports_dir: The folder final-train wrote to (``reports``).

    Returns:
        The file written, the leaderboard as records (``leaderboard_records``) and the
        Markdown table in the file.

    Raises:
        EmotuneError: There is no final model in ``reports_dir``, or a file is unreadable.
    """
    rows, baseline = collect(reports_dir)
    multi = multi_label_table(reports_dir)
    if not rows and multi is None:
        raise EmotuneError(f"no final models in {reports_dir}: run `emotune final-train` "
                           f"first (it writes <reports>/<name>/final/)")
    records, shown, titles = leaderboard_records(rows, baseline)
    table = render(shown, list(titles), "markdown", headers=titles) + "\n"
    if multi is not None:
        table += ("\n## Multi-label models, best val macro-F1 first\n\nTest numbers at the "
                  "thresholds each model tuned on validation.\n\n" + multi)
    out = Path(reports_dir) / "leaderboard.md"
    atomic_write_text(out, "# Final models, best validation accuracy first\n\n"
                           "Chosen on validation; each test number is from one evaluation "
                           "per seed (mean ± sample std over seeds). Written by "
                           "`emotune leaderboard`.\n\n" + table)
    return out, records, table

"""Draw what analysis.py computed: PNG figures, Markdown/CSV/JSON tables, a static index.html.

Every function takes analysis output and a folder; nothing here decides anything. Files are
written atomically, so a report folder never holds half a file.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from pathlib import Path
from typing import Any

from emotune.analysis import (
    LoadedStudy,
    Point,
    Recommendation,
    Sweep,
    compare,
    history,
    importance,
    parallel_coordinates,
)
from emotune.config import plain
from emotune.results import atomic_write_json, atomic_write_text, trial_history
from emotune.scores import objective, per_epoch
from emotune.space import PARAMS, same_setting
from emotune.tables import render

LABELS = {p.name: p.label for p in PARAMS.values()}  # a parameter's name in tables and figures


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    os.replace(tmp, path)
    return path


def fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def pm(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f} ±{std:.4f}" if n > 1 and not math.isnan(std) else f"{mean:.4f}"


def score_cell(p: Point) -> str:
    """A value's objective as shown: mean ± std over seeds; a pruned one as a bound (≥ for
    accuracy and F1, ≤ for a loss)."""
    if p.pruned:
        return f"{'≥' if objective(p.objective).maximize else '≤'}{p.score:.4f} (pruned)"
    return pm(p.score, p.score_std, p.n)


TITLES = {"val_accuracy": "Val Accuracy", "val_macro_f1": "Val Macro-F1",
          "val_micro_f1": "Val Micro-F1", "val_loss": "Val Loss"}


def _signed(x: float) -> str:
    return "" if math.isnan(x) else f"{x:+.4f}"


def _margin(s: Sweep) -> str:
    """Best minus default; seed by seed with its 95% interval where they share seeds."""
    if s.paired is None:
        return _signed(s.best_margin)
    mean, half, n = s.paired
    return f"{_signed(s.best_margin)} (paired over {n} seeds: {mean:+.4f} ±{half:.4f})"


def _noise(p: Point) -> str:
    return "unknown" if math.isnan(p.se) else f"{p.se:.4f}"


def _verdict(s: Sweep) -> str:
    return "noise unknown" if math.isnan(s.best.se) else s.choice.verdict


# ---------------------------------------------------------------- recommendations


def recommendation_columns(name: str = "val_accuracy") -> tuple[str, ...]:
    """The printed recommendation's column titles, for objective ``name``."""
    return ("Hyperparameter", "Choice", "Best Value", f"Best {TITLES[name]}", "Default's",
            "Margin", "Noise (1 SE)", "Verdict")


def value_columns(name: str = "val_accuracy") -> tuple[str, ...]:
    """The every-value table's column titles: the objective, then val loss (val accuracy
    where the loss is the objective)."""
    other = "val_accuracy" if name == "val_loss" else "val_loss"
    return ("Hyperparameter", "Value", TITLES[name], "Seeds", "95% Interval", TITLES[other],
            "Role")


RECOMMENDATION_COLUMNS = recommendation_columns()  # ranked by val accuracy
VALUE_COLUMNS = value_columns()


def recommendation_rows(rec: Recommendation) -> list[dict[str, str]]:
    """One record per searched parameter: its cells as shown, keyed by the column titles."""
    rows = []
    for s in rec.rows:
        d = s.default_point
        rows.append(dict(zip(recommendation_columns(rec.objective), (
            LABELS.get(s.param, s.param), fmt(rec.values[s.param]), fmt(s.best.value),
            f"{score_cell(s.best)} (n={s.best.n})", "" if d is None else score_cell(d),
            _margin(s), _noise(s.best), _verdict(s)))))
    return rows


def value_rows(rec: Recommendation) -> list[dict[str, str]]:
    """One record per value of each sweep: mean ± std, seeds, 95% interval, and its role."""
    rows = []
    for s in rec.rows:
        for p in s.points:
            lo, hi = p.interval
            role = [] if p.pruned else [
                r for r, ok in (("chosen", same_setting(p.value, s.choice.value)),
                                ("best", same_setting(p.value, s.best.value)),
                                ("default", same_setting(p.value, s.default)),
                                ("tie", any(same_setting(p.value, t) for t in s.choice.ties)))
                if ok]
            if "tie" in role and len(role) > 1:
                role.remove("tie")
            other = (pm(p.val_accuracy, p.val_accuracy_std, p.n) if rec.objective == "val_loss"
                     else pm(p.val_loss, p.val_loss_std, p.n))
            rows.append(dict(zip(value_columns(rec.objective), (
                LABELS.get(s.param, s.param), fmt(p.value), score_cell(p), str(p.n),
                "" if math.isnan(lo) else f"{lo:.4f}–{hi:.4f}", other, ", ".join(role)))))
    return rows


def recommendation_records(rec: Recommendation) -> list[dict[str, Any]]:
    """Machine-readable: one record per searched parameter (the choice, the best value, the
    default's numbers, the margin, the noise, the verdict), then one per other parameter of
    the recommended configuration (its value alone). recommendations.csv/.json and
    ``recommend --format json|csv`` are these."""
    out = []
    name = rec.objective
    for s in rec.rows:
        d = s.default_point
        paired = s.paired or (math.nan, math.nan, 0)
        out.append({
            "study": rec.study, "parameter": s.param, "searched": True,
            "recommended": plain(rec.values[s.param]), "best_value": plain(s.best.value),
            f"best_{name}": s.best.score,
            f"best_{name}_std": s.best.score_std, "best_seeds": s.best.n,
            "default": plain(s.default),
            f"default_{name}": math.nan if d is None else d.score,
            "margin": s.best_margin, "noise": s.best.se, "verdict": _verdict(s),
            "ties": [plain(t) for t in s.choice.ties],
            "paired_margin": paired[0], "paired_95": paired[1], "paired_seeds": paired[2]})
    searched = {s.param for s in rec.rows}
    out += [{"study": rec.study, "parameter": k, "searched": False, "recommended": v}
            for k, v in rec.values.items() if k not in searched]
    return out


def value_records(rec: Recommendation) -> list[dict[str, Any]]:
    """Machine-readable: every value of every sweep with its numbers and noise."""
    out = []
    for s in rec.rows:
        for p in s.points:
            lo, hi = p.interval
            scores = {} if p.objective == "val_accuracy" else {
                p.objective: p.score, f"{p.objective}_std": p.score_std}
            out.append({"parameter": s.param, "value": plain(p.value), **scores,
                        "val_accuracy": p.val_accuracy, "val_accuracy_std": p.val_accuracy_std,
                        "seeds": p.n, "ci95_low": lo, "ci95_high": hi, "noise": p.se,
                        "val_loss": p.val_loss, "pruned": p.pruned,
                        "by_seed": {str(k): v for k, v in p.by_seed}})
    return out


def baseline_record(rec: Recommendation) -> dict[str, Any] | None:
    """The best tuned configuration against the TF-IDF + LR baseline, for JSON; None when
    not computed."""
    b = rec.baseline
    if b is None:
        return None
    m = b.metric  # val_accuracy; multi-label: the F1 the study ranks by
    return {"method": "tfidf_logreg", "C": b.c, **({} if m == "val_accuracy" else {"metric": m}),
            m: b.val_accuracy, f"tuned_{m}": b.tuned_value, "tuned_trial": b.tuned.trial_id,
            "tuned_seeds": b.tuned.n, "margin": b.margin, "se": b.se, "verdict": b.verdict,
            "n_val": b.n_val}


def _expected(rec: Recommendation) -> str:
    seeds = f" over {rec.seeds} seeds" if rec.seeds > 1 else ""
    loss = "" if rec.objective == "val_loss" else f", val loss {rec.expected_loss:.4f}"
    return f"{rec.goal.label} {rec.expected:.4f} ±{rec.expected_se:.4f} (1 SE){seeds}{loss}"


def recommendation_text(rec: Recommendation) -> str:
    """The printed recommendation: one row per parameter, then the combined configuration."""
    lines = [render(recommendation_rows(rec), recommendation_columns(rec.objective), align="<",
                    sep="   "), ""]
    lines.append("Recommended: " + " ".join(f"{k}={fmt(v)}" for k, v in rec.values.items()))
    lines.append(f"Expected: {_expected(rec)} ({rec.basis})")
    b = rec.best_trial
    extra = (f"{rec.goal.label} {b[rec.objective]:.4f}, "
             if rec.objective not in ("val_accuracy", "val_loss") else "")
    lines.append(f"Best trained: trial {b['trial_id']} {extra}val accuracy "
                 f"{b['val_accuracy']:.4f}, val loss {b['val_loss']:.4f}")
    lines += [f"Note: {n}" for n in rec.notes]
    return "\n".join(lines)


def recommendation_markdown(rec: Recommendation) -> str:
    """The text of ``recommendations.md`` (also a section of ``summary.md``)."""
    md = [f"# Recommendations: {rec.study} ({rec.model})\n\n",
          f"Chosen by the one-standard-error rule on {rec.goal.label}: among the values "
          "within one standard error (Noise) of the best, the one nearest the default. Margin: "
          f"how much the best beats the default{'' if rec.goal.maximize else ' (lower loss)'}; "
          "\"detectable\" when it exceeds the noise.\n\n",
          render(recommendation_rows(rec), recommendation_columns(rec.objective), "markdown"),
          "\n\n**Recommended:** " + " ".join(f"`{k}={fmt(v)}`" for k, v in rec.values.items()),
          f"\n\nExpected {_expected(rec)} — {rec.basis}.\n"]
    md += [f"\n- {n}" for n in rec.notes]
    md += ["\n\n## Every value (mean ± sample std over seeds)\n\n",
           render(value_rows(rec), value_columns(rec.objective), "markdown"), "\n"]
    return "".join(md) + "\n"


def write_recommendation(rec: Recommendation, out: Path, md: str | None = None) -> list[Path]:
    """``recommendations.csv``, ``.md`` and ``.json`` in ``out``; ``md`` is
    ``recommendation_markdown(rec)`` where the caller has it already."""
    import pandas as pd

    from emotune.provenance import provenance

    out.mkdir(parents=True, exist_ok=True)
    rows = recommendation_records(rec)
    atomic_write_text(out / "recommendations.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out / "recommendations.md", recommendation_markdown(rec) if md is None
                      else md)
    atomic_write_json(out / "recommendations.json", {
        "study": rec.study, "model": rec.model, "recommended": rec.values,
        "objective": rec.objective,
        f"expected_{rec.objective}": rec.expected, "expected_se": rec.expected_se,
        "expected_seeds": rec.seeds, "expected_val_loss": rec.expected_loss,
        "basis": rec.basis, "n_val": rec.n_val, "best_trial": rec.best_trial,
        "parameters": rows, "values": value_records(rec), "baseline": baseline_record(rec),
        "notes": list(rec.notes), "provenance": provenance()})
    return [out / f"recommendations.{e}" for e in ("csv", "md", "json")]


# ---------------------------------------------------------------- figures


def _draw_sweep(ax: Any, s: Sweep) -> None:
    """Each value's mean with its noise (1 SE) as error bars; pruned values as hollow lower
    bounds; the one-SE band below the best; the chosen value starred."""
    goal = objective(s.best.objective)
    xs = [p.value for p in s.points]
    ys = [p.score for p in s.points]
    err = [0.0 if p.pruned else p.candidate().se for p in s.points]  # 0: unknown noise
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    pos = xs if numeric else list(range(len(xs)))
    se = s.best.candidate().se
    band = ((s.best.score - se, s.best.score) if goal.maximize
            else (s.best.score, s.best.score + se))
    ax.axhspan(*band, color="gold", alpha=0.25, label="within 1 SE of the best")
    done = [i for i, p in enumerate(s.points) if not p.pruned]
    ax.errorbar([pos[i] for i in done], [ys[i] for i in done], yerr=[err[i] for i in done],
                marker="o", capsize=3, linestyle="-" if numeric else "none", color="steelblue")
    cut = [i for i, p in enumerate(s.points) if p.pruned]
    if cut:
        ax.plot([pos[i] for i in cut], [ys[i] for i in cut], marker="^", linestyle="none",
                markerfacecolor="none", color="grey",
                label=f"pruned ({'lower' if goal.maximize else 'upper'} bound)")
    chosen = next(i for i, p in enumerate(s.points)
                  if not p.pruned and same_setting(p.value, s.choice.value))
    ax.plot([pos[chosen]], [ys[chosen]], marker="*", color="crimson", markersize=16,
            linestyle="none", label=f"chosen {fmt(s.choice.value)}")
    if numeric:
        if s.log_scale:
            ax.set_xscale("log")
    else:
        ax.set_xticks(pos, [fmt(x) for x in xs])
        ax.set_xlim(-0.5, len(xs) - 0.5)
    lo, hi = min(y - e for y, e in zip(ys, err)), max(y + e for y, e in zip(ys, err))
    if goal.maximize:  # accuracy and F1 live in [0, 1]
        ax.set_ylim(max(0.0, lo - 0.01), min(1.0, hi + 0.01))
    ax.set_title(LABELS.get(s.param, s.param))
    ax.set_xlabel(s.param)
    ax.set_ylabel(goal.label)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)


def sweep_figures(rows: list[Sweep], out: Path) -> list[Path]:
    plt = _plt()
    paths = []
    for s in rows:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        _draw_sweep(ax, s)
        paths.append(_save(fig, out / f"sweep_{s.param}.png"))
    if rows:
        cols = min(3, len(rows))
        nrows = math.ceil(len(rows) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.4 * nrows), squeeze=False)
        for ax, s in zip(axes.flat, rows):
            _draw_sweep(ax, s)
        for ax in list(axes.flat)[len(rows):]:
            ax.axis("off")
        fig.tight_layout()
        paths.append(_save(fig, out / "sweeps.png"))
        fig, ax = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.2))
        goal = objective(rows[0].best.objective)
        ordered = sorted(rows, key=lambda s: s.chosen.candidate().mean)
        ax.barh([f"{LABELS.get(s.param, s.param)} = {fmt(s.choice.value)}" for s in ordered],
                [s.chosen.score for s in ordered],
                xerr=[s.chosen.se for s in ordered], color="steelblue", capsize=3)
        lo = min(s.chosen.score - s.chosen.se for s in rows)
        hi = max(s.chosen.score + s.chosen.se for s in rows)
        ax.set_xlim(max(0.0, lo - 0.02), min(1.0, hi + 0.01) if goal.maximize else hi + 0.02)
        ax.set_xlabel(f"{goal.label} of the chosen value (±1 SE)")
        ax.set_title("Chosen value of each parameter")
        ax.grid(alpha=0.3, axis="x")
        paths.append(_save(fig, out / "chosen_per_param.png"))
    return paths


def joint_figures(study: LoadedStudy, out: Path) -> list[Path]:
    plt = _plt()
    paths = []
    h = history(study)
    goal = study.goal
    name = goal.name
    if not h.empty:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        x = range(1, len(h) + 1)
        full, cut = h[~h["pruned"]], h[h["pruned"]]
        ax.plot([x[i] for i in full.index], full[name], "o", alpha=0.6, label="trial")
        if len(cut):
            ax.plot([x[i] for i in cut.index], cut[name], "^", color="grey",
                    markerfacecolor="none",
                    label=f"pruned ({'lower' if goal.maximize else 'upper'} bound)")
        ax.step(range(1, len(h) + 1), h["best_so_far"], where="post", color="crimson",
                label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(goal.label)
        ax.set_title("Optimisation history")
        ax.legend()
        ax.grid(alpha=0.3)
        paths.append(_save(fig, out / "history.png"))
        pc = parallel_coordinates(study)
        fig, ax = plt.subplots(figsize=(7, 3.6))
        cmap = plt.get_cmap("viridis")
        lo, hi = pc[name].min(), pc[name].max()
        for _, r in pc.sort_values(name, ascending=goal.maximize).iterrows():
            t = 0.5 if hi == lo else (r[name] - lo) / (hi - lo)
            t = t if goal.maximize else 1 - t  # the brightest is the best
            ax.plot(list(study.params), [r[p] for p in study.params], color=cmap(t), alpha=0.7)
        ax.set_yticks([0, 1], ["first value", "last value"])
        ax.set_title(f"Parallel coordinates (colour: {goal.label} {lo:.3f}–{hi:.3f})")
        paths.append(_save(fig, out / "parallel.png"))
    imp = importance(study)
    if imp:
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(imp) + 1.2))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names], color="steelblue")
        ax.set_xlabel(f"share of {goal.label} variance explained (random forest)")
        ax.set_title("Hyperparameter importance")
        paths.append(_save(fig, out / "importance.png"))
    return paths


def curves_figure(study: LoadedStudy, out: Path, limit: int = 30) -> list[Path]:
    """Per-trial curves (first seed), small multiples: the objective on validation per epoch
    with its noise band (±1 SE: an accuracy's binomial error, or the trial's bootstrap error
    of macro-F1 or loss), and its training counterpart where there is one."""
    from emotune.noise import binomial_se

    plt = _plt()
    done = study.done.sort_values("trial_id").head(limit)
    if done.empty:
        return []
    goal = study.goal
    train = {"val_accuracy": "accuracy", "val_loss": "loss"}.get(goal.name)
    cols = min(5, len(done))
    nrows = math.ceil(len(done) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False,
                             sharey=True)
    for ax, (_, row) in zip(axes.flat, done.iterrows()):
        h = trial_history(study.path, row["trial_id"])
        if h.empty:
            continue
        h = h[h["seed"] == h["seed"].iloc[0]]
        column = per_epoch(goal.name)  # a loss: the plain cross-entropy per epoch
        if column not in h:  # a history from before per-epoch scores
            continue
        if train:
            ax.plot(h["epoch"], h[train], label="train")
        ax.plot(h["epoch"], h[column], label="val", color="tab:orange")
        values = h[column].to_numpy()
        if goal.name == "val_accuracy" and study.n_val:
            band = [binomial_se(v, study.n_val) for v in values]
        else:
            se = row.get(f"{goal.name}_se", math.nan)
            band = [se] * len(values)
        if not any(math.isnan(b) for b in band):
            ax.fill_between(h["epoch"], values - band, values + band, color="tab:orange",
                            alpha=0.2, label="±1 SE")
        label = " ".join(f"{p}={fmt(row[p])}" for p in study.params
                         if row[p] != study.defaults[p]) or "default"
        ax.set_title(f"{row['trial_id']}: {label}", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(done):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("epoch")
    fig.supylabel(goal.label.removeprefix("val "))
    fig.tight_layout()
    return [_save(fig, out / "curves.png")]


COMPARISON_COLUMNS = ("Study", "Model", "Strategy", "Trials", "Best val acc", "Val loss",
                      "Val macro-F1", "Configuration")


def comparison_markdown(table: Any) -> str:
    """The text of ``comparison.md`` from ``analysis.compare``'s table."""
    rows = [dict(zip(COMPARISON_COLUMNS, (
        r["study"], r["model"], r["strategy"], r["trials"],
        pm(r["val_accuracy"], r["val_accuracy_std"], 2 if r["val_accuracy_std"] else 1),
        f"{r['val_loss']:.4f}", f"{r['val_macro_f1']:.4f}",
        " ".join(f"{p}={fmt(r[p])}" for p in PARAMS)))) for _, r in table.iterrows()]
    return render(rows, COMPARISON_COLUMNS, "markdown") + "\n"


def comparison(table: Any, md: str, out: Path) -> list[Path]:
    """``comparison.csv``, ``comparison.md`` (the text ``md``) and ``comparison.png``."""
    plt = _plt()
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
    atomic_write_text(out / "comparison.md", md)
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(table) + 1.2))
    ax.barh(table["study"], table["val_accuracy"], xerr=table["val_accuracy_std"].fillna(0),
            color="steelblue", capsize=3)
    lo = table["val_accuracy"].min()
    ax.set_xlim(max(0.0, lo - 0.03), min(1.0, table["val_accuracy"].max() + 0.01))
    ax.set_xlabel("best val accuracy")
    ax.set_title("Model comparison")
    return [out / "comparison.csv", out / "comparison.md", _save(fig, out / "comparison.png")]


# ---------------------------------------------------------------- the whole report


def write_report(studies: list[LoadedStudy], recs: list[Recommendation], out: Path) -> list[Path]:
    """reports/<study>/: figures, summary.md, trials.csv, index.html (and a comparison).

    Each Markdown text is rendered once and used for its file, summary.md and index.html.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    sections: list[tuple[str, str, list[Path]]] = []  # (title, markdown, images)
    for study, rec in zip(studies, recs):
        sub = out if len(studies) == 1 else out / study.name
        sub.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sub / "trials.csv", study.trials.to_csv(index=False))
        md = recommendation_markdown(rec)
        paths += write_recommendation(rec, sub, md)
        images = sweep_figures(list(rec.rows), sub)
        if not study.sweep:
            images += joint_figures(study, sub)
        images += curves_figure(study, sub)
        paths += images + [sub / "trials.csv"]
        sections.append((f"{study.name} — {study.model}, "
                         f"{'one-at-a-time sweeps' if study.sweep else study.strategy}",
                         md, images))
    table = compare(studies) if len(studies) > 1 else None
    if table is not None and not table.empty:
        md = comparison_markdown(table)
        images = comparison(table, md, out)
        paths += images
        sections.insert(0, ("Comparison", md, [p for p in images if p.suffix == ".png"]))
    summary = ["# emotune report\n"]
    for title, md, images in sections:
        summary.append(f"\n## {title}\n\n{md}\n")
        summary += [f"![{p.stem}]({p.relative_to(out).as_posix()})\n" for p in images]
    atomic_write_text(out / "summary.md", "".join(summary))
    atomic_write_text(out / "index.html", _html(sections, out))
    return paths + [out / "summary.md", out / "index.html"]


def _html(sections: list[tuple[str, str, list[Path]]], out: Path) -> str:
    """A self-contained page: images inline as data URIs, tables from the Markdown."""
    body = []
    for title, md, images in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_md_to_html(md))
        for p in images:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(p.stem)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f'{html.escape(p.stem)}</figcaption></figure>')
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
             "img{max-width:100%}figure{margin:1em 0}code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>emotune report</title>"
            f"<style>{style}</style></head><body><h1>emotune report</h1>"
            + "\n".join(body) + "</body></html>\n")


def _md_to_html(md: str) -> str:
    """Just enough Markdown for our own tables, headings, bullets and paragraphs."""
    out, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if table:
            head, *rest = table
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                                 for r in rest) + "</table>")
            table = []
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(line).replace("**", ""))
        if line.startswith("# "):
            out.append(f"<h3>{text[2:]}</h3>")
        elif line.startswith("- "):
            out.append(f"<p>• {text[2:]}</p>")
        elif line.strip():
            out.append(f"<p>{text}</p>")
    return "\n".join(out)



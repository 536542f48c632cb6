"""recommend/report on studies made with a fake trainer whose optimum is known."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from test_search import FakeTrainer, run, study

from emotune.analysis import (
    compare,
    history,
    importance,
    load_study,
    parallel_coordinates,
    recommend,
    recommended_config,
    sweeps,
)
from emotune.cli import main
from emotune.config import build_config
from emotune.errors import EmotuneError
from emotune.noise import binomial_se
from emotune.report import recommendation_markdown, recommendation_text, write_report


@pytest.fixture
def sweep_study(tmp_path):
    run(tmp_path, study(["lr", "dropout", "optimizer"]), FakeTrainer())
    return load_study(tmp_path / "study")


def test_sweeps_find_the_known_best_values(sweep_study):
    rows = {s.param: s for s in sweeps(sweep_study)}
    assert rows["lr"].best.value == 0.001  # FakeTrainer.score peaks at lr=1e-3
    assert rows["dropout"].best.value == 0.4
    assert rows["optimizer"].best.value == "adam"
    assert [p.value for p in rows["lr"].points] == [0.0001, 0.0005, 0.001, 0.005, 0.01]
    # one seed each: the noise is the binomial error on the 2,000 validation texts
    assert all(p.n == 1 for p in rows["lr"].points)
    assert rows["lr"].best.se == pytest.approx(binomial_se(0.81, 2000))
    assert rows["lr"].choice.value == 0.001 and rows["lr"].choice.verdict == "within noise"


def test_recommendation_is_measured_when_that_configuration_was_trained(sweep_study):
    rec = recommend(sweep_study)
    assert rec.values["lr"] == 0.001 and rec.values["dropout"] == 0.4
    assert rec.values["units"] == 128  # not searched: the default
    assert rec.basis.startswith("measured")  # dropout=0.4 alone was trained in its sweep
    assert rec.expected == pytest.approx(rec.best_trial["val_accuracy"])
    text = recommendation_text(rec)
    assert "Recommended: lr=0.001 batch_size=32 units=128 dropout=0.4 optimizer=adam" in text
    assert [line.split() for line in text.splitlines()[1:4]] == [
        # Hyperparameter, Choice, Best Value, Best Val Accuracy, Default's, Margin, Noise, Verdict
        ["Learning", "Rate", "0.001", "0.001", "0.8100", "(n=1)", "0.8100", "+0.0000",
         "0.0088", "within", "noise"],
        ["Dropout", "0.4", "0.4", "0.8200", "(n=1)", "0.8100", "+0.0100", "0.0086",
         "detectable"],  # 0.01 > one SE on 2,000 texts
        ["Optimizer", "adam", "adam", "0.8100", "(n=1)", "0.8100", "+0.0000", "0.0088",
         "within", "noise"]]
    assert "Expected: val accuracy 0.8200 ±0.0086 (1 SE), val loss 0.1800 (measured" in text
    md = recommendation_markdown(rec)
    assert md.startswith("# Recommendations: study (gru)\n\nChosen by the one-standard-error")
    assert ("| Hyperparameter | Choice | Best Value | Best Val Accuracy | Default's | Margin | "
            "Noise (1 SE) | Verdict |\n") in md
    # one seed: the 95% interval is 1.96 binomial errors
    assert "| Dropout | 0.4 | 0.8200 | 1 | 0.8032–0.8368 | 0.1800 | chosen, best |" in md
    assert "| Dropout | 0.5 | 0.8100 | 1 | 0.7928–0.8272 | 0.1900 | default |" in md


def _fake_study(rows, params=("dropout",), n_val=2000):
    """A LoadedStudy from hand-written trials.csv rows (the defaults for the rest)."""
    import pandas as pd

    from emotune.analysis import LoadedStudy
    from emotune.space import hp_values

    defaults = hp_values(build_config())
    frame = pd.DataFrame([{**defaults, "val_loss": 0.2, "val_accuracy_std": np.nan,
                           "sweeps": params[0], **r} for r in rows])
    frame["trial_id"] = [f"{i:04d}" for i in range(len(frame))]
    return LoadedStudy(pathlib.Path("fake"), "fake", "gru", "sweep", params, 1, defaults,
                       {params[0]: sorted({r[params[0]] for r in rows})}, frame,
                       {"n_val": n_val, "study": {"race": 0}})


def test_a_pruned_trial_is_a_lower_bound_and_never_chosen():
    # The refine.sh case: dropout 0.35, pruned at epoch 2, reported 0.9410 against the
    # default's 0.9405. It is shown as a lower bound and the default is kept.
    st = _fake_study([
        {"dropout": 0.5, "status": "completed", "val_accuracy": 0.9405, "seeds": "42",
         "val_accuracy_by_seed": "0.9405"},
        {"dropout": 0.35, "status": "pruned", "val_accuracy": 0.9410, "seeds": "42",
         "val_accuracy_by_seed": "0.941"},
        {"dropout": 0.2, "status": "completed", "val_accuracy": 0.9300, "seeds": "42",
         "val_accuracy_by_seed": "0.93"}])
    rec = recommend(st)
    (row,) = rec.rows
    assert row.best.value == 0.5 and row.choice.value == 0.5 == rec.values["dropout"]
    assert [p.pruned for p in row.points] == [False, True, False]  # 0.2, 0.35, 0.5
    assert rec.expected == 0.9405 and rec.best_trial["trial_id"] == "0000"
    md = recommendation_markdown(rec)
    assert "| Dropout | 0.35 | ≥0.9410 (pruned) | 1 |" in md
    assert any("lower bounds" in n for n in rec.notes)


def test_a_one_text_lead_does_not_change_the_choice_and_seeds_are_paired():
    runs = {0.5: [0.9405, 0.9390, 0.9420], 0.35: [0.9410, 0.9400, 0.9425],
            0.2: [0.9200, 0.9150, 0.9180]}
    st = _fake_study([{"dropout": d, "status": "completed", "val_accuracy": a, "seeds": str(s)}
                      | {"val_accuracy_by_seed": str(a)}
                      for d, accs in runs.items() for s, a in zip((42, 43, 44), accs)])
    (row,) = recommend(st).rows
    assert row.best.value == 0.35 and row.choice.value == 0.5  # within one SE: the default
    assert row.best.n == 3 and row.choice.verdict == "within noise"
    assert row.best.val_accuracy == pytest.approx(np.mean(runs[0.35]))
    assert row.best.val_accuracy_std == pytest.approx(np.std(runs[0.35], ddof=1))
    mean, half, n = row.paired  # best - default, seed by seed: +0.0005, +0.001, +0.0005
    assert (mean, n) == (pytest.approx(0.002 / 3), 3) and half > mean  # 0 is inside it
    # a clear lead over three seeds is detectable, and its margin is paired seed by seed
    runs[0.35] = [a + 0.02 for a in runs[0.5]]
    st = _fake_study([{"dropout": d, "status": "completed", "val_accuracy": a, "seeds": str(s),
                       "val_accuracy_by_seed": str(a)}
                      for d, accs in runs.items() for s, a in zip((42, 43, 44), accs)])
    (row,) = recommend(st).rows
    assert row.choice.value == 0.35 and row.choice.verdict == "detectable"
    mean, half, n = row.paired
    assert (mean, n) == (pytest.approx(0.02), 3) and half == pytest.approx(0, abs=1e-9)


def test_racing_study_reports_mean_and_std_over_its_seeds(tmp_path):
    from emotune.search import StudySpec

    st = StudySpec("gru", ("lr",), "sweep", None, 1, None, False, 3)
    run(tmp_path, st, FakeTrainer(), sets=["sweeps.lr=[0.001, 0.0009, 0.002, 0.01]"])
    rec = recommend(load_study(tmp_path / "study"))
    (row,) = rec.rows
    n = {p.value: p.n for p in row.points}
    assert n == {0.001: 3, 0.0009: 3, 0.002: 1, 0.01: 1}
    assert row.best.value == 0.001 and row.best.val_accuracy == pytest.approx(0.811)
    assert rec.seeds == 3 and "3 seeds" in rec.basis
    assert "| Learning Rate | 0.001 | 0.8110 ±0.0010 | 3 |" in recommendation_markdown(rec)


def test_an_untrained_combination_is_not_given_invented_numbers(tmp_path):
    run(tmp_path, study(["lr", "dropout"]), FakeTrainer(), sets=["lr=0.005"])
    st = load_study(tmp_path / "study")
    rec = recommend(st)
    assert rec.values["lr"] == 0.001 and rec.values["dropout"] == 0.4
    assert rec.basis.startswith("not trained in this study")
    best_single = max(s.best.val_accuracy for s in rec.rows)
    assert rec.expected == pytest.approx(best_single)  # measured, not a sum
    assert rec.expected == pytest.approx(rec.best_trial["val_accuracy"])


def test_ties_keep_the_default_by_the_one_se_rule(tmp_path):
    run(tmp_path, study(["dropout"], repeats=3), FakeTrainer(),
        sets=["sweeps.dropout=[0.3, 0.5, 0.9]"])
    rec = recommend(load_study(tmp_path / "study"))
    (row,) = rec.rows
    assert row.best.n == 3 and row.best.val_accuracy_std > 0
    assert set(row.choice.ties) == {0.3, 0.5}  # 0.3 and 0.5 score the same; 0.9 is behind
    assert row.choice.value == 0.5 == rec.values["dropout"]  # the default among the ties
    assert row.choice.verdict == "within noise"
    assert row.best_margin == pytest.approx(0, abs=1e-9)
    # 3 seeds 0.810, 0.811, 0.812 agree closer than 2,000 texts can tell: the binomial error
    # is the noise, and the 95% interval is 1.96 of it (t(2) x 0.001/sqrt(3) is narrower)
    lo, hi = row.chosen.interval
    se = binomial_se(0.811, 2000)
    assert row.chosen.se == pytest.approx(se)
    assert (lo, hi) == pytest.approx((0.811 - 1.96 * se, 0.811 + 1.96 * se), abs=1e-6)


def test_sweeps_of_list_and_null_values(tmp_path):
    # kernel_sizes values are lists and clipnorm's default is None: both must be matched to
    # their trials, in sweep order, and recommended as such.
    run(tmp_path, study(["kernel_sizes", "clipnorm"]), FakeTrainer())
    st = load_study(tmp_path / "study")
    rows = {s.param: s for s in sweeps(st)}
    assert [p.value for p in rows["kernel_sizes"].points] == [[3, 4, 5], [2, 3, 4],
                                                              [1, 2, 3, 5]]
    assert [p.value for p in rows["clipnorm"].points] == [None, 1.0]
    assert all(p.n == 1 for s in rows.values() for p in s.points)
    rec = recommend(st)
    assert rec.values["kernel_sizes"] in ([3, 4, 5], [2, 3, 4], [1, 2, 3, 5])
    assert recommended_config(st, rec).model.kernel_sizes


def test_joint_search_over_list_values_maps_to_parallel_coordinates(tmp_path):
    # kernel_sizes' choices are lists: parallel coordinates must place them by their order,
    # not crash on an unhashable value (and `report` with it).
    run(tmp_path, study(["kernel_sizes", "lr"], "grid", trials=6), FakeTrainer())
    st = load_study(tmp_path / "study")
    pc = parallel_coordinates(st)
    order = [[3, 4, 5], [2, 3, 4], [1, 2, 3, 5]]
    expected = [order.index(list(v)) / 2 for v in st.done["kernel_sizes"]]
    assert pc["kernel_sizes"].tolist() == pytest.approx(expected)
    assert len(set(pc["kernel_sizes"])) > 1


def test_recommend_command_writes_tables_and_a_config_train_accepts(sweep_study, tmp_path,
                                                                    capsys):
    reports, exps = tmp_path / "reports", tmp_path / "exps"
    assert main(["recommend", "--project", str(sweep_study.path), "--reports-dir",
                 str(reports), "--experiments-dir", str(exps)]) == 0
    assert "Learning Rate" in capsys.readouterr().out
    data = json.loads((reports / "study" / "recommendations.json").read_text())
    assert data["recommended"]["dropout"] == 0.4
    assert (reports / "study" / "recommendations.md").read_text().count("|") > 10
    config = build_config(exps / "recommended-study.yaml")
    assert config.model.dropout == 0.4 and config.train.epochs == 4
    assert config == recommended_config(sweep_study, recommend(sweep_study))
    assert main(["recommend", "--project", str(sweep_study.path), "--reports-dir",
                 str(reports), "--config-out", str(exps / "best-gru.yaml")]) == 0
    assert build_config(exps / "best-gru.yaml") == config


def test_joint_study_views(tmp_path):
    run(tmp_path, study(["lr", "dropout", "optimizer"], "random", trials=12), FakeTrainer())
    st = load_study(tmp_path / "study")
    h = history(st)
    assert (np.diff(h["best_so_far"]) >= 0).all()
    imp = importance(st)
    assert set(imp) == {"lr", "dropout", "optimizer"}
    assert sum(imp.values()) == pytest.approx(1.0)
    pc = parallel_coordinates(st)
    assert pc[["lr", "dropout", "optimizer"]].stack().between(0, 1).all()
    rec = recommend(st)
    # joint: the one-SE rule over trained configurations: within one SE of the best, the
    # fewest changed defaults
    configs = st.done[["lr", "dropout", "optimizer", "val_accuracy"]]
    best = configs["val_accuracy"].max()
    chosen = configs[(configs[["lr", "dropout", "optimizer"]] ==
                      pd.Series({k: rec.values[k] for k in ("lr", "dropout", "optimizer")})
                      ).all(axis=1)]
    assert len(chosen) == 1
    se = binomial_se(best, 2000)
    assert chosen["val_accuracy"].iloc[0] >= best - se
    changed = lambda r: sum(r[k] != st.defaults[k] for k in ("lr", "dropout", "optimizer"))  # noqa: E731
    ties = configs[configs["val_accuracy"] >= best - se]
    assert changed(chosen.iloc[0]) == min(changed(r) for _, r in ties.iterrows())
    assert {s.param: rec.values[s.param] for s in rec.rows} == {
        k: rec.values[k] for k in ("lr", "dropout", "optimizer")}  # the table says the same
    from emotune.report import recommendation_records

    assert {r["parameter"]: r["recommended"] for r in recommendation_records(rec)
            if r["searched"]} == {k: rec.values[k] for k in ("lr", "dropout", "optimizer")}


def test_pruned_trials_never_rank_above_measured_ones():
    from emotune.results import top

    st = _fake_study([
        {"dropout": 0.5, "status": "completed", "val_accuracy": 0.90, "seeds": "42"},
        {"dropout": 0.35, "status": "pruned", "val_accuracy": 0.95, "seeds": "42"},
        {"dropout": 0.2, "status": "completed", "val_accuracy": 0.91, "seeds": "42"}])
    assert list(top(st.trials)["dropout"]) == [0.2, 0.5, 0.35]
    h = history(st)
    assert list(h["pruned"]) == [False, True, False]
    assert list(h["best_so_far"]) == [0.90, 0.90, 0.91]  # the pruned 0.95 is no best


def test_report_writes_figures_summary_and_self_contained_html(sweep_study, tmp_path):
    out = tmp_path / "rep"
    paths = write_report([sweep_study], [recommend(sweep_study)], out)
    names = {p.name for p in paths}
    assert {"sweep_lr.png", "sweep_dropout.png", "sweep_optimizer.png", "sweeps.png",
            "chosen_per_param.png", "curves.png", "summary.md", "trials.csv", "index.html",
            "recommendations.md"} <= names
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "<table>" in page
    assert "src=\"sweep" not in page  # no file links: the page stands alone


def test_report_renders_its_markdown_once_and_reads_nothing_back(tmp_path, monkeypatch):
    # summary.md and index.html are built from the Markdown in memory, not from the files
    # just written (recommendations.md, comparison.md).
    from pathlib import Path

    for name, sets in (("a", []), ("b", ["units=64"])):
        run(tmp_path / name, study(["optimizer"]), FakeTrainer(), sets=sets)
        (tmp_path / name / "study").rename(tmp_path / name / f"study-{name}")
    studies = [load_study(tmp_path / n / f"study-{n}") for n in ("a", "b")]
    recs = [recommend(st) for st in studies]

    def no_reading(self, *args, **kwargs):
        raise AssertionError(f"{self} was read back")

    from emotune.provenance import provenance

    provenance()  # reads the CPU's and the packages' descriptions once per process

    with monkeypatch.context() as m:
        m.setattr(Path, "read_text", no_reading)
        write_report(studies, recs, tmp_path / "cmp")
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    for st, rec in zip(studies, recs):
        md = recommendation_markdown(rec)
        assert md in summary
        assert (tmp_path / "cmp" / st.name / "recommendations.md").read_text() == md
    assert (tmp_path / "cmp" / "comparison.md").read_text() in summary


def test_comparison_of_several_studies(tmp_path, capsys):
    for name, sets in (("a", []), ("b", ["units=64"])):
        sub = tmp_path / name
        run(sub, study(["optimizer"]), FakeTrainer(), sets=sets)
    studies = [load_study(tmp_path / n / "study") for n in ("a", "b")]
    table = compare(studies)
    assert len(table) == 2
    assert main(["report", "--project", str(studies[0].path), str(studies[1].path), "--out",
                 str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.png").is_file()
    assert (tmp_path / "cmp" / "comparison.md").is_file()


def test_not_a_study_is_a_clear_error(tmp_path):
    with pytest.raises(EmotuneError, match="is not an emotune study"):
        load_study(tmp_path)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_index_html_renders_in_headless_chromium(sweep_study, tmp_path):
    from PIL import Image

    out = tmp_path / "rep"
    write_report([sweep_study], [recommend(sweep_study)], out)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", (out / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] > 1000
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    # The figures are drawn in colour: a blank or broken-image page has almost no colour.
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert (rgb.max(axis=2) - rgb.min(axis=2) > 60).mean() > 0.01


def test_every_parameter_has_its_table_label():
    # The labels come from space.PARAMS (one line per parameter); the reports in reports/ were
    # drawn with these.
    from emotune.report import LABELS
    from emotune.space import PARAMS

    drawn_with = {
        "lr": "Learning Rate", "batch_size": "Batch Size", "units": "Units",
        "dropout": "Dropout", "optimizer": "Optimizer", "embedding": "Embedding",
        "bidirectional": "Bidirectional", "layers": "Layers", "pooling": "Pooling",
        "spatial_dropout": "Spatial Dropout", "kernel_sizes": "Kernel Sizes",
        "schedule": "LR Schedule", "warmup_epochs": "Warm-up Epochs", "clipnorm": "Clip Norm",
        "label_smoothing": "Label Smoothing", "class_weight": "Class Weight",
        "focal_gamma": "Focal Gamma", "weight_decay": "Weight Decay"}
    assert {k: LABELS[k] for k in drawn_with} == drawn_with
    assert set(LABELS) == set(PARAMS) and all(p.label.strip() for p in PARAMS.values())

"""final-train, the model bundle and predict, on tiny data with real training."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from test_cli import assert_one_line_error, run_cli

from conftest import make_tiny_data, make_tiny_glove, tiny_settings
from emotune.bundle import load_bundle
from emotune.cli import main
from emotune.config import build_config, parse_sets
from emotune.errors import EmotuneError
from emotune.final import evaluate_split, row_percent
from emotune.progress import set_quiet
from emotune.train import fit, load_inputs


def test_test_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    m = evaluate_split(y, probs, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.per_class["recall"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert m.per_class["precision"].tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    f1 = [0.5, 0.8, 2 / 3]
    assert m.macro_f1 == pytest.approx(np.mean(f1))
    np.testing.assert_allclose(row_percent(m.confusion).sum(axis=1), 100)


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError("the test split was read during training")


def test_training_never_reads_the_test_split(tiny_sets):
    config = build_config(overrides=parse_sets(tiny_sets))
    _, prepared, emb = load_inputs(config)
    fit(config, dataclasses.replace(prepared, test=Untouchable()), emb)


@pytest.fixture(scope="session")
def bundle(final_bundle):
    """conftest's session-scoped final-train on tiny data (read, never changed)."""
    return final_bundle


def test_final_train_writes_bundle_and_report(bundle):
    model_dir, report = bundle
    assert {p.name for p in model_dir.iterdir()} == {"model.keras", "vocab.txt", "labels.json",
                                                     "config.yaml", "metrics.json",
                                                     "bundle.json"}
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8  # the tiny task is easy once trained
    assert len(metrics["per_class"]) == 3 and metrics["data_checksum"]
    for name in ("final.md", "confusion.png", "curves.png", "confusion_counts.csv",
                 "confusion_percent.csv", "per_class.csv", "history.csv", "test_metrics.json"):
        assert (report / name).is_file(), name
    import pandas as pd

    h = pd.read_csv(report / "history.csv")
    assert {"grad_norm", "learning_rate", "val_loss"} <= set(h.columns)
    assert (h["grad_norm"] > 0).all()
    assert h["learning_rate"].tolist() == pytest.approx([0.02] * len(h))
    counts = pd.read_csv(report / "confusion_counts.csv", index_col=0)
    assert counts.values.sum() == 90


def test_predict_uses_the_training_tokenisation(bundle, capsys):
    model_dir, _ = bundle
    b = load_bundle(model_dir)
    probs = b.predict(["i feel so happy today", "so SAD and gloomy", "furious!!"])
    assert [b.labels[i] for i in probs.argmax(axis=1)] == ["joy", "sadness", "anger"]
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert main(["predict", "--model-dir", str(model_dir), "--json", "i am glad"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["label"] == "joy" and set(row["probabilities"]) == {"joy", "sadness", "anger"}


@pytest.mark.slow
def test_broken_bundles_are_clear_errors(bundle, tmp_path):
    model_dir, _ = bundle
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "vocab.txt").unlink()
    with pytest.raises(EmotuneError, match="incomplete: vocab.txt missing"):
        load_bundle(broken)
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    meta = json.loads((old / "bundle.json").read_text())
    (old / "bundle.json").write_text(json.dumps({**meta, "format": 0, "emotune": "0.0.1"}))
    with pytest.raises(EmotuneError, match="written by emotune 0.0.1 .* retrain"):
        load_bundle(old)
    assert_one_line_error(run_cli("predict", "--model-dir", str(broken), "hi"), "incomplete")
    assert_one_line_error(run_cli("predict", "--model-dir", str(model_dir)), "nothing to classify")


def test_final_train_refuses_to_overwrite(bundle):
    model_dir, _ = bundle
    root = model_dir.parent.parent
    proc = run_cli("final-train", "--config", str(root / "tiny.yaml"), "--models-dir",
                   str(root / "models"))
    assert_one_line_error(proc, "already exists; choose another --name or add --overwrite")


def _two_seeds():
    """Hand-made evaluations of seeds 1 (all right) and 2 (one 'a' taken for 'b')."""
    from emotune.final import FinalEvaluation

    y = np.array([0, 0, 1, 1])
    right, half = (np.eye(2)[[0, 0, 1, 1]] * 0.8 + 0.1, np.eye(2)[[0, 1, 1, 1]] * 0.8 + 0.1)
    return [FinalEvaluation(f"x (seed {seed})", ("a", "b"), evaluate_split(y, p, ["a", "b"]),
                            {"val_accuracy": va, "val_macro_f1": va, "best_epoch": 2,
                             "epochs_run": 3}, seed)
            for seed, p, va in ((1, right, 0.9), (2, half, 0.8))]


def test_seeds_table_mean_and_std(tmp_path):
    import pandas as pd

    from emotune.final import seeds_table
    from emotune.report_final import write_seeds_report

    table = seeds_table(_two_seeds())
    assert table["test_accuracy"].tolist() == [1.0, 0.75]
    assert table["f1_a"].tolist() == pytest.approx([1.0, 2 / 3])
    out = tmp_path
    write_seeds_report(out, "x", table)
    summary = json.loads((out / "seeds.json").read_text())["summary"]
    assert summary["test_accuracy"]["mean"] == pytest.approx(0.875)
    assert summary["test_accuracy"]["std"] == pytest.approx(np.std([1.0, 0.75], ddof=1))
    assert "0.8750 ± 0.1768" in (out / "final.md").read_text()
    assert pd.read_csv(out / "seeds.csv")["seed"].tolist() == [1, 2]


def test_final_and_seeds_markdown_by_hand():
    from emotune.final import seeds_table
    from emotune.report_final import final_markdown, seeds_markdown

    runs = _two_seeds()
    md = final_markdown(runs[1])
    assert md.endswith(
        "best epoch 2/3.\n\n## Per class\n\n"
        "| label | precision | recall | F1 | support |\n|---|---|---|---|---|\n"
        "| a | 1.0000 | 0.5000 | 0.6667 | 2 |\n| b | 0.6667 | 1.0000 | 0.8000 | 2 |\n\n"
        "## Confusion matrix (rows: true label; counts)\n\n"
        "| true \\ pred | a | b |\n|---|---|---|\n| a | 1 | 1 |\n| b | 0 | 2 |\n\n"
        "## Confusion matrix (row percent)\n\n"
        "| true \\ pred | a | b |\n|---|---|---|\n| a | 50.0 | 50.0 |\n| b | 0.0 | 100.0 |\n\n"
        "![confusion](confusion.png)\n")
    head = ("| seed | val_accuracy | val_macro_f1 | best_epoch | test_accuracy | test_macro_f1 | "
            "test_weighted_f1 | f1_a | f1_b |\n|---|---|---|---|---|---|---|---|---|\n"
            "| 1 | 0.9000 | 0.9000 | 2 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 |\n")
    assert seeds_markdown("x", seeds_table(runs[:1])).endswith("`seed-1/final.md`.\n\n" + head)
    assert seeds_markdown("x", seeds_table(runs)).endswith(
        "`seed-<seed>/final.md`.\n\n" + head +
        "| 2 | 0.8000 | 0.8000 | 2 | 0.7500 | 0.7333 | 0.7333 | 0.6667 | 0.8000 |\n"
        "| mean ± std | 0.8500 ± 0.0707 | 0.8500 ± 0.0707 | 2.0000 ± 0.0000 | 0.8750 ± 0.1768 | "
        "0.8667 ± 0.1886 | 0.8667 ± 0.1886 | 0.8333 ± 0.2357 | 0.9000 ± 0.1414 |\n")


def _sets(root, *extra):
    """--set flags for the tiny data and vectors under ``root`` (the ``bundle`` fixture's)."""
    sets = tiny_settings(root / "tiny", root / "glove.tiny.8d.txt", root / "emb")
    return [x for s in sets if not s.startswith("epochs") and not s.startswith("units")
            for x in ("--set", s)] + [x for s in extra for x in ("--set", s)]


def _files(folder):
    """Every file under ``folder`` with its bytes: to check that nothing was touched."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def seeds_run(bundle, tmp_path_factory):
    """`final-train --seeds 3 4` (two epochs each) of the tiny config; read, never changed."""
    root, out = bundle[0].parent.parent, tmp_path_factory.mktemp("seeds")
    set_quiet(True)
    assert main(["final-train", "--config", str(root / "tiny.yaml"), *_sets(root, "epochs=2"),
                 "--seeds", "3", "4", "--models-dir", str(out / "models"), "--reports-dir",
                 str(out / "reports")]) == 0
    return root, out


@pytest.mark.slow
def test_final_train_with_seeds(seeds_run, bundle, tmp_path):
    root, out = seeds_run
    report = out / "reports" / "tiny" / "final"
    runs = json.loads((report / "seeds.json").read_text())["runs"]
    assert json.loads((report / "seeds.json").read_text())["name"] == "tiny"
    assert [r["seed"] for r in runs] == [3, 4]
    for seed in (3, 4):
        metrics = json.loads((out / "models" / "tiny" / f"seed-{seed}" /
                              "metrics.json").read_text())
        assert metrics["seed"] == seed
        assert metrics["test_accuracy"] == pytest.approx(runs[seed - 3]["test_accuracy"])
        assert (report / f"seed-{seed}" / "final.md").is_file()
    assert "mean ± std" in (report / "final.md").read_text()

    # The seeds' ensemble: a bundle whose probabilities are the members' mean.
    members = [str(out / "models" / "tiny" / f"seed-{s}") for s in (3, 4)]
    assert main(["ensemble", *members, "--name", "tiny-ens", "--models-dir",
                 str(tmp_path / "models"), "--reports-dir", str(tmp_path / "ens")]) == 0
    texts = ["i feel so happy today", "so sad", "furious!!", "i am glad and calm"]
    mean = np.mean([load_bundle(p).predict(texts) for p in members], axis=0)
    np.testing.assert_allclose(load_bundle(tmp_path / "models" / "tiny-ens").predict(texts),
                               mean, rtol=1e-5, atol=1e-6)
    ens = json.loads((tmp_path / "ens" / "tiny-ens" / "final" / "test_metrics.json")
                     .read_text())
    assert ens["members"] == members and ens["params"] > 0
    assert_one_line_error(run_cli("ensemble", members[0], "--name", "x"), "at least two")
    assert_one_line_error(run_cli("ensemble", members[0], str(tmp_path), "--name", "x"),
                          "not a readable model bundle")

    # The leaderboard: the two-seed model and a one-seed one, best val accuracy first.
    reports = tmp_path / "reports"
    shutil.copytree(out / "reports", reports)
    shutil.copytree(bundle[1], reports / "single" / "final")
    single = json.loads((bundle[1] / "test_metrics.json").read_text())
    assert main(["leaderboard", "--reports-dir", str(reports)]) == 0
    from emotune.leaderboard import collect

    rows, baseline = collect(reports)
    assert baseline is None
    assert [r["val_accuracy"] for r in rows] == sorted((single["val_accuracy"], np.mean(
        [r["val_accuracy"] for r in runs])), reverse=True)
    (two,) = [r for r in rows if r["name"] == "tiny"]
    assert two["seeds"] == 2 and two["test_accuracy"] == pytest.approx(
        np.mean([r["test_accuracy"] for r in runs]))
    text = (reports / "leaderboard.md").read_text()
    assert f"{two['test_accuracy']:.4f} ± " in text and "| single | 1 |" in text
    assert_one_line_error(run_cli("final-train", "--config", str(root / "tiny.yaml"),
                                  "--seeds", "1", "1"), "repeats a seed")
    assert_one_line_error(run_cli("final-train", "--config", str(root / "tiny.yaml"),
                                  "--seed", "1", "--seeds", "2"), "not both")


def test_a_failed_overwrite_keeps_the_old_bundle_and_report(bundle, tmp_path, capsys):
    model_dir, report = bundle
    root = model_dir.parent.parent
    models, reports = tmp_path / "models", tmp_path / "reports"
    shutil.copytree(model_dir, models / "tiny")
    shutil.copytree(report, reports / "tiny" / "final")
    before = _files(models), _files(reports)
    # An absurd learning rate: the loss becomes NaN and training raises a TrainingError.
    assert main(["final-train", "--config", str(root / "tiny.yaml"),
                 *_sets(root, "optimizer=sgd", "lr=1e39"), "--overwrite", "--models-dir",
                 str(models), "--reports-dir", str(reports)]) == 1
    assert "NaN" in capsys.readouterr().err
    assert (_files(models), _files(reports)) == before  # nothing old touched, nothing left
    assert [p.name for p in models.iterdir()] == ["tiny"]
    assert [p.name for p in (reports / "tiny").iterdir()] == ["final"]


def test_one_seed_replaces_an_earlier_run_and_is_on_the_leaderboard(seeds_run, tmp_path):
    # `--seeds 7 --overwrite` over the two-seed run: the bundle and the report folder are
    # replaced as a whole (no seed-3/ or seeds.json of the earlier run is left behind), and the
    # one seed gets its top-level seeds report, so the leaderboard shows it.
    root, out = seeds_run
    models, reports = tmp_path / "models", tmp_path / "reports"
    shutil.copytree(out / "models", models)
    shutil.copytree(out / "reports", reports)
    assert main(["final-train", "--config", str(root / "tiny.yaml"), *_sets(root, "epochs=1"),
                 "--seeds", "7", "--overwrite", "--models-dir", str(models), "--reports-dir",
                 str(reports)]) == 0
    final = reports / "tiny" / "final"
    assert sorted(p.name for p in (models / "tiny").iterdir()) == ["seed-7"]
    assert sorted(p.name for p in final.iterdir() if p.is_dir()) == ["seed-7"]
    seeds = json.loads((final / "seeds.json").read_text())
    assert seeds["name"] == "tiny" and seeds["seeds"] == [7]
    assert "tiny, 1 seed" in (final / "final.md").read_text()
    seed7 = json.loads((final / "seed-7" / "test_metrics.json").read_text())
    from emotune.leaderboard import collect

    (row,), _ = collect(reports)
    assert row["name"] == "tiny" and row["seeds"] == 1
    assert row["test_accuracy"] == pytest.approx(seed7["test_accuracy"])
    assert row["test_accuracy_std"] is None
    assert main(["leaderboard", "--reports-dir", str(reports)]) == 0


def _metrics(accuracy):
    return {"val_accuracy": accuracy, "test_accuracy": accuracy, "test_macro_f1": accuracy,
            "params": 10, "per_class": [{"label": "a", "f1": accuracy}]}


def test_leaderboard_reads_the_newer_of_seeds_json_and_test_metrics(tmp_path):
    import os

    from emotune.leaderboard import collect

    final = tmp_path / "m" / "final"
    (final / "seed-1").mkdir(parents=True)
    (final / "seed-1" / "test_metrics.json").write_text(json.dumps(_metrics(0.5)))
    summary = {k: {"mean": 0.5, "std": 0.1} for k in ("val_accuracy", "test_accuracy",
                                                      "test_macro_f1", "f1_a")}
    (final / "seeds.json").write_text(json.dumps({"name": "m", "seeds": [1, 2],
                                                  "summary": summary}))
    (final / "test_metrics.json").write_text(json.dumps(_metrics(0.9)))
    os.utime(final / "seeds.json", (1_000_000, 1_000_000))  # an earlier run's, left behind
    (row,), _ = collect(tmp_path)
    assert row["seeds"] == 1 and row["test_accuracy"] == 0.9
    os.utime(final / "test_metrics.json", (999_000, 999_000))  # now seeds.json is the newer
    (row,), _ = collect(tmp_path)
    assert row["seeds"] == 2 and row["test_accuracy"] == 0.5


def test_a_failed_ensemble_overwrite_keeps_the_old_one(seeds_run, tmp_path, monkeypatch):
    _, out = seeds_run
    members = [str(out / "models" / "tiny" / f"seed-{s}") for s in (3, 4)]
    models, reports = tmp_path / "models", tmp_path / "reports"
    shutil.copytree(members[0], models / "ens")  # stands in for an earlier ensemble
    shutil.copytree(out / "reports" / "tiny" / "final" / "seed-3", reports / "ens" / "final")
    before = _files(models), _files(reports)
    argv = ["ensemble", *members, "--name", "ens", "--overwrite", "--models-dir", str(models),
            "--reports-dir", str(reports)]

    def fail(models_):
        raise EmotuneError("the members cannot be combined")

    import emotune.ensemble

    with monkeypatch.context() as m:
        m.setattr(emotune.ensemble, "average_model", fail)
        assert main(argv) == 1
    assert (_files(models), _files(reports)) == before
    assert main(argv) == 0
    assert json.loads((models / "ens" / "metrics.json").read_text())["members"] == members
    assert "mean of 2 bundles" in (reports / "ens" / "final" / "final.md").read_text()
    assert not (reports / "ens" / "final" / "curves.png").exists()


def test_a_model_that_cannot_load_keeps_its_cause(bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle[0], broken)
    (broken / "model.keras").write_bytes(b"not a zip archive")
    with pytest.raises(EmotuneError, match="model.keras cannot be loaded") as e:
        load_bundle(broken)
    assert e.value.__cause__ is not None  # `--debug` shows why


def test_baseline_command(tmp_path, capsys):
    import collections

    data = make_tiny_data(tmp_path)
    train = data / "train.txt"  # balanced: make anger the majority
    train.write_text(train.read_text() + "so angry and furious;anger\n" * 30)
    assert main(["baseline", "--data", str(data), "--reports-dir", str(tmp_path / "r")]) == 0
    result = json.loads((tmp_path / "r" / "baseline" / "baseline.json").read_text())
    train_labels = [line.rsplit(";", 1)[1].strip()
                    for line in (data / "train.txt").read_text().splitlines()]
    test_labels = [line.rsplit(";", 1)[1].strip()
                   for line in (data / "test.txt").read_text().splitlines()]
    majority = collections.Counter(train_labels).most_common(1)[0][0]
    assert result["majority"]["label"] == majority
    assert result["majority"]["test"]["accuracy"] == pytest.approx(
        test_labels.count(majority) / len(test_labels))
    lr = result["tfidf_logreg"]
    # C is the one with the best val accuracy, and the words carry the label in the tiny task.
    assert lr["val"]["accuracy"] == max(lr["val_accuracy_by_C"].values())
    assert lr["test"]["accuracy"] > result["majority"]["test"]["accuracy"] + 0.3
    assert "logistic regression" in capsys.readouterr().out


@pytest.mark.slow
def test_a_bundle_with_emotunes_own_layers_loads_in_a_new_process(tmp_path):
    # Keras finds custom classes only once they are registered: a fresh `emotune predict`
    # must load a model with attention pooling and the smoothed/focal loss.
    sets = [x for s in tiny_settings(make_tiny_data(tmp_path), make_tiny_glove(tmp_path),
                                     tmp_path / "emb") for x in ("--set", s)]
    config = tmp_path / "att.yaml"
    config.write_text("model:\n  pooling: attention\ntrain:\n  label_smoothing: 0.1\n"
                      "  focal_gamma: 1.0\n")
    proc = run_cli("final-train", "--config", str(config), *sets, "--models-dir",
                   str(tmp_path / "models"), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("predict", "--model-dir", str(tmp_path / "models" / "att"), "--json",
                   "i feel so happy")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)[0]["probabilities"]) == {"joy", "sadness", "anger"}

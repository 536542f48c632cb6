"""Multi-label data (several labels per text, as GoEmotions): reading, scores, thresholds, the
loss, and the commands end to end on tiny data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import CUES, FILLER, make_tiny_glove, tiny_settings
from emotune.cli import main
from emotune.config import DataConfig, build_config, parse_sets
from emotune.data import describe, load_dataset, prepare
from emotune.errors import DataError

NAMES = list(CUES)  # joy, sadness, anger: ids 0, 1, 2 in labels.txt


def ml_rows(n: int, seed: int) -> list[tuple[str, list[int]]]:
    """Texts with one or two cue words; their labels are the cues' labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ids = [i % 3] if i % 4 else [i % 3, (i + 1) % 3]
        words = rng.sample(FILLER, rng.randint(2, 6))
        words += [rng.choice(CUES[NAMES[j]]) for j in ids]
        rng.shuffle(words)
        rows.append((" ".join(words), ids))
    return rows


def write_goemotions(d: Path, sizes=(300, 90, 90)) -> Path:
    """GoEmotions' layout: train/dev/test.tsv, no header, `text<TAB>ids<TAB>id`, labels.txt."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "labels.txt").write_text("\n".join(NAMES) + "\n")
    for (split, seed), n in zip((("train", 1), ("dev", 2), ("test", 3)), sizes):
        (d / f"{split}.tsv").write_text("".join(
            f"{t}\t{','.join(map(str, ids))}\tc{seed}{k}\n"
            for k, (t, ids) in enumerate(ml_rows(n, seed))))
    return d


@pytest.fixture
def ml_data(tmp_path: Path) -> Path:
    return write_goemotions(tmp_path / "ml")


# ---------------------------------------------------------------- reading


def test_goemotions_layout_is_read_as_multi_label(ml_data):
    ds = load_dataset(DataConfig(path=str(ml_data)))
    assert ds.multi_label and ds.label_names == tuple(NAMES)
    assert ds.splits["train"].labels[:4] == [("joy", "sadness"), ("sadness",), ("anger",),
                                             ("joy",)]
    assert len(ds.splits["val"].texts) == 90  # dev.tsv is the val split
    assert str(ml_data / "labels.txt") in ds.files
    prepared = prepare(ds, DataConfig(path=str(ml_data)))
    assert prepared.multi_label and prepared.train.labels.shape == (300, 3)
    assert prepared.train.labels[0].tolist() == [1, 1, 0]
    info = describe(ds, prepared)
    train = info["splits"]["train"]
    assert train["labels_per_text"] == {"1": 225, "2": 75}
    assert train["multi_label_rows"] == 75 and train["per_label"]["joy"] == 125
    assert train["top_pairs"][0]["rows"] == 25  # three pairs, 25 rows each


def test_label_lists_in_csv_and_jsonl(tmp_path):
    d = tmp_path / "csv"
    d.mkdir()
    rows = "".join(f'"{t}","{",".join(NAMES[i] for i in ids)}"\n' for t, ids in ml_rows(60, 1))
    (d / "train.csv").write_text("text,label\n" + rows)
    ds = load_dataset(DataConfig(path=str(d)))  # detected by the commas; val/test carved
    assert ds.multi_label and sum(len(s.texts) for s in ds.splits.values()) == 60
    j = tmp_path / "jsonl"
    j.mkdir()
    (j / "train.jsonl").write_text("".join(
        json.dumps({"text": t, "label": [NAMES[i] for i in ids]}) + "\n"
        for t, ids in ml_rows(60, 1)))
    ds = load_dataset(DataConfig(path=str(j)))
    assert ds.multi_label and ds.label_names == ("sadness", "joy", "anger")  # emotion order
    with pytest.raises(DataError, match="multi_label is false"):
        load_dataset(DataConfig(path=str(j), multi_label=False))


@pytest.mark.parametrize("label, message", [
    ("3", r"train.tsv line 2: label id 3 but .*labels.txt names only 3 labels \(ids 0-2\)"),
    ("", r"train.tsv line 2: empty label list"),
])
def test_bad_goemotions_rows(ml_data, label, message):
    lines = (ml_data / "train.tsv").read_text().splitlines()
    text, _, cid = lines[1].split("\t")
    lines[1] = f"{text}\t{label}\t{cid}"
    (ml_data / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(path=str(ml_data)))


def test_malformed_label_list(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "train.jsonl").write_text(json.dumps({"text": "i feel so happy", "label": ["joy"]})
                                   + "\n" + json.dumps({"text": "so sad", "label": "[sad"})
                                   + "\n")
    with pytest.raises(DataError, match=r"train.jsonl line 2: label list '\[sad' is malformed"):
        load_dataset(DataConfig(path=str(d)))


# ---------------------------------------------------------------- scores and thresholds


def test_multi_label_scores_equal_scikit_learns():
    from sklearn.metrics import f1_score, hamming_loss, log_loss

    from emotune.scores import bootstrap_se, multi_label_scores

    rng = np.random.default_rng(0)
    y = (rng.random((400, 5)) < 0.3).astype(np.uint8)
    probs = np.clip(y * 0.5 + rng.random((400, 5)) * 0.6, 0, 1).astype(np.float32)
    y[:, 4], probs[:, 4] = 0, 0.1  # a label absent from these texts and never predicted
    got = multi_label_scores(y, probs, 0.123)
    pred = (probs >= 0.5).astype(int)
    assert got["val_loss"] == 0.123
    assert got["val_macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["val_micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert got["val_weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert got["val_hamming"] == pytest.approx(hamming_loss(y, pred))
    assert got["val_accuracy"] == pytest.approx((pred == y).all(1).mean())
    # binary cross-entropy averaged over labels = log loss of every decision
    assert got["val_nll"] == pytest.approx(log_loss(y.ravel(), probs.ravel()), rel=1e-4)
    se = bootstrap_se(y, probs)
    assert 0 < se["val_macro_f1"] < 0.05 and 0 < se["val_micro_f1"] < 0.05
    # the bootstrap error of subset accuracy agrees with the binomial one
    p = got["val_accuracy"]
    assert se["val_accuracy"] == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=0.15)


def test_thresholds_are_tuned_per_label_and_globally():
    from emotune.final import tune_thresholds

    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    # label 0's positives score 0.3, its negative 0.1: best at a threshold in (0.1, 0.3];
    # label 1's positive 0.8, its negatives 0.6: best above 0.6
    probs = np.array([[0.3, 0.6], [0.3, 0.6], [0.1, 0.8], [0.1, 0.6]])
    per = tune_thresholds(y, probs, "per-label")
    assert 0.1 < per[0] <= 0.3 and 0.6 < per[1] <= 0.8
    glob = tune_thresholds(y, probs, "global")
    assert glob[0] == glob[1]
    assert tune_thresholds(y, probs, "fixed", 0.4).tolist() == [0.4, 0.4]


def test_multi_label_loss_is_binary_cross_entropy_and_weights_positives():
    import keras

    from emotune.layers import MultiLabelLoss

    y = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32)
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.9, 0.5]], dtype=np.float32)
    plain = np.asarray(MultiLabelLoss().call(y, p))
    np.testing.assert_allclose(plain, np.asarray(keras.losses.binary_crossentropy(y, p)),
                               rtol=1e-5)
    weighted = np.asarray(MultiLabelLoss(pos_weight=[2.0, 1.0, 1.0]).call(y, p))
    assert weighted[0] == pytest.approx(plain[0] - np.log(0.7) / 3, rel=1e-5)  # one more
    assert weighted[1] == pytest.approx(plain[1], rel=1e-6)  # label 0 negative there
    focal = np.asarray(MultiLabelLoss(focal_gamma=2.0).call(y, p))
    assert (focal < plain).all()


# ---------------------------------------------------------------- the commands


def ml_sets(data: Path, root: Path) -> list[str]:
    sets = tiny_settings(data, make_tiny_glove(root), root / "emb")
    return [x for s in sets if not s.startswith(("epochs=", "units="))
            for x in ("--set", s)]


@pytest.mark.slow
def test_search_final_train_predict_and_report_on_multi_label_data(ml_data, tmp_path,
                                                                    capsys):
    sets = ml_sets(ml_data, tmp_path)
    project = tmp_path / "study"
    assert main(["search", "--param", "lr", "--repeats", "1", "--set", "sweeps.lr=[0.02,0.05]",
                 "--epochs", "12", "--set", "units=16", "--project", str(project),
                 *sets]) == 0
    record = json.loads((project / "study.json").read_text())
    assert record["study"]["objective"] == "val_macro_f1"  # the multi-label default
    assert record["base_config"]["train"]["monitor"] == "val_macro_f1"
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["recommend", "--project", str(project), "--no-baseline", "--config-out",
                 str(tmp_path / "rec.yaml"), "--reports-dir", str(out / "reports")]) == 0
    rec = build_config(tmp_path / "rec.yaml")  # searched again, it ranks as the study did
    assert (rec.search.objective, rec.train.monitor) == ("val_macro_f1", "val_macro_f1")
    assert main(["final-train", "--project", str(project), "--models-dir",
                 str(out / "models"), "--reports-dir", str(out / "reports"),
                 "--name", "ml", "--tensorboard"]) == 0
    from emotune.tensorboard import DIR, read_events

    events = read_events(out / "reports" / "ml" / "final" / DIR)["scalars"]["run"]
    assert "epoch/val_micro_f1" in events and "epoch/val_hamming" in events
    assert 0 <= events["trial/test_macro_f1"][0][1] <= 1
    bundle = json.loads((out / "models" / "ml" / "bundle.json").read_text())
    assert bundle["multi_label"] and len(bundle["thresholds"]) == 3
    assert bundle["format"] == 2  # an emotune reading format 1 only refuses it
    final = (out / "reports" / "ml" / "final" / "final.md").read_text()
    assert "multi-label, 3 labels" in final and "## Threshold rules" in final
    assert (out / "reports" / "ml" / "final" / "pr_curves.png").is_file()
    metrics = json.loads((out / "reports" / "ml" / "final" / "test_metrics.json").read_text())
    assert metrics["test_macro_f1"] > 0.8  # the cue words are learnable
    capsys.readouterr()
    assert main(["predict", "--model-dir", str(out / "models" / "ml"), "--json",
                 "i feel so happy and sad today", "so angry"]) == 0
    rows = json.loads(capsys.readouterr().out)
    threshold = dict(zip(NAMES, bundle["thresholds"]))
    for row in rows:  # every label at or above its threshold, most probable first
        probs = row["probabilities"]
        assert row["labels"] == sorted((lab for lab in NAMES if probs[lab] >= threshold[lab]),
                                       key=lambda lab: -probs[lab])
    assert rows[1]["labels"] == ["anger"]
    assert main(["predict", "--model-dir", str(out / "models" / "ml"), "so angry"]) == 0
    assert capsys.readouterr().out.startswith("anger 0.")
    # the leaderboard keeps multi-label models in a table of their own, by val macro-F1
    assert main(["baseline", "--data", str(ml_data), "--reports-dir", str(out / "reports"),
                 "--name", "baseline-ml"]) == 0
    assert main(["leaderboard", "--reports-dir", str(out / "reports")]) == 0
    board = (out / "reports" / "leaderboard.md").read_text()
    multi = board.split("## Multi-label models")[1]
    assert "| ml | 1 |" in multi and "one-vs-rest LR" in multi
    assert f"{metrics['test_micro_f1']:.4f}" in multi


def test_objective_flags_on_multi_label_and_single_label_data(ml_data, tiny_data, tmp_path):
    from emotune.cli.base import load_config  # noqa: F401 - the CLI's own loader below
    from emotune.cli.searching import settle_for_data

    class Args:
        config = None
        data = glove = None
        objective = monitor = None
        sets: list[str] = []

    args = Args()
    args.sets = [f"data.path={ml_data}"]
    config = build_config(overrides=parse_sets(args.sets))
    settled = settle_for_data(args, config, {})
    assert (settled.search.objective, settled.train.monitor) == ("val_macro_f1",
                                                                 "val_macro_f1")
    args.sets = [f"data.path={ml_data}", "objective=val_micro_f1"]
    settled = settle_for_data(args, build_config(overrides=parse_sets(args.sets)), {})
    assert (settled.search.objective, settled.train.monitor) == ("val_micro_f1",
                                                                 "val_micro_f1")
    args.sets = [f"data.path={ml_data}", "monitor=val_loss"]
    settled = settle_for_data(args, build_config(overrides=parse_sets(args.sets)), {})
    assert (settled.search.objective, settled.train.monitor) == ("val_macro_f1", "val_loss")
    args.sets = [f"data.path={tiny_data}", "objective=val_micro_f1"]
    from emotune.errors import EmotuneError

    with pytest.raises(EmotuneError, match="objective val_micro_f1 is for multi-label data"):
        settle_for_data(args, build_config(overrides=parse_sets(args.sets)), {})
    args.sets = [f"data.path={tiny_data}"]
    settled = settle_for_data(args, build_config(overrides=parse_sets(args.sets)), {})
    assert (settled.search.objective, settled.train.monitor) == ("val_accuracy", "val_loss")


def test_multi_label_baseline(ml_data, tmp_path, capsys):
    assert main(["baseline", "--data", str(ml_data), "--reports-dir",
                 str(tmp_path / "reports"), "--name", "baseline-ml"]) == 0
    result = json.loads((tmp_path / "reports" / "baseline-ml" / "baseline.json").read_text())
    assert result["multi_label"] and result["majority"]["label"] in NAMES
    lr = result["tfidf_logreg"]
    assert lr["test"]["macro_f1"] > 0.6 and 0 <= lr["val"]["accuracy"] <= 1
    md = (tmp_path / "reports" / "baseline-ml" / "baseline.md").read_text()
    assert "one-vs-rest" in md and "micro-F1" in md

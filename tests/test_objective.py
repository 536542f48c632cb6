"""--objective: what a study ranks by, with that number's own noise, on a fake study whose
accuracy and macro-F1 disagree about the best learning rate."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
from test_search import FakeTrainer, run, study

from emotune.analysis import load_study, recommend
from emotune.cli import main
from emotune.report import recommendation_markdown, recommendation_text
from emotune.space import hp_values
from emotune.train import TrainResult

F1_SE = 0.003  # the bootstrap error the fake trials report for macro-F1


class RareLabelTrainer(FakeTrainer):
    """Accuracy peaks at lr=1e-3 (FakeTrainer.score); macro-F1, which weighs the rare labels
    as much as the common ones, peaks at lr=5e-3, by far more than its noise."""

    @staticmethod
    def f1(values: dict, seed: int) -> float:
        return 0.7 - abs(math.log10(values["lr"]) - math.log10(0.005)) * 0.08 \
            + 0.001 * (seed - 42)

    def __call__(self, config, model=None, on_epoch=None, prefix=""):
        values = {**hp_values(config), "seed": config.train.seed}
        self.calls.append(values)
        acc_final = self.score(values, config.train.seed)
        f1_final = self.f1(values, config.train.seed)
        rows, stopped = [], False
        for epoch in range(1, config.train.epochs + 1):
            k = 0.5 + 0.5 * epoch / config.train.epochs
            acc = acc_final * k
            rows.append({"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc,
                         "val_macro_f1": f1_final * k, "accuracy": acc, "loss": 1 - acc})
            if on_epoch is not None and on_epoch(epoch, rows[-1]):
                stopped = True
                break
        last = rows[-1]
        metrics = {"val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
                   "val_macro_f1": last["val_macro_f1"], "val_macro_f1_se": F1_SE,
                   "val_loss_se": 0.004, "val_accuracy_se": 0.009, "best_epoch": len(rows),
                   "epochs_run": len(rows), "train_accuracy": last["accuracy"],
                   "train_loss": last["loss"], "seconds": 1.0}
        return TrainResult(None, pd.DataFrame(rows), metrics, stopped)


def _f1_study(tmp_path, objective="val_macro_f1", prune=False):
    spec = dataclasses.replace(study(["lr", "dropout"], prune=prune), objective=objective)
    run(tmp_path, spec, RareLabelTrainer())
    return tmp_path / "study"


def test_ranking_by_macro_f1_changes_the_choice_where_it_should(tmp_path):
    path = _f1_study(tmp_path, objective="val_accuracy")
    by_accuracy = recommend(load_study(path))
    assert by_accuracy.values["lr"] == 0.001 and by_accuracy.objective == "val_accuracy"
    by_f1 = recommend(load_study(path, "val_macro_f1"))
    assert by_f1.values["lr"] == 0.005  # ahead by 0.08 against a noise of ~0.004
    lr = next(s for s in by_f1.rows if s.param == "lr")
    assert lr.choice.verdict == "detectable"
    assert lr.best.se == pytest.approx(F1_SE)  # the bootstrap error, one seed
    assert by_f1.expected == pytest.approx(RareLabelTrainer.f1({"lr": 0.005}, 42))
    # dropout does not move macro-F1 at all here: all its values tie, the default stays
    assert by_f1.values["dropout"] == 0.5
    text = recommendation_text(by_f1)
    assert "Best Val Macro-F1" in text and "val macro-F1 0.7000" in text
    assert "Ranked by val macro-F1" in recommendation_markdown(by_f1)
    assert "bootstrap error" in " ".join(by_f1.notes)


def test_a_study_searched_with_an_objective_ranks_by_it_and_records_it(tmp_path):
    path = _f1_study(tmp_path)
    record = json.loads((path / "study.json").read_text())
    assert record["study"]["objective"] == "val_macro_f1"
    loaded = load_study(path)
    assert loaded.goal.name == "val_macro_f1"
    assert recommend(loaded).values["lr"] == 0.005
    trials = pd.read_csv(path / "trials.csv")
    assert {"val_macro_f1", "val_macro_f1_std", "val_macro_f1_se"} <= set(trials.columns)
    assert set(trials["objective"]) == {"val_macro_f1"}


def test_loss_is_ranked_lowest_first(tmp_path):
    path = _f1_study(tmp_path, objective="val_accuracy")
    rec = recommend(load_study(path, "val_loss"))
    assert rec.values["lr"] == 0.001  # the lowest val loss (1 - accuracy in the fake)
    assert rec.expected == pytest.approx(min(load_study(path).done["val_loss"]))
    assert "lower is better" in " ".join(rec.notes)


def test_pruning_follows_the_objective(tmp_path):
    # lr=5e-4 trails the default (1e-3) by 0.024 in macro-F1 (0.018 at epoch 2, against a
    # margin of 2 x sqrt(2) x 0.003 = 0.0085) but by only 0.015 in accuracy (0.011 at epoch
    # 2, within the binomial margin of ~0.025): pruned when ranked by F1, not by accuracy.
    # lr=5e-3, the best F1, is never pruned.
    def statuses(objective, where):
        path = _f1_study(where, objective=objective, prune=True)
        trials = pd.read_csv(path / "trials.csv")
        lr_sweep = trials[trials["sweeps"].fillna("").str.contains("lr")]
        return dict(zip(lr_sweep["lr"], lr_sweep["status"]))

    by_f1 = statuses("val_macro_f1", tmp_path / "f1")
    assert by_f1[0.0005] == "pruned" and by_f1[0.0001] == "pruned"
    assert by_f1[0.005] == "completed"
    assert statuses("val_accuracy", tmp_path / "acc")[0.0005] == "completed"


def test_objective_flag_on_recommend_and_its_errors(tmp_path, capsys):
    path = _f1_study(tmp_path, objective="val_accuracy")
    assert main(["recommend", "--project", str(path), "--objective", "val_macro_f1",
                 "--no-baseline", "--reports-dir", str(tmp_path / "r"),
                 "--experiments-dir", str(tmp_path / "e"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["objective"] == "val_macro_f1" and doc[0]["recommended"]["lr"] == 0.005
    saved = json.loads((tmp_path / "r" / "study" / "recommendations.json").read_text())
    assert saved["objective"] == "val_macro_f1" and "expected_val_macro_f1" in saved
    with pytest.raises(SystemExit) as e:
        main(["recommend", "--project", str(path), "--objective", "val_f1"])
    assert e.value.code == 2
    assert "invalid choice: 'val_f1'" in capsys.readouterr().err

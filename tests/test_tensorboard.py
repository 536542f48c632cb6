"""--tensorboard: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import pytest
from test_final import _sets
from test_search import FakeTrainer, run, study

from emotune.cli import main
from emotune.config import build_config, parse_sets
from emotune.progress import set_quiet
from emotune.scores import EPOCH_SCORES
from emotune.tensorboard import DIR, EpochScalars, read_events
from emotune.train import fit, load_inputs


class BoardTrainer(FakeTrainer):
    """FakeTrainer that accepts the callbacks a --tensorboard search passes (a fake trains no
    Keras model, so it writes no epochs; the trial summaries are the tuner's)."""

    def __call__(self, config, model=None, on_epoch=None, prefix="", callbacks=()):
        self.callbacks = callbacks
        return super().__call__(config, model, on_epoch, prefix)


def test_every_epoch_of_a_fit_becomes_a_scalar(tiny_sets, tmp_path):
    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=3", "patience=5"]))
    _, prepared, emb = load_inputs(config)
    r = fit(config, prepared, emb, callbacks=(EpochScalars(tmp_path / "run"),))
    scalars = read_events(tmp_path)["scalars"]["run"]
    for key in ("loss", "accuracy", *EPOCH_SCORES):
        steps = scalars[f"epoch/{key}"]
        assert [s for s, _ in steps] == [1, 2, 3]
        assert [v for _, v in steps] == pytest.approx(list(r.history[key]), rel=1e-6)


def test_a_search_fills_the_hparams_dashboard(tmp_path):
    run(tmp_path, study(["lr", "dropout"]), BoardTrainer(), tensorboard=True)
    events = read_events(tmp_path / "study" / DIR)
    assert sorted(events["config"]) == ["dropout", "lr"]
    sessions = events["hparams"]
    assert len(sessions) == 9  # the default once, 4 more learning rates, 4 more dropouts
    assert {round(v["lr"], 6) for v in sessions.values()} == {0.0001, 0.0005, 0.001, 0.005,
                                                             0.01}
    first = events["scalars"]["trial_0000"]
    assert first["trial/val_accuracy"][0][1] == pytest.approx(FakeTrainer.score(
        {"lr": 0.001, "dropout": 0.5, "optimizer": "adam"}, 42))
    assert first["trial/pruned"][0][1] == 0.0


def test_final_train_writes_scalars_and_its_test_numbers(bundle_root, tmp_path):
    set_quiet(True)
    assert main(["final-train", "--config", str(bundle_root / "tiny.yaml"),
                 *_sets(bundle_root, "epochs=2"), "--seeds", "5", "--tensorboard",
                 "--models-dir", str(tmp_path / "models"), "--reports-dir",
                 str(tmp_path / "reports")]) == 0
    events = read_events(tmp_path / "reports" / "tiny" / "final" / DIR)
    run_ = events["scalars"]["seed-5"]
    assert [s for s, _ in run_["epoch/val_macro_f1"]] == [1, 2]
    assert 0 <= run_["trial/test_accuracy"][0][1] <= 1
    assert events["hparams"]["seed-5"]["units"] == 16


@pytest.fixture
def bundle_root(final_bundle):
    return final_bundle[0].parent.parent

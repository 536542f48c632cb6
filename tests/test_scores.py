from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from emotune.noise import binomial_se
from emotune.scores import (
    EPOCH_SCORES,
    bootstrap_se,
    cross_entropies,
    epoch_scores,
    mean_loss,
    objective,
    target_entropy,
)


def _probs(n, k, seed=0, skill=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += skill
    p = np.exp(logits)
    return y, (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_kl_is_the_cross_entropy_with_one_hot_targets_and_not_with_smoothing():
    y = np.array([0, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    # by hand, one-hot: -log p(true)
    ce = -(math.log(0.7) + math.log(0.6)) / 2
    s = epoch_scores(y, probs, loss=0.0)
    assert s["val_cross_entropy"] == pytest.approx(ce, rel=1e-6)
    assert s["val_kl"] == pytest.approx(ce, rel=1e-6)
    # by hand, smoothing 0.3 over 3 labels: targets (0.8, 0.1, 0.1) and (0.1, 0.1, 0.8)
    t = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    p = probs.astype(float)
    ce_s = float(-(t * np.log(p)).sum(axis=1).mean())
    kl_s = float((t * np.log(t / p)).sum(axis=1).mean())
    s = epoch_scores(y, probs, loss=0.0, smoothing=0.3)
    assert s["val_cross_entropy"] == pytest.approx(ce_s, rel=1e-6)
    assert s["val_kl"] == pytest.approx(kl_s, rel=1e-6)
    assert s["val_cross_entropy"] - s["val_kl"] == pytest.approx(target_entropy(0.3, 3))
    assert target_entropy(0.0, 6) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_matches_scikit_learn_also_with_a_class_never_predicted(seed):
    y, probs = _probs(300, 6, seed, skill=0.8)
    probs[:, 5] = 0.0  # never predicted: its F1 is 0 (scikit-learn's zero_division=0)
    pred = probs.argmax(axis=1)
    s = epoch_scores(y, probs, loss=0.0)
    assert s["val_macro_f1"] == pytest.approx(f1_score(y, pred, average="macro",
                                                       zero_division=0), abs=1e-12)
    assert s["val_weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted",
                                                          zero_division=0), abs=1e-12)
    assert s["val_accuracy"] == pytest.approx((pred == y).mean())
    assert list(s) == list(EPOCH_SCORES)


def test_bootstrap_noise_shrinks_with_more_validation_texts_and_agrees_with_binomial():
    small = bootstrap_se(*_probs(200, 6, 0))
    large = bootstrap_se(*_probs(5000, 6, 0))
    for key in ("val_accuracy", "val_macro_f1", "val_weighted_f1"):
        assert 0 < large[key] < small[key] / 3  # 1/sqrt(25) = 1/5 in expectation
    y, probs = _probs(2000, 6, 3)
    acc = float((probs.argmax(1) == y).mean())
    se = bootstrap_se(y, probs)["val_accuracy"]
    assert se == pytest.approx(binomial_se(acc, 2000), rel=0.1)
    assert bootstrap_se(y, probs) == bootstrap_se(y, probs)  # seeded: the same every time


def test_loss_per_text_is_the_compiled_loss():
    import keras

    from emotune.layers import SmoothedLoss

    y, probs = _probs(50, 4, 1)
    mean, per_text = mean_loss("sparse_categorical_crossentropy", y, probs)
    assert per_text == pytest.approx(cross_entropies(y, probs), rel=1e-5)
    smoothed = SmoothedLoss(0.1, 4)
    mean, per_text = mean_loss(smoothed, y, probs)
    assert mean == pytest.approx(float(smoothed(y, probs)), rel=1e-5)
    assert per_text == pytest.approx(cross_entropies(y, probs, 0.1), rel=1e-4)
    assert isinstance(smoothed, keras.losses.Loss)


def test_objectives_know_their_direction():
    assert objective(None).name == "val_accuracy"
    assert objective("val_loss").better(0.3, 0.4)
    assert objective("val_macro_f1").better(0.6, 0.5)
    with pytest.raises(ValueError, match="expected one of val_accuracy, val_macro_f1"):
        objective("val_f1")


def test_every_epoch_logs_every_score_from_one_prediction_pass(tiny_fit):
    from emotune.train import predict_probs

    config, prepared, emb, r = tiny_fit
    for key in EPOCH_SCORES:
        assert r.history[key].notna().all(), key
    # the restored epoch's logged macro-F1 is scikit-learn's on the restored model's predictions
    best = r.metrics["best_epoch"] - 1
    pred = predict_probs(r.model, prepared.val).argmax(axis=1)
    sk = f1_score(prepared.val.labels, pred, average="macro", zero_division=0)
    assert r.history["val_macro_f1"].iloc[best] == pytest.approx(sk, abs=1e-12)
    assert r.metrics["val_macro_f1"] == pytest.approx(sk, abs=1e-12)
    assert (r.history["val_kl"] == r.history["val_cross_entropy"]).all()  # no smoothing
    assert 0 < r.metrics["val_macro_f1_se"] < 0.2

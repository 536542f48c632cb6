from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

from emotune.config import build_config, parse_sets
from emotune.data import Encoded
from emotune.errors import TrainingError
from emotune.train import (
    epoch_batches,
    eval_stream,
    fit,
    load_inputs,
    steps_per_epoch,
    train_stream,
    write_run,
)


def _encoded(n=203, max_len=12, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n).astype(np.int32)
    ids = np.zeros((n, max_len), dtype=np.int32)
    for i, L in enumerate(lengths):
        ids[i, :L] = rng.integers(2, 50, size=L)
    return Encoded(ids, lengths, np.arange(n, dtype=np.int32))  # label = row number


@pytest.mark.parametrize("batch", [1, 16, 32, 203, 500])
def test_epoch_batches_cover_every_row_once_and_pad_per_batch(batch):
    enc = _encoded()
    batches = epoch_batches(enc, batch, np.random.default_rng(1), chunk_batches=3)
    assert len(batches) == steps_per_epoch(203, batch)
    rows = np.concatenate([y for _, y in batches])
    assert sorted(rows.tolist()) == list(range(203))
    for x, y in batches:
        assert x.shape[1] == enc.lengths[y].max()  # padded to its own longest row
        np.testing.assert_array_equal(x, enc.ids[y, : x.shape[1]])


def test_epoch_batches_sort_within_chunks_and_reshuffle():
    enc = _encoded(n=1000, max_len=40)
    rng = np.random.default_rng(0)
    first = epoch_batches(enc, 10, rng, chunk_batches=50)
    second = epoch_batches(enc, 10, rng)
    # Length-sorted chunks: a batch's rows are close in length, so padding is small.
    padding = sum(x.size - enc.lengths[y].sum() for x, y in first)
    assert padding < 0.05 * enc.lengths.sum()
    assert [y.tolist() for _, y in first] != [y.tolist() for _, y in second]


def test_train_stream_is_the_epoch_batches_of_every_epoch_in_order():
    enc = _encoded(n=250, max_len=30)
    rng = np.random.default_rng(7)
    expected = [b for _ in range(3) for b in epoch_batches(enc, 16, rng)]
    got = [(x.numpy(), y.numpy()) for x, y in train_stream(enc, 16, seed=7, epochs=3)]
    assert len(got) == len(expected) == 3 * steps_per_epoch(250, 16)
    for (x, y), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(x, ex)  # same rows, same per-batch padding
        np.testing.assert_array_equal(y, ey)


def test_streams_are_fixed_batches_without_autotuning():
    enc = _encoded(n=600, max_len=30)
    batches = list(eval_stream(enc, batch_size=256))
    assert [len(y) for _, y in batches] == [256, 256, 88]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]),
                                  enc.ids[:, : enc.lengths.max()])
    # tf.data's autotuning thread made deleting an iterator block for up to ~30 s
    for stream in (eval_stream(enc), train_stream(enc, 16, seed=0, epochs=1)):
        assert stream.options().autotune.enabled is False


def test_fit_learns_is_deterministic_and_restores_the_best_epoch(tiny_fit):
    # The session's fit (trained earlier, whatever else has run in this process since) and a
    # second one now: clear_session + seeding make them identical.
    config, prepared, emb, a = tiny_fit
    b = fit(config, prepared, emb)
    assert a.metrics["val_accuracy"] > 0.8  # cue words make the tiny task easy; chance is 1/3
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    best = a.history["val_loss"].idxmin()
    assert a.metrics["best_epoch"] == best + 1
    # restore_best_weights: the reported val loss is the best epoch's, not the last one's.
    assert a.metrics["val_loss"] == pytest.approx(a.history["val_loss"][best], rel=1e-3)
    assert a.metrics["epochs_run"] == len(a.history) <= 8


def flip_after_first_epoch():
    """A callback that, once the first epoch is scored, flips the output layer's sign and
    stops learning: the first epoch stays the best, and val loss rises after it."""
    import keras

    class Flip(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                dense = self.model.get_layer("probs")
                dense.set_weights([-w for w in dense.get_weights()])
                self.model.optimizer.learning_rate.assign(0.0)

    return Flip()


def test_fit_gives_the_best_epochs_validation_predictions_bit_for_bit(tiny_sets):
    # fit scores the restored best epoch from ValidationScores' pass of that epoch instead of
    # predicting validation again: the two must be the same numbers. Once the first epoch
    # is scored, the output layer's sign is flipped and learning stops, so the first epoch
    # stays the best and the restored weights are not the last epoch's.
    from emotune.train import predict_probs

    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=3", "patience=5"]))
    _, prepared, emb = load_inputs(config)
    r = fit(config, prepared, emb, callbacks=(flip_after_first_epoch(),))
    assert (r.metrics["best_epoch"], r.metrics["epochs_run"]) == (1, 3)
    np.testing.assert_array_equal(r.val_probs, predict_probs(r.model, prepared.val))


def test_the_pruning_hook_is_not_asked_when_early_stopping_ends_the_run(tiny_sets):
    # At the epoch where early stopping stops training the trial has run to its end: a bar that
    # appears only then (the default finishing on another worker) must not call it pruned,
    # which would turn its complete number into a lower bound. The output layer is flipped
    # and learning stopped after epoch 1, so val loss rises and patience 1 stops at epoch 2.
    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=5", "patience=1"]))
    _, prepared, emb = load_inputs(config)
    asked = []
    r = fit(config, prepared, emb, callbacks=(flip_after_first_epoch(),),
            on_epoch=lambda epoch, logs: asked.append(epoch) or epoch >= 2)
    assert (r.metrics["epochs_run"], asked, r.stopped_by_hook) == (2, [1], False)
    r = fit(config, prepared, emb, on_epoch=lambda epoch, logs: True)  # a pruned trial
    assert (r.metrics["epochs_run"], r.stopped_by_hook) == (1, True)


def test_the_training_step_is_traced_once_with_the_same_numbers(tiny_sets):
    # Keras 3 creates the optimizer's and metrics' variables inside the first traced step when
    # they do not exist yet, and tf.function then traces the whole step again;
    # models.build_state creates them before fit. Every number must stay the same.
    from unittest import mock

    from emotune import models
    from emotune.train import new_model

    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=2"]))
    _, prepared, emb = load_inputs(config)

    def traces_and_history(**patch):
        with mock.patch.multiple(models, **patch) if patch else contextlib.nullcontext():
            model = new_model(config, prepared, emb)
        traced, step = [], model.train_step
        model.train_step = lambda data: traced.append(1) or step(data)
        r = fit(config, prepared, emb, model=model)
        return len(traced), r.history.drop(columns="seconds")

    once, built = traces_and_history()
    twice, deferred = traces_and_history(build_state=lambda *a, **k: None)
    assert once == 1
    assert twice >= once  # 2 with Keras 3.15's deferred build, what build_state avoids
    assert built.equals(deferred)


def test_steps_per_execution_is_cut_to_a_divisor_of_the_epoch():
    from emotune.models import exact_steps_per_execution

    assert exact_steps_per_execution(500, 16) == 10  # 16,000 texts at batch 32
    assert exact_steps_per_execution(125, 16) == 5
    assert exact_steps_per_execution(10, 16) == 10
    assert exact_steps_per_execution(13, 16) == 13
    assert exact_steps_per_execution(17, 16) == 1  # a prime: one batch per call
    assert exact_steps_per_execution(None, 16) == exact_steps_per_execution(500, 1) == 1


def test_several_steps_per_execution_give_the_same_numbers(tiny_fit):
    # Keras runs every call for all its steps, also past an epoch's end (10 steps at 4 per
    # call would train 12 a epoch); a divisor keeps each epoch's batches its own. The session's
    # fit ran at the default (16 asked: all 10 steps in one call).
    from dataclasses import replace

    from emotune.train import new_model

    config, prepared, emb, a = tiny_fit
    for asked, used in ((1, 1), (4, 2)):
        c = replace(config, train=replace(config.train, steps_per_execution=asked))
        model = new_model(c, prepared, emb)
        assert model.steps_per_execution == used
        b = fit(c, prepared, emb, model=model)
        assert int(model.optimizer.iterations.numpy()) == 10 * len(b.history)
        assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


def test_prediction_over_several_calls_keeps_every_row(tiny_fit):
    # 90 validation texts in batches of 8: 12 batches, two calls of up to 10 (the last short)
    config, prepared, emb, r = tiny_fit
    assert r.model.steps_per_execution == 10
    few = r.model.predict(eval_stream(prepared.val, batch_size=8), verbose=0)
    one = r.model.predict(eval_stream(prepared.val), verbose=0)
    assert few.shape == one.shape == (90, 3)
    np.testing.assert_allclose(few, one, rtol=1e-5, atol=1e-6)


def test_early_stopping_uses_patience(tiny_sets):
    # A learning rate of 0 never improves val loss: stop after 1 + patience epochs.
    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=10", "patience=2",
                                                            "optimizer=sgd", "lr=1e-12"]))
    _, prepared, emb = load_inputs(config)
    r = fit(config, prepared, emb)
    assert r.metrics["epochs_run"] == 3


def test_divergence_is_a_clear_error(tiny_sets):
    config = build_config(overrides=parse_sets(tiny_sets + ["optimizer=sgd", "lr=1e39",
                                                            "embedding=fine-tuned"]))
    _, prepared, emb = load_inputs(config)
    with pytest.raises(TrainingError, match="NaN .* lower the learning rate"):
        fit(config, prepared, emb)


def test_write_run_records_everything(tiny_fit, tmp_path):
    config, prepared, emb, result = tiny_fit
    run = write_run(tmp_path / "run", config, result, prepared, emb)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "history.csv",
                                                     "metrics.json"]
    m = json.loads((run / "metrics.json").read_text())
    for key in ("val_accuracy", "val_loss", "val_macro_f1", "seed", "data_checksum",
                "versions", "embedding", "best_epoch"):
        assert key in m
    assert m["data_checksum"] == prepared.checksum
    assert m["versions"]["tensorflow"] != "not installed"
    assert build_config(run / "config.yaml") == config  # the saved config reproduces the run
    assert not list(tmp_path.glob(".run.partial*"))


def test_fit_leaves_no_traced_graph_in_tensorflows_gradient_registry(tiny_sets):
    # A frozen embedding makes every gradient dense, and Keras's all-reduce then registers a
    # @custom_gradient per traced train step in a registry TensorFlow never empties: ~20 MB of
    # graph per trial before the fix (benchmarks/RESULTS.md, "Memory").
    import keras
    from tensorflow.python.framework import ops as tf_ops

    def custom() -> set[str]:
        return {k for k in tf_ops._gradient_registry._registry if k.startswith("CustomGradient")}

    class Registry(keras.callbacks.Callback):
        """What the registry holds at the end of training, still inside ``fit``."""

        def on_train_end(self, logs=None):
            self.at_end = custom()

    config = build_config(overrides=parse_sets(tiny_sets + ["epochs=1", "embedding=frozen"]))
    _, prepared, emb = load_inputs(config)
    before, seen = custom(), Registry()
    fit(config, prepared, emb, callbacks=(seen,))
    assert seen.at_end > before, "training registered no custom gradient: nothing tested"
    assert custom() == before  # and fit released them all


@pytest.mark.slow
def test_same_seed_same_cpu_gives_the_same_numbers_in_two_processes(tiny_sets, tmp_path):
    # Reproducibility as measured: two separate `emotune train` processes, same settings and
    # seed, on this machine: every per-epoch number agrees to 1e-6, and each run records the
    # code, command and CPU (model and SIMD level) that produced it.
    import subprocess
    import sys

    import pandas as pd

    runs = []
    for k in range(2):
        out = tmp_path / f"run-{k}"
        done = subprocess.run([sys.executable, "-m", "emotune", "train", *(
            a for s in [*tiny_sets, "epochs=4", "units=16", "lr=0.02"] for a in ("--set", s)),
            "--seed", "7", "--out", str(out)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append((pd.read_csv(out / "history.csv").drop(columns="seconds"),
                     json.loads((out / "metrics.json").read_text())))
    (h1, m1), (h2, m2) = runs
    assert list(h1.columns) == list(h2.columns) and len(h1) == len(h2) >= 2
    np.testing.assert_allclose(h1.to_numpy(float), h2.to_numpy(float), rtol=0, atol=1e-6)
    for key in ("val_accuracy", "val_loss", "val_macro_f1", "best_epoch"):
        assert m1[key] == pytest.approx(m2[key], abs=1e-6), key
    who = m1["provenance"]
    assert who["cpu"] == m2["provenance"]["cpu"] and who["simd"] in (
        "AVX-512", "AVX2", "AVX", "SSE4.2", "NEON", "unknown")
    assert who["command"].startswith("emotune train --set") and len(who["commit"]) >= 7
    assert {"tensorflow", "keras", "keras-tuner", "dirty", "emotune"} <= set(who)

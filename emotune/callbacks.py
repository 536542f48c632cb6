"""emotune's Keras callbacks: the per-epoch progress lines and the gradient-norm probe.

Importing this module imports Keras and TensorFlow, so train.py and final.py import it only when
they train.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from emotune.progress import bar, log

EpochHook = Callable[[int, dict], bool]  # (epoch from 1, logs) -> True to stop the trial


class EpochLog(keras.callbacks.Callback):
    """Per-epoch lines (a batch bar on a terminal); seconds per epoch; NaN and hook stops.

    Args:
        epochs: the most epochs the run may take (for "epoch 3/20").
        steps: training steps per epoch (for the batch bar).
        prefix: put before every line (trials indent theirs).
        on_epoch: ``(epoch from 1, logs) -> bool`` after each epoch; True stops training
            (a pruned trial: ``stopped_by_hook`` is then True). Not asked after an epoch
            where training stops anyway (early stopping, which must come before this callback,
            or a NaN loss): the trial has then run to its end, and its number is complete.
    """

    def __init__(self, epochs: int, steps: int, prefix: str = "",
                 on_epoch: EpochHook | None = None) -> None:
        super().__init__()
        self.epochs, self.steps, self.prefix, self.on_epoch = epochs, steps, prefix, on_epoch
        self.seconds: list[float] = []
        self.nan_epoch: int | None = None
        self.stopped_by_hook = False

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._t = time.perf_counter()
        self._bar = bar(self.steps, f"{self.prefix}epoch {epoch + 1}/{self.epochs}")
        self._done = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        # ``batch`` is the last step of the call: several with ``steps_per_execution``
        self._bar.update(batch + 1 - self._done)
        self._done = batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_epoch = self.nan_epoch or len(self.seconds) + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._bar.close()
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.seconds.append(time.perf_counter() - self._t)
        log(f"{self.prefix}epoch {epoch + 1:>2}/{self.epochs}  "
            f"loss {logs.get('loss', math.nan):.4f}  acc {logs.get('accuracy', math.nan):.4f}  "
            f"val_loss {logs.get('val_loss', math.nan):.4f}  "
            f"val_acc {logs.get('val_accuracy', math.nan):.4f}  "
            f"val_f1 {logs.get('val_macro_f1', math.nan):.4f}  {self.seconds[-1]:.1f}s")
        if self.on_epoch is None or self.model.stop_training:
            return
        if self.on_epoch(epoch + 1, logs):
            self.stopped_by_hook = True
            self.model.stop_training = True


class ValidationScores(keras.callbacks.Callback):
    """Validation once per epoch, done here instead of by Keras: one prediction pass over the
    validation texts and every ``scores.EPOCH_SCORES`` number from it (val loss, accuracy,
    macro- and weighted-F1, cross-entropy, KL divergence) put into the epoch's logs, where
    early stopping, pruning, the progress lines and History read them. It must come before
    them in the callbacks list.

    Args:
        data: the validation batches (``train.eval_stream``).
        y: their integer labels, in the same order.
        smoothing: the label smoothing the loss trains with (the targets of KL divergence).
        threshold: multi-label only: the probability at which a label is predicted.

    After training, ``probs`` holds each epoch's predictions (rows x labels). The restored
    best epoch's are the same forward pass on the same batches as predicting validation again
    (the same numbers on CPU: tests/test_train.py), so ``train.fit`` takes them instead.
    """

    def __init__(self, data: Any, y: Any, smoothing: float = 0.0,
                 threshold: float = 0.5) -> None:
        super().__init__()
        self.data, self.y, self.smoothing, self.threshold = data, y, smoothing, threshold
        self._forward: Any = None
        self.probs: list[Any] = []

    def on_train_begin(self, logs: Any = None) -> None:
        # The batches taken out of their tf.data pipeline once per fit and the forward pass
        # compiled once: iterating the pipeline every epoch slowed the training steps after
        # it by ~10% (benchmarks/RESULTS.md, "the scores' cost").
        model = self.model
        self._forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self._batches = [x for x, _ in self.data]
        self.probs = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        import numpy as np

        from emotune.scores import epoch_scores, mean_loss

        probs = np.concatenate([self._forward(x).numpy() for x in self._batches])
        self.probs.append(probs)
        loss, _ = mean_loss(self.model.loss, self.y, probs)
        if logs is not None:
            logs.update(epoch_scores(self.y, probs, loss, self.smoothing, self.threshold))


class GradientProbe(keras.callbacks.Callback):
    """Records, per epoch, the global gradient norm on a fixed batch and the learning rate.

    Args:
        x: token ids of the fixed batch (rows x tokens).
        y: their labels as the loss takes them (``train.label_array``).

    After training, ``rows`` holds one ``{"grad_norm", "learning_rate"}`` dict per epoch.
    """

    def __init__(self, x: Any, y: Any) -> None:
        super().__init__()
        multi = getattr(y, "ndim", 1) == 2
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.loss_fn = (keras.losses.BinaryCrossentropy() if multi
                        else keras.losses.SparseCategoricalCrossentropy())
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        with tf.GradientTape() as tape:
            loss = self.loss_fn(self.y, self.model(self.x, training=False))
        grads = tape.gradient(loss, self.model.trainable_variables)
        norm = tf.linalg.global_norm([g for g in grads if g is not None])
        lr = self.model.optimizer.learning_rate
        self.rows.append({"grad_norm": float(norm), "learning_rate": float(
            lr(self.model.optimizer.iterations) if callable(lr) else lr)})

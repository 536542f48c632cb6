"""emotune's own Keras objects: the pooling layer, the loss and the warm-up schedule.

Importing this module registers them with Keras (package ``emotune``), which loading a saved
model needs; it imports Keras, so the rest of emotune imports it only where a model is built or
loaded.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="emotune")
class MaskedPooling(keras.layers.Layer):
    """Max, mean or attention pooling over the time steps the mask keeps."""

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        if self.mode == "attention":  # Bahdanau-style: v . tanh(W h)
            self.w = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="w")
            self.v = self.add_weight(shape=(input_shape[-1], 1), name="v")

    def call(self, x: Any, mask: Any = None) -> Any:
        keep = (ops.ones(ops.shape(x)[:2], dtype=x.dtype) if mask is None
                else ops.cast(mask, x.dtype))[..., None]
        if self.mode == "max":
            return ops.max(x - (1.0 - keep) * 1e9, axis=1)
        if self.mode == "mean":
            return ops.sum(x * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        scores = ops.matmul(ops.tanh(ops.matmul(x, self.w)), self.v) - (1.0 - keep) * 1e9
        return ops.sum(x * ops.softmax(scores, axis=1), axis=1)

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="emotune")
class SmoothedLoss(keras.losses.Loss):
    """Cross-entropy on sparse labels with label smoothing and focal weighting (Keras's sparse
    losses have neither)."""

    def __init__(self, smoothing: float, num_classes: int, focal_gamma: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "smoothed_crossentropy"), **kwargs)
        self.smoothing, self.num_classes = smoothing, num_classes
        self.focal_gamma = focal_gamma

    def call(self, y_true: Any, y_pred: Any) -> Any:
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"),
                             self.num_classes)
        if self.focal_gamma:  # alpha=1: the weighting alone, no rescaling of the loss
            return keras.losses.categorical_focal_crossentropy(
                onehot, y_pred, alpha=1.0, gamma=self.focal_gamma,
                label_smoothing=self.smoothing)
        return keras.losses.categorical_crossentropy(onehot, y_pred,
                                                     label_smoothing=self.smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"smoothing": self.smoothing, "num_classes": self.num_classes,
                "focal_gamma": self.focal_gamma, "name": self.name}


@keras.saving.register_keras_serializable(package="emotune")
class MultiLabelLoss(keras.losses.Loss):
    """Binary cross-entropy per label, averaged over labels, with the multi-label variants:
    a weight on each label's positives (``pos_weight``, e.g. negatives / positives in training,
    so a rare label's misses cost as much as a frequent one's), focal weighting
    (``(1 - p_t)^gamma``, Lin et al. 2017) and label smoothing (targets ``y(1 - e) + e/2``).
    With none of them it is Keras's binary cross-entropy."""

    def __init__(self, pos_weight: list[float] | None = None, focal_gamma: float = 0.0,
                 smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "multi_label_crossentropy"), **kwargs)
        self.pos_weight = None if pos_weight is None else [float(w) for w in pos_weight]
        self.focal_gamma, self.smoothing = focal_gamma, smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y = ops.cast(y_true, y_pred.dtype)
        if self.smoothing:
            y = y * (1.0 - self.smoothing) + 0.5 * self.smoothing
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        pos, neg = -y * ops.log(p), -(1.0 - y) * ops.log(1.0 - p)
        if self.focal_gamma:
            pos = pos * ops.power(1.0 - p, self.focal_gamma)
            neg = neg * ops.power(p, self.focal_gamma)
        if self.pos_weight is not None:
            pos = pos * ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        return ops.mean(pos + neg, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {"pos_weight": self.pos_weight, "focal_gamma": self.focal_gamma,
                "smoothing": self.smoothing, "name": self.name}


@keras.saving.register_keras_serializable(package="emotune")
class WarmupThen(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``lr`` over ``warmup`` steps, then ``decay`` (a schedule that
    starts at step 0 where the warm-up ends)."""

    def __init__(self, decay: Any, lr: float, warmup: int) -> None:
        self.decay, self.lr, self.warmup = decay, lr, warmup

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        ramp = self.lr * step / float(self.warmup)
        return ops.where(step < self.warmup, ramp, self.decay(step - self.warmup))

    def get_config(self) -> dict[str, Any]:
        return {"decay": keras.saving.serialize_keras_object(self.decay), "lr": self.lr,
                "warmup": self.warmup}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WarmupThen:
        return cls(keras.saving.deserialize_keras_object(config["decay"]), config["lr"],
                   config["warmup"])

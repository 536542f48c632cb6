"""One model builder; encoders differ, everything around them is shared.

``build_model`` = token ids -> embedding (frozen, fine-tuned or multichannel) -> encoder ->
dropout -> softmax, compiled with the configured optimizer. Encoders live in ``ENCODERS``; adding
one is a function and a decorator. RNN settings stay cuDNN-compatible (tanh/sigmoid, no
recurrent dropout, no unroll, right padding) so the same model runs the fast kernel on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emotune.config import ModelConfig, TrainConfig
from emotune.errors import ConfigError

Encoder = Callable[[Any, ModelConfig], Any]
ENCODERS: dict[str, Encoder] = {}


def encoder(name: str) -> Callable[[Encoder], Encoder]:
    def register(fn: Encoder) -> Encoder:
        ENCODERS[name] = fn
        return fn

    return register


def _rnn(layer_cls: Any, x: Any, cfg: ModelConfig) -> Any:
    """``cfg.layers`` stacked RNNs (cuDNN-compatible defaults), pooled by ``cfg.pooling``."""
    from keras import layers

    for i in range(cfg.layers):
        sequences = i < cfg.layers - 1 or cfg.pooling != "last"
        layer = layer_cls(cfg.units, return_sequences=sequences)
        x = (layers.Bidirectional(layer) if cfg.bidirectional else layer)(x)
    from emotune.layers import MaskedPooling

    return x if cfg.pooling == "last" else MaskedPooling(cfg.pooling)(x)



@encoder("gru")
def gru(x: Any, cfg: ModelConfig) -> Any:
    from keras import layers

    return _rnn(layers.GRU, x, cfg)


@encoder("lstm")
def lstm(x: Any, cfg: ModelConfig) -> Any:
    from keras import layers

    return _rnn(layers.LSTM, x, cfg)


@encoder("cnn")
def cnn(x: Any, cfg: ModelConfig) -> Any:
    """Kim (2014): parallel convolutions of several widths, each max-pooled over time."""
    from keras import layers

    pooled = [
        layers.GlobalMaxPooling1D()(
            layers.Conv1D(cfg.units, k, padding="same", activation="relu")(x))
        for k in cfg.kernel_sizes
    ]
    return pooled[0] if len(pooled) == 1 else layers.Concatenate()(pooled)


def learning_rate(cfg: TrainConfig, steps_per_epoch: int | None) -> Any:
    """``cfg.lr``, or a schedule: linear warm-up, then constant, cosine or linear decay to 0."""
    import keras

    if (cfg.schedule == "constant" and not cfg.warmup_epochs) or not steps_per_epoch:
        return cfg.lr
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)
    schedules = keras.optimizers.schedules
    if cfg.schedule == "cosine":
        decay = schedules.CosineDecay(cfg.lr, total - warmup)
    else:  # linear to 0, or constant: a "decay" from lr to lr
        end = cfg.lr if cfg.schedule == "constant" else 0.0
        decay = schedules.PolynomialDecay(cfg.lr, total - warmup, end, power=1.0)
    if not warmup:
        return decay
    from emotune.layers import WarmupThen

    return WarmupThen(decay, cfg.lr, warmup)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int | None = None) -> Any:
    import keras

    kwargs: dict[str, Any] = {"learning_rate": learning_rate(cfg, steps_per_epoch)}
    if cfg.clipnorm is not None:
        kwargs["clipnorm"] = cfg.clipnorm
    if cfg.weight_decay:
        kwargs["weight_decay"] = cfg.weight_decay
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(**{"weight_decay": 0.0, **kwargs})
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(**kwargs)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**kwargs)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=cfg.momentum, **kwargs)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}: expected adam, adamw, rmsprop "
                      f"or sgd")


def make_loss(cfg: TrainConfig, num_classes: int, multi_label: bool = False,
              pos_weight: np.ndarray | None = None) -> Any:
    """Sparse cross-entropy; label smoothing and focal weighting when asked (Keras's sparse
    losses have neither). Multi-label: binary cross-entropy per label, with ``pos_weight``
    (``class_weight: balanced``), focal weighting and smoothing when asked."""
    if multi_label:
        if pos_weight is None and not cfg.focal_gamma and not cfg.label_smoothing:
            return "binary_crossentropy"
        from emotune.layers import MultiLabelLoss

        return MultiLabelLoss(None if pos_weight is None else list(pos_weight),
                              cfg.focal_gamma, cfg.label_smoothing)
    if not cfg.label_smoothing and not cfg.focal_gamma:
        return "sparse_categorical_crossentropy"
    from emotune.layers import SmoothedLoss

    return SmoothedLoss(cfg.label_smoothing, num_classes, cfg.focal_gamma)



def _embedding(matrix: np.ndarray, trainable: bool, mask: bool, name: str) -> Any:
    from keras import layers

    # Weights are set after build: an initializer holding the matrix would be written into
    # the model's JSON config.
    layer = layers.Embedding(matrix.shape[0], matrix.shape[1], mask_zero=mask,
                             trainable=trainable, name=name)
    layer.build((None, None))
    layer.set_weights([matrix])
    return layer


def build_model(model: ModelConfig, train: TrainConfig, embedding: np.ndarray,
                num_classes: int, steps_per_epoch: int | None = None, *,
                multi_label: bool = False, pos_weight: np.ndarray | None = None) -> Any:
    """A compiled Keras model for ``model.type`` over ``embedding`` (vocab x dim).

    Token ids -> embedding (frozen, fine-tuned or both as two channels) -> the encoder of
    ``ENCODERS[model.type]`` -> dropout -> softmax over ``num_classes``, compiled with the
    optimizer, learning-rate schedule and loss of ``train``.

    Args:
        model: the model settings (type, units, embedding mode, dropout, ...).
        train: the training settings the optimizer, schedule and loss come from.
        embedding: the vocabulary-aligned matrix (row i = word id i; row 0 = padding).
        num_classes: the number of labels.
        steps_per_epoch: needed by learning-rate schedules (warm-up, cosine, linear) and to
            keep ``train.steps_per_execution`` exact (``exact_steps_per_execution``).
        multi_label: several labels per text: sigmoid outputs, binary cross-entropy, and
            "accuracy" is the per-label (binary) accuracy.
        pos_weight: multi-label only: the weight of each label's positives in the loss.

    Returns:
        A compiled ``keras.Model`` from int32 token ids (batch x tokens) to probabilities.

    Raises:
        ConfigError: an unknown model type or optimizer.

    Example:
        >>> net = build_model(ModelConfig(type="gru", units=64), TrainConfig(), matrix, 6)
        ... # doctest: +SKIP
    """
    import keras
    from keras import layers

    if model.type not in ENCODERS:
        raise ConfigError(f"unknown model {model.type!r}: expected one of "
                          f"{', '.join(sorted(ENCODERS))}")
    mask = model.mask and model.type != "cnn"
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    if model.embedding == "multichannel":
        x = layers.Concatenate(name="channels")([
            _embedding(embedding, False, mask, "embedding_static")(ids),
            _embedding(embedding, True, mask, "embedding_tuned")(ids),
        ])
    else:
        x = _embedding(embedding, model.embedding == "fine-tuned", mask, "embedding")(ids)
    if model.spatial_dropout:
        x = layers.SpatialDropout1D(model.spatial_dropout)(x)
    x = ENCODERS[model.type](x, model)
    x = layers.Dropout(model.dropout)(x)
    out = layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax",
                       dtype="float32", name="probs")(x)
    net = keras.Model(ids, out, name=f"emotune_{model.type}")
    accuracy = keras.metrics.BinaryAccuracy(name="accuracy") if multi_label else "accuracy"
    net.compile(optimizer=make_optimizer(train, steps_per_epoch),
                loss=make_loss(train, num_classes, multi_label, pos_weight),
                metrics=[accuracy],
                steps_per_execution=exact_steps_per_execution(steps_per_epoch,
                                                              train.steps_per_execution))
    build_state(net, num_classes, multi_label)
    return net


def build_state(net: Any, num_classes: int, multi_label: bool = False) -> None:
    """Create the optimizer's, loss's and metrics' variables of compiled ``net`` now, from
    symbolic batches, instead of inside its first traced training step.

    Keras 3 on TensorFlow defers them to that trace when no distribution strategy is set
    (``Trainer._maybe_symbolic_build``), and a ``tf.function`` whose first trace creates
    variables is traced again: the whole step (forward pass, gradient, optimizer update) twice,
    2 s of every model's first epoch on a 2-core machine (benchmarks/RESULTS.md, "Per-model
    fixed costs"). This is the build Keras itself runs first with a strategy; the variables
    start at zero either way and no random numbers are drawn, so every number is the same
    (tests/test_train.py). A private Keras method: where it is missing or takes other
    arguments, the step is traced twice as before and nothing else changes.
    """
    import keras

    symbolic = getattr(net, "_symbolic_build", None)
    if symbolic is None:
        return
    y = (keras.KerasTensor((None, num_classes), "float32") if multi_label
         else keras.KerasTensor((None,), "int32"))
    try:
        symbolic(data_batch=(keras.KerasTensor((None, None), "int32"), y))
    except TypeError:
        return


def exact_steps_per_execution(steps_per_epoch: int | None, requested: int) -> int:
    """The largest number of batches per compiled call, at most ``requested``, that divides
    an epoch's steps.

    Keras 3 runs every call for its full ``steps_per_execution`` batches, also the last call
    of an epoch: with 500 steps and 16 per call an epoch trains 512 batches, 12 of them taken
    from the next epoch's shuffle, and every later number moves. With a divisor (500 -> 10)
    each epoch trains exactly its own batches and the results are the same as one batch per
    call (tests/test_train.py). Unknown steps (no schedule needs them): one per call.
    """
    if not steps_per_epoch or requested <= 1:
        return 1
    return max(d for d in range(1, min(requested, steps_per_epoch) + 1)
               if steps_per_epoch % d == 0)

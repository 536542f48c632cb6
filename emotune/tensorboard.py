"""TensorBoard event files (``--tensorboard``): per-epoch scalars and the HParams plugin's
summaries, so that ``tensorboard --logdir <project>/tensorboard`` shows a study in the HParams
dashboard that Keras and KerasTuner users know.

Layout under a log folder: ``hparams_config`` at its top (the searched parameters with their
values, and the metrics); one run per trial, ``trial_<id>/``, holding the trial's hyperparameters
and its numbers (``trial/val_accuracy``, ``trial/val_macro_f1``, ``trial/val_loss``: means over
its seeds at the restored epoch, and ``trial/pruned``); and one run per seed,
``trial_<id>/seed-<n>/``, with every epoch's scalars (``epoch/loss``, ``epoch/val_macro_f1``,
...). A final run writes ``seed-<n>/`` (or ``run/``) with both. Importing this module imports
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

DIR = "tensorboard"  # under a study folder, or a final report folder
TRIAL_METRICS = ("val_accuracy", "val_macro_f1", "val_loss")


def _value(v: Any) -> bool | int | float | str:
    """A hyperparameter value as the HParams plugin takes it (lists and None as text)."""
    return v if isinstance(v, (bool, int, float, str)) else str(v)


def write_study_config(logdir: Path, values: Mapping[str, Sequence[Any]],
                       metrics: Sequence[str] = TRIAL_METRICS) -> None:
    """The HParams dashboard's columns: each searched parameter with its values, and the trial
    metrics (``trial/<name>``)."""
    params = [hp.HParam(name, hp.Discrete([_value(v) for v in vals]) if vals and len(
        {type(_value(v)) for v in vals}) == 1 else None) for name, vals in values.items()]
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hp.hparams_config(hparams=params, metrics=[
            hp.Metric(f"trial/{m}", display_name=m) for m in metrics])


def write_run_summary(logdir: Path, hparams: Mapping[str, Any], metrics: Mapping[str, float],
                      run_id: str, step: int = 0) -> None:
    """One HParams session: the run's hyperparameters and its numbers as ``trial/<name>``."""
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp.hparams({k: _value(v) for k, v in hparams.items()}, trial_id=run_id)
        for name, value in metrics.items():
            if value is not None:
                tf.summary.scalar(f"trial/{name}", float(value), step=step)
    writer.close()


class EpochScalars(keras.callbacks.Callback):
    """Every number of every epoch's logs (training loss and accuracy, and the validation
    scores ``callbacks.ValidationScores`` put there) as ``epoch/<name>`` at step = epoch."""

    def __init__(self, logdir: Path) -> None:
        super().__init__()
        self.logdir = logdir
        self._writer: Any = None

    def on_train_begin(self, logs: Any = None) -> None:
        self._writer = tf.summary.create_file_writer(str(self.logdir))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        with self._writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", float(value), step=epoch + 1)

    def on_train_end(self, logs: Any = None) -> None:
        self._writer.close()


def read_events(logdir: Path) -> dict[str, Any]:
    """What a log folder holds, read back from its event files (for tests and checks):
    ``{"scalars": {run: {tag: [(step, value), ...]}}, "hparams": {run: {name: value}},
    "config": [parameter names]}``, runs named by their folder relative to ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out: dict[str, Any] = {"scalars": {}, "hparams": {}, "config": []}
    for folder in sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")}):
        run = str(folder.relative_to(logdir)) if folder != Path(logdir) else "."
        acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("tensors", []):
            if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
                continue  # the HParams plugin's, read below
            events = acc.Tensors(tag)
            out["scalars"].setdefault(run, {})[tag] = [
                (e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events]
        try:
            plugins = acc.PluginTagToContent("hparams")
        except KeyError:  # no HParams summary in this run
            plugins = {}
        for content in plugins.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                values = data.session_start_info.hparams
                out["hparams"][run] = {k: _read_value(v) for k, v in values.items()}
            elif data.HasField("experiment"):
                out["config"] = [h.name for h in data.experiment.hparam_infos]
    return out


def _read_value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None

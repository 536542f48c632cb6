"""The search space, defined once: the tunable parameters, and ``SearchSpace``, which declares
them on KerasTuner's ``hp`` and maps ``hp`` values back to a Config (the HyperModel that uses it
is ``tuner.EmotuneHyperModel``).

``PARAMS`` names each tunable parameter and the setting it drives; its values (sweep values in
one-at-a-time studies, choices in joint searches) come from ``search.sweeps`` in
``experiments/defaults.yaml``, and its default is the model/train setting. Adding a parameter is
one line here and one list in the YAML.

One-at-a-time sweeps become a single KerasTuner hyperparameter ``point`` whose values are the
distinct configurations: the default one, then each sweep's other values. A configuration shared
by several sweeps (always the default) is therefore one point, trained once.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from typing import Any

from emotune.config import Config, override, plain
from emotune.errors import ConfigError

POINT = "point"  # the hyperparameter of one-at-a-time studies
DEFAULT_POINT = "default"
REPEAT = "repeat"  # racing studies: which extra seed of a configuration (0: its first)


@dataclass(frozen=True)
class Param:
    name: str
    key: str  # the setting it drives, as accepted by --set
    label: str  # shown in tables and figures
    log: bool = False  # plotted on a log axis
    aliases: tuple[str, ...] = ()


PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("lr", "train.lr", "Learning Rate", log=True, aliases=("learning_rate",)),
    Param("batch_size", "train.batch_size", "Batch Size", aliases=("batch",)),
    Param("units", "model.units", "Units", aliases=("filters",)),
    Param("dropout", "model.dropout", "Dropout"),
    Param("optimizer", "train.optimizer", "Optimizer"),
    Param("embedding", "model.embedding", "Embedding", aliases=("embedding_mode",)),
    # beyond the six of the seed notebooks: searched only when named
    Param("bidirectional", "model.bidirectional", "Bidirectional"),
    Param("layers", "model.layers", "Layers"),
    Param("pooling", "model.pooling", "Pooling"),
    Param("spatial_dropout", "model.spatial_dropout", "Spatial Dropout"),
    Param("kernel_sizes", "model.kernel_sizes", "Kernel Sizes"),
    Param("schedule", "train.schedule", "LR Schedule"),
    Param("warmup_epochs", "train.warmup_epochs", "Warm-up Epochs"),
    Param("clipnorm", "train.clipnorm", "Clip Norm"),
    Param("label_smoothing", "train.label_smoothing", "Label Smoothing"),
    Param("class_weight", "train.class_weight", "Class Weight"),
    Param("focal_gamma", "train.focal_gamma", "Focal Gamma", aliases=("focal",)),
    Param("weight_decay", "train.weight_decay", "Weight Decay", log=True),
)}
CORE = ("lr", "batch_size", "units", "dropout", "optimizer", "embedding")  # --param all


def resolve_param(name: str) -> str:
    """A parameter name or alias -> its name; unknown names raise with a suggestion."""
    for p in PARAMS.values():
        if name == p.name or name in p.aliases:
            return p.name
    names = [*PARAMS, *(a for p in PARAMS.values() for a in p.aliases)]
    hint = difflib.get_close_matches(name, names, n=1)
    did = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"unknown parameter {name!r}.{did} Expected one of "
                      f"{', '.join(PARAMS)} or all")


def default_value(config: Config, name: str) -> Any:
    section, field = PARAMS[name].key.split(".")
    return plain(getattr(getattr(config, section), field))


def same_setting(a: Any, b: Any) -> bool:
    """Equal setting values: lists and tuples alike, None and NaN alike (pandas' nulls)."""
    def null(x: Any) -> bool:
        return x is None or (isinstance(x, float) and math.isnan(x))

    if null(a) or null(b):
        return null(a) and null(b)
    return bool(plain(a) == plain(b))


def values_of(config: Config, name: str) -> tuple:
    """The sweep values of ``name``, each checked by building a config with it."""
    if name not in config.search.sweeps:
        raise ConfigError(f"no sweep values for {name!r}: add search.sweeps.{name} to your "
                          f"config, e.g. --set sweeps.{name}=[...]")
    values = tuple(plain(v) for v in config.search.sweeps[name])
    for v in values:
        override(config, {PARAMS[name].key: v})  # raises a ConfigError for a bad value
    return values


def hp_values(config: Config) -> dict[str, Any]:
    """The tunable parameters' values in ``config`` (the trials.csv columns)."""
    return {name: default_value(config, name) for name in PARAMS}


def apply(config: Config, values: dict[str, Any]) -> Config:
    """``config`` with parameter values (by parameter name) applied."""
    return override(config, {PARAMS[n].key: v for n, v in values.items() if n in PARAMS})


# ---------------------------------------------------------------- one-at-a-time sweeps


def _label(name: str, value: Any) -> str:
    return f"{name}={value}"


def sweep_points(config: Config, names: list[str]) -> dict[str, dict[str, Any]]:
    """Point label -> the parameter values it sets; the default point first, no duplicates."""
    points: dict[str, dict[str, Any]] = {DEFAULT_POINT: {}}
    for name in names:
        default = default_value(config, name)
        for v in values_of(config, name):
            if v != default:
                points.setdefault(_label(name, v), {name: v})
    return points


def sweeps_of(values: dict[str, Any], config: Config, names: list[str]) -> list[str]:
    """The sweeps a configuration belongs to: all of them for the default one."""
    differing = [n for n in names if values[n] != default_value(config, n)]
    if not differing:
        return list(names)
    return differing if len(differing) == 1 else []


# ---------------------------------------------------------------- KerasTuner's view


class SearchSpace:
    """Declares the space on a KerasTuner ``HyperParameters`` and reads configs back from it."""

    def __init__(self, base: Config, params: list[str], sweep: bool, race: int = 0) -> None:
        self.base = base
        self.params = params
        self.sweep = sweep
        self.race = race  # racing: up to this many seeds per configuration, as REPEAT 0..race-1
        self.points = sweep_points(base, params) if sweep else {}
        self.choices = {n: values_of(base, n) for n in params} if not sweep else {}

    def declare(self, hp: Any) -> None:
        if self.race:
            hp.Choice(REPEAT, list(range(self.race)), default=0, ordered=True)
        if self.sweep:
            hp.Choice(POINT, list(self.points), default=DEFAULT_POINT, ordered=False)
            return
        for name, values in self.choices.items():
            default = default_value(self.base, name)
            values = list(values) if default in values else [default, *values]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in values)
            if name in self.encoded:  # KerasTuner's Choice takes scalars only
                values, default = [json.dumps(v) for v in values], json.dumps(default)
            hp.Choice(name, values, default=default, ordered=numeric)

    @property
    def encoded(self) -> set[str]:
        """Parameters whose choices are lists or null, given to KerasTuner as JSON text."""
        return {n for n, values in self.choices.items()
                if any(v is None or isinstance(v, list) for v in values)}

    def config_for(self, hp_values_: dict[str, Any]) -> Config:
        """The full Config of a trial from its KerasTuner hyperparameter values."""
        if self.sweep:
            return apply(self.base, self.points[hp_values_[POINT]])
        encoded = self.encoded
        config = apply(self.base, {n: json.loads(hp_values_[n]) if n in encoded else hp_values_[n]
                                   for n in self.params if n in hp_values_})
        epochs = hp_values_.get("tuner/epochs")  # Hyperband's budget for this trial
        if epochs is not None:
            config = dataclasses.replace(
                config, train=dataclasses.replace(config.train, epochs=int(epochs)))
        return config

    def groups(self, hp_values_: dict[str, Any]) -> list[str]:
        """The races a configuration runs in: in one-at-a-time studies its sweeps (all of them
        for the default point), in a grid the whole grid."""
        if not self.sweep:
            return ["grid"]
        point = hp_values_[POINT]
        return list(self.params) if point == DEFAULT_POINT else list(self.points[point])

    def size(self) -> int | None:
        """Number of trials a sweep has; None for joint searches (bounded by trials)."""
        return len(self.points) if self.sweep else None

    def cost(self, hp_values_: dict[str, Any]) -> float:
        """The relative expected training time of a trial (``expected_cost``), by its
        KerasTuner values; for scheduling the longest first."""
        values = {k: v for k, v in hp_values_.items() if k != REPEAT}
        return expected_cost(self.config_for(values))


# ---------------------------------------------------------------- scheduling


def expected_cost(config: Config) -> float:
    """A trial's expected training time in arbitrary units, to schedule the longest first so
    that no worker is left alone at the end of a study; nothing else depends on it.

    Per training text: a fixed per-step cost shared by the batch (~8 ms a step on 2 cores),
    plus the recurrent arithmetic, which grows with units about as measured for a masked GRU
    at 32 tokens (CALIBRATION.md: ~9 ms a step of 32 texts at 16 units, ~21 at 128, ~90 at
    384); times layers and directions, +15% for a fine-tuned embedding, times the epochs.
    Early stopping, which depends on the learning rate, is not predicted.

    Example:
        >>> wide = override(base, {"model.units": 256})  # doctest: +SKIP
        >>> expected_cost(wide) > expected_cost(base)  # doctest: +SKIP
        True
    """
    m, t = config.model, config.train
    arithmetic_ms = 0.05 * m.units + 4e-4 * m.units ** 2  # a step of 32 texts
    per_text = 8.0 / t.batch_size + arithmetic_ms / 32
    per_text *= (2 if m.bidirectional else 1) * m.layers
    if m.embedding != "frozen":
        per_text *= 1.15
    return per_text * t.epochs

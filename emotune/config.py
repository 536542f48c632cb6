"""Settings: frozen dataclasses, loaded from YAML and ``--set key=value`` overrides.

Layers, each overriding the one before: ``experiments/defaults.yaml`` (shipped inside the package
as ``emotune/defaults.yaml``), an optional ``--config FILE`` holding any subset of its keys, and
``--set`` pairs. A key is ``section.name`` or, when unambiguous, just ``name``; a few aliases
(``lr``, ``batch``, ``embedding_mode``...) are accepted too.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emotune.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")

MODEL_TYPES = ("gru", "lstm", "cnn")
EMBEDDING_MODES = ("frozen", "fine-tuned", "multichannel")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
POOLINGS = ("last", "max", "mean", "attention")
SCHEDULES = ("constant", "cosine", "linear")
OBJECTIVES = ("val_accuracy", "val_macro_f1", "val_micro_f1", "val_loss")  # scores.OBJECTIVES
MONITORS = ("val_loss", "val_accuracy", "val_macro_f1", "val_micro_f1")  # early stopping
CLASS_WEIGHTS = ("none", "balanced")


def _check(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(
            f"`{key}` must be {expected}. Received: {key}={value!r}. "
            f"Fix it in your config file or with --set {key}=..."
        )


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"unknown {key} {value!r}: expected one of {', '.join(choices)}.{did}"
        )


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # a directory of split files, or one file to split; None: default
    dataset: str = "emotion"
    text_column: str = "text"
    label_column: str = "label"
    label_names: tuple[str, ...] | None = None  # maps integer labels to names, in order
    val_fraction: float = 0.1  # used only when the data has no val split
    test_fraction: float = 0.1  # used only when the data has no test split
    split_seed: int = 42
    max_len_percentile: float = 100.0
    min_count: int = 1
    multi_label: bool | None = None  # several labels per text; None: detected from the files

    def __post_init__(self) -> None:
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            _check(0 < v < 1, key, v, "between 0 and 1 (exclusive)")
        _check(self.val_fraction + self.test_fraction < 1, "val_fraction",
               self.val_fraction, "less than 1 - test_fraction")
        _check(0 < self.max_len_percentile <= 100, "max_len_percentile",
               self.max_len_percentile, "in (0, 100]")
        _check(self.min_count >= 1, "min_count", self.min_count, "an integer >= 1")


@dataclass(frozen=True)
class EmbeddingsConfig:
    source: str = "glove-6b-50d"  # the packaged vectors, or a GloVe .txt / .zip path
    member: str | None = None  # which .txt inside a .zip holding several
    cache_dir: str = "embeddings"
    oov_seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    type: str = "gru"
    units: int = 128  # RNN units, or CNN filters per kernel size
    bidirectional: bool = False
    mask: bool = True  # RNNs skip padding; CNNs ignore this
    dropout: float = 0.5
    embedding: str = "frozen"  # frozen | fine-tuned | multichannel
    kernel_sizes: tuple[int, ...] = (3, 4, 5)
    layers: int = 1  # stacked RNN layers
    pooling: str = "last"  # RNN outputs -> one vector: last state, max, mean or attention
    spatial_dropout: float = 0.0  # drops whole embedding channels

    def __post_init__(self) -> None:
        _one_of("model", self.type, MODEL_TYPES)
        _one_of("embedding mode", self.embedding, EMBEDDING_MODES)
        _one_of("pooling", self.pooling, POOLINGS)
        _check(self.units >= 1, "units", self.units, "an integer >= 1")
        _check(self.layers >= 1, "layers", self.layers, "an integer >= 1")
        _check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        _check(0 <= self.spatial_dropout < 1, "spatial_dropout", self.spatial_dropout,
               "in [0, 1)")
        _check(len(self.kernel_sizes) > 0 and all(k >= 1 for k in self.kernel_sizes),
               "kernel_sizes", list(self.kernel_sizes), "a non-empty list of integers >= 1")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 0.001
    momentum: float = 0.0  # sgd only
    clipnorm: float | None = None
    batch_size: int = 32
    epochs: int = 10
    patience: int = 3
    monitor: str = "val_loss"  # early stopping watches this: val_loss or an objective
    seed: int = 42
    steps_per_execution: int = 16  # batches per call at most (a divisor of the epoch's steps)
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay
    schedule: str = "constant"  # learning rate: constant, cosine or linear decay to 0
    warmup_epochs: float = 0.0  # linear warm-up from 0 over this many epochs
    label_smoothing: float = 0.0
    class_weight: str = "none"  # none | balanced (weights inversely proportional to counts)
    focal_gamma: float = 0.0  # focal loss (1 - p)^gamma weighting; 0 = plain cross-entropy
    threshold: float = 0.5  # multi-label: a label is predicted from this probability (training
    # and search; final-train tunes the bundle's thresholds on validation by threshold_rule)
    threshold_rule: str = "per-label"  # multi-label final-train: per-label | global | fixed

    def __post_init__(self) -> None:
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("class_weight", self.class_weight, CLASS_WEIGHTS)
        _one_of("monitor", self.monitor, MONITORS)
        _one_of("threshold_rule", self.threshold_rule, ("per-label", "global", "fixed"))
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, ">= 0")
        _check(self.focal_gamma >= 0, "focal_gamma", self.focal_gamma, ">= 0 (0 = off)")
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing,
               "in [0, 1)")
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(0 < self.threshold < 1, "threshold", self.threshold, "in (0, 1)")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _check(self.clipnorm is None or self.clipnorm > 0, "clipnorm", self.clipnorm,
               "> 0 or null")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.patience >= 1, "patience", self.patience, "an integer >= 1")
        _check(self.steps_per_execution >= 1, "steps_per_execution", self.steps_per_execution,
               "an integer >= 1")


def parse_repeats(text: str | int) -> tuple[int, int]:
    """``search.repeats`` -> (seeds per trial, most seeds per value when racing, else 0):
    "3" -> (3, 0), "auto" -> (1, 3), "auto:5" -> (1, 5). Raises ValueError."""
    text = str(text).strip().lower()
    if text == "auto":
        return 1, 3
    if text.startswith("auto:"):
        most = int(text[5:])
        if most < 2:
            raise ValueError(text)
        return 1, most
    k = int(text)
    if k < 1:
        raise ValueError(text)
    return k, 0


def _repeats_ok(text: str) -> bool:
    try:
        parse_repeats(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SearchConfig:
    # name -> values of its one-at-a-time sweep (and its choices in joint searches); the names
    # are those of emotune.space.PARAMS, each sweep's default is the model/train value
    sweeps: dict[str, tuple] = field(default_factory=dict)
    # What trials are ranked by (emotune.scores.OBJECTIVES): each trial's value at the epoch
    # early stopping restores; a recommendation's noise is that value's (binomial for
    # accuracy, bootstrap over the validation texts for macro-F1 and loss).
    objective: str = "val_accuracy"
    trials: int = 20  # joint searches: at most this many trials
    # Seeds per configuration: "K" trains each with K seeds (mean and std kept); "auto" or
    # "auto:MAX" races them: one seed each, then more (up to MAX, default 3) only for the
    # values still within noise of the best (search.parse_repeats).
    repeats: str = "1"
    # Stop a trial whose objective so far (val accuracy at its best val loss) trails, at the
    # same epoch, the default configuration's (one-at-a-time sweeps) or the median of the
    # finished trials' (grid, bayesian, random) by more than prune_z standard errors of the
    # difference (binomial, on the validation size); never in Hyperband, which budgets
    # epochs itself, and never a racing trial's extra seed. On by default (--no-prune).
    prune: bool = True
    prune_warmup: int = 2  # epochs before a trial may be pruned
    prune_min_trials: int = 3  # joint searches: finished trials needed before pruning starts
    prune_z: float = 2.0  # how many standard errors a trial must trail by to be stopped
    hyperband_factor: int = 3
    # Trials at a time (--workers): "auto" is one worker process per core where memory
    # allows (cluster.auto_workers), a single process on one core; or a number.
    workers: str = "auto"

    def __post_init__(self) -> None:
        _check(self.trials >= 1, "trials", self.trials, "an integer >= 1")
        _one_of("objective", self.objective, OBJECTIVES)
        _check(self.workers == "auto" or (self.workers.isdigit() and int(self.workers) >= 1),
               "workers", self.workers, "auto or an integer >= 1")
        _check(_repeats_ok(self.repeats), "repeats", self.repeats,
               "an integer >= 1, auto, or auto:MAX with MAX >= 2")
        _check(self.prune_z >= 0, "prune_z", self.prune_z, "a number >= 0")
        _check(self.prune_warmup >= 1, "prune_warmup", self.prune_warmup, "an integer >= 1")
        _check(self.prune_min_trials >= 1, "prune_min_trials", self.prune_min_trials,
               "an integer >= 1")
        _check(self.hyperband_factor >= 2, "hyperband_factor", self.hyperband_factor,
               "an integer >= 2")
        for name, values in self.sweeps.items():
            _check(len(values) > 0, f"sweeps.{name}", list(values), "a non-empty list")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = dataclasses.asdict(self)
        return plain(out)


def plain(value: Any) -> Any:
    """A setting value as plain Python, so YAML, JSON and comparisons agree: tuples -> lists
    (recursively, dicts too), numpy and pandas scalars -> Python numbers.

    Example: ``plain({"kernel_sizes": (3, 4), "lr": np.float64(0.01)})`` ->
    ``{"kernel_sizes": [3, 4], "lr": 0.01}``.
    """
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return value.item()
    return value


def flatten(tree: dict[str, Any], prefix: str = "", depth: int | None = None) -> dict[str, Any]:
    """Nested mappings -> one mapping with dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.

    ``depth`` levels of nesting at most (None: all); deeper mappings stay values.
    """
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and (depth is None or depth > 0):
            out.update(flatten(v, key, None if depth is None else depth - 1))
        else:
            out[key] = v
    return out


SECTIONS: dict[str, type] = typing.get_type_hints(Config)

ALIASES = {
    "learning_rate": "train.lr",
    "batch": "train.batch_size",
    "embedding_mode": "model.embedding",
    "filters": "model.units",
    "model_type": "model.type",
    "glove": "embeddings.source",
}


def _all_keys() -> dict[str, str]:
    """Every accepted key -> its ``section.name``."""
    keys: dict[str, str] = {}
    bare: dict[str, list[str]] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys[f"{section}.{f.name}"] = f"{section}.{f.name}"
            bare.setdefault(f.name, []).append(f"{section}.{f.name}")
    for name, full in bare.items():
        if len(full) == 1:
            keys[name] = full[0]
    keys.update(ALIASES)
    return keys


def resolve_key(key: str) -> tuple[str, str]:
    """``lr`` -> ``("train", "lr")``; unknown keys raise with a suggestion."""
    keys = _all_keys()
    if key not in keys:
        hint = difflib.get_close_matches(key, keys, n=1)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"unknown setting {key!r}.{did} See experiments/defaults.yaml for every setting."
        )
    section, name = keys[key].split(".")
    return section, name


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Turn a YAML value into the field's type, or raise a ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is tuple or hint is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in items)
        return tuple(items)  # bare `tuple`: values are checked by their consumer
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping. Received: {key}={value!r}.")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if hint in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"`{key}` must be true or false. Received: {key}={value!r}.")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"`{key}` must be an integer. Received: {key}={value!r}.")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"`{key}` must be a number. Received: {key}={value!r}.")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"`{key}` must be a string. Received: {key}={value!r}.")
    raise AssertionError(f"unsupported config type {hint!r}")  # a bug, not user input


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist: check the path given to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}{at}: {problem}; fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not UTF-8 text; save it as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of sections (data, model, train...)")
    return data


def _flatten(tree: dict[str, Any], origin: str) -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` or ``{"lr": 1}`` -> ``{"train.lr": 1}``."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        if k in SECTIONS and not isinstance(v, dict):
            raise ConfigError(f"{origin}: section `{k}` must be a mapping of settings")
        flat.update(flatten({k: v}, depth=1) if k in SECTIONS else {str(k): v})
    return {".".join(resolve_key(k)): v for k, v in flat.items()}


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.01", "sweeps.lr=[0.1]"]`` -> ``{"train.lr": 0.01, "search.sweeps": {"lr": [0.1]}}``.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r} needs the form key=value, e.g. --set lr=0.001")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        if len(parts) > 1 and parts[-2] == "sweeps":  # sweeps.lr / search.sweeps.lr
            _merge(out, {"search.sweeps": {parts[-1]: value}})
            continue
        out[".".join(resolve_key(key.strip()))] = value
    return out


def _merge(values: dict[str, Any], new: dict[str, Any]) -> None:
    """Update ``values``; mappings (``search.sweeps``) are merged key by key."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(values.get(k), dict):
            values[k] = {**values[k], **v}
        else:
            values[k] = v


def build_config(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    defaults_file: Path = DEFAULTS_FILE,
) -> Config:
    """Defaults, then ``config_file``, then ``overrides`` (keys as accepted by ``--set``)."""
    values = _flatten(read_yaml(defaults_file), str(defaults_file))
    if config_file is not None:
        _merge(values, _flatten(read_yaml(config_file), str(config_file)))
    _merge(values, _flatten(overrides or {}, "--set"))
    return _assemble(values)


def named_keys(config_file: str | Path | None = None,
               overrides: dict[str, Any] | None = None) -> set[str]:
    """The settings ``config_file`` and ``overrides`` name (full keys), whatever their values:
    what the user chose, as opposed to the defaults."""
    keys = set(_flatten(read_yaml(config_file), str(config_file))) if config_file else set()
    return keys | set(_flatten(overrides or {}, "--set"))


def override(config: Config, values: dict[str, Any]) -> Config:
    """``config`` with some settings replaced; keys as accepted by ``--set``."""
    flat = {f"{s}.{k}": v for s, kw in dataclasses.asdict(config).items() for k, v in kw.items()}
    _merge(flat, _flatten(values, "override"))
    return _assemble(flat)


def _assemble(values: dict[str, Any]) -> Config:
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for full, value in values.items():
        section, name = full.split(".")
        hint = typing.get_type_hints(SECTIONS[section])[name]
        sections[section][name] = _coerce(hint, value, name)
    return Config(**{s: SECTIONS[s](**kw) for s, kw in sections.items()})


def save_config(config: Config, path: Path, header: str = "") -> None:
    """``config`` as YAML; ``header`` (say, who wrote it) goes first as comment lines."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(config.to_dict(), sort_keys=False),
                    encoding="utf-8")

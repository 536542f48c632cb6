"""Model bundles: everything needed to classify new text, and `emotune predict`.

A bundle folder holds ``model.keras``, ``vocab.txt`` (one word per line, line number = id),
``labels.json``, ``config.yaml``, ``metrics.json`` and ``bundle.json`` (format version, max
length, tokenizer, data checksum, package versions; for a multi-label model its per-label
decision thresholds). Text is tokenised exactly as in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotune import __version__
from emotune.config import Config, save_config
from emotune.data import UNK, Prepared, tokenize
from emotune.errors import EmotuneError
from emotune.provenance import provenance
from emotune.results import atomic_dir

FORMAT = 1
MULTI_LABEL_FORMAT = 2  # with per-label thresholds: an emotune that reads only 1 refuses it
TOKENIZER = "emotune.data.tokenize/1"  # regex \w+|'\w+|[^\w\s] on lowercased text
PARTS = ("bundle.json", "model.keras", "vocab.txt", "labels.json", "config.yaml")


def save_bundle(path: Path, model: Any, config: Config, prepared: Prepared,
                metrics: dict[str, Any], versions: dict[str, str],
                thresholds: np.ndarray | None = None) -> Path:
    """Write a model bundle: into a temporary folder, renamed to ``path`` when complete.

    Args:
        path: The bundle folder to create, e.g. ``models/best-gru``; it must not exist.
        model: The trained Keras model.
        config: The configuration it was trained with (saved as ``config.yaml``).
        prepared: The data it was trained on: vocabulary, labels, max length, checksum.
        metrics: Its numbers, saved as ``metrics.json``.
        versions: Package versions, recorded in ``bundle.json``.
        thresholds: A multi-label model's decision threshold per label (tuned on validation).

    Returns:
        ``path``.

    Raises:
        EmotuneError: ``path`` already exists.
    """
    if path.exists():
        raise EmotuneError(f"model folder {path} already exists; choose another --name or "
                           f"add --overwrite")
    with atomic_dir(path) as tmp:
        model.save(tmp / "model.keras")
        (tmp / "vocab.txt").write_text("\n".join(prepared.vocab) + "\n", encoding="utf-8")
        (tmp / "labels.json").write_text(json.dumps(list(prepared.label_names)) + "\n")
        save_config(config, tmp / "config.yaml")
        who = provenance()
        (tmp / "metrics.json").write_text(json.dumps({**metrics, "provenance": who},
                                                     indent=2) + "\n")
        (tmp / "bundle.json").write_text(json.dumps({
            "format": FORMAT if thresholds is None else MULTI_LABEL_FORMAT,
            "emotune": __version__, "tokenizer": TOKENIZER,
            "max_len": prepared.max_len, "data_checksum": prepared.checksum,
            "versions": versions, "provenance": who,
            **({} if thresholds is None else {
                "multi_label": True, "thresholds": [float(t) for t in thresholds]})},
            indent=2) + "\n")
    return path


@dataclass
class Bundle:
    path: Path
    model: Any
    index: dict[str, int]
    labels: list[str]
    max_len: int
    thresholds: np.ndarray | None = None  # multi-label: a label is predicted from these

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    def decide(self, probs: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per text, the predicted labels with their probabilities, most probable first:
        every label at or above its threshold (multi-label), else the argmax."""
        out = []
        for row in probs:
            if self.thresholds is None:
                picked = [int(row.argmax())]
            else:
                picked = [j for j in np.argsort(-row, kind="stable")
                          if row[j] >= self.thresholds[j]]
            out.append([(self.labels[j], float(row[j])) for j in picked])
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [[self.index.get(t, UNK) for t in tokenize(x)][: self.max_len] or [UNK]
                for x in texts]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int32)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        return ids

    def predict(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities, one row per text (batched by similar length)."""
        order = np.argsort([len(tokenize(t)) for t in texts], kind="stable")
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            ids = self.encode([texts[i] for i in idx])
            probs[idx] = np.asarray(self.model.predict_on_batch(ids))
        return probs


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle written by ``save_bundle`` (``emotune final-train`` or ``ensemble``).

    Args:
        path: The bundle folder, e.g. ``models/best-gru``.

    Returns:
        A ``Bundle``; ``bundle.predict(["i feel great"])`` gives class probabilities, one
        column per ``bundle.labels``.

    Raises:
        EmotuneError: The folder is missing, incomplete, damaged or of another bundle format,
            or ``model.keras`` cannot be loaded (the loader's exception is the cause).
    """
    path = Path(path)
    if not path.is_dir():
        raise EmotuneError(f"model folder {path} does not exist; give the folder written by "
                           f"`emotune final-train` (models/<name>)")
    missing = [p for p in PARTS if not (path / p).is_file()]
    if missing:
        raise EmotuneError(f"model folder {path} is incomplete: {', '.join(missing)} missing; "
                           f"re-run `emotune final-train` to rebuild it")
    try:
        meta = json.loads((path / "bundle.json").read_text())
        labels = json.loads((path / "labels.json").read_text())
    except json.JSONDecodeError as e:
        raise EmotuneError(f"{path}: bundle.json or labels.json is damaged ({e}); re-run "
                           f"`emotune final-train`") from None
    if meta.get("format") not in (FORMAT, MULTI_LABEL_FORMAT) or meta.get("tokenizer") != TOKENIZER:
        raise EmotuneError(
            f"{path} was written by emotune {meta.get('emotune', '?')} (bundle format "
            f"{meta.get('format')}, tokenizer {meta.get('tokenizer')}); this emotune "
            f"{__version__} reads formats {FORMAT} and {MULTI_LABEL_FORMAT} with {TOKENIZER}: "
            f"retrain it with `emotune final-train`")
    vocab = (path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    import keras

    import emotune.layers  # noqa: F401 - registers emotune's layers and loss for loading

    try:
        model = keras.models.load_model(path / "model.keras")
    except Exception as e:  # keras raises several types for a bad archive
        raise EmotuneError(f"{path}/model.keras cannot be loaded ({type(e).__name__}); "
                           f"re-run `emotune final-train`") from e
    if model.output_shape[-1] != len(labels):
        raise EmotuneError(f"{path}: the model has {model.output_shape[-1]} outputs but "
                           f"labels.json names {len(labels)} labels; the bundle is mixed up")
    thresholds = meta.get("thresholds")
    if thresholds is not None and len(thresholds) != len(labels):
        raise EmotuneError(f"{path}: bundle.json has {len(thresholds)} thresholds for "
                           f"{len(labels)} labels; re-run `emotune final-train`")
    return Bundle(path, model, {w: i for i, w in enumerate(vocab)}, labels, meta["max_len"],
                  None if thresholds is None else np.asarray(thresholds, dtype=float))

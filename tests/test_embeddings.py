from __future__ import annotations

import zipfile

import numpy as np
import pytest

from emotune import embeddings
from emotune.config import EmbeddingsConfig
from emotune.embeddings import load_embedding
from emotune.errors import EmbeddingError

VOCAB = ("<pad>", "<unk>", "happy", "sad", "delighted", "the", "zebra")
COUNTS = {"happy": 5, "sad": 3, "delighted": 1, "the": 10, "zebra": 1}


def _vectors(path):
    return {line.split()[0]: np.array(line.split()[1:], dtype=np.float32)
            for line in path.read_text().splitlines()}


def test_text_source_aligns_rows_and_reports_coverage(tiny_glove, tmp_path):
    cfg = EmbeddingsConfig(source=str(tiny_glove), cache_dir=str(tmp_path / "c"))
    emb = load_embedding(cfg, VOCAB, COUNTS)
    vec = _vectors(tiny_glove)
    assert emb.matrix.shape == (7, 8) and emb.matrix.dtype == np.float32
    np.testing.assert_allclose(emb.matrix[2], vec["happy"], rtol=1e-5)
    np.testing.assert_allclose(emb.matrix[5], vec["the"], rtol=1e-5)
    assert emb.found.tolist() == [False, False, True, True, False, True, False]
    assert emb.type_coverage == pytest.approx(3 / 5)
    assert emb.token_coverage == pytest.approx(18 / 20)
    assert not emb.matrix[0].any()  # padding row is zero
    assert emb.matrix[4].any() and emb.matrix[6].any()  # OOV rows are random, not zero


def test_oov_rows_are_seeded(tiny_glove, tmp_path):
    a = load_embedding(EmbeddingsConfig(source=str(tiny_glove), cache_dir=str(tmp_path / "a")),
                       VOCAB, COUNTS)
    b = load_embedding(EmbeddingsConfig(source=str(tiny_glove), cache_dir=str(tmp_path / "b")),
                       VOCAB, COUNTS)
    c = load_embedding(EmbeddingsConfig(source=str(tiny_glove), cache_dir=str(tmp_path / "c"),
                                        oov_seed=1), VOCAB, COUNTS)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.allclose(a.matrix[4], c.matrix[4])


def test_cache_is_reused_and_keyed_by_vocab_and_source(tiny_glove, tmp_path, monkeypatch):
    cfg = EmbeddingsConfig(source=str(tiny_glove), cache_dir=str(tmp_path / "c"))
    first = load_embedding(cfg, VOCAB, COUNTS)
    assert len(list((tmp_path / "c").glob("*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("the source was parsed again")

    monkeypatch.setattr(embeddings, "_lookup_text", boom)
    again = load_embedding(cfg, VOCAB, COUNTS)
    np.testing.assert_array_equal(first.matrix, again.matrix)
    monkeypatch.undo()
    load_embedding(cfg, VOCAB[:-1], COUNTS)  # another vocabulary, another entry
    tiny_glove.write_text(tiny_glove.read_text().replace("happy ", "happyx ", 1))
    load_embedding(cfg, VOCAB, COUNTS)  # changed source, another entry
    assert len(list((tmp_path / "c").glob("*.npz"))) == 3


def test_zip_sources(tiny_glove, tmp_path):
    one = tmp_path / "one.zip"
    with zipfile.ZipFile(one, "w") as z:
        z.write(tiny_glove, "glove.tiny.8d.txt")
    emb = load_embedding(EmbeddingsConfig(source=str(one), cache_dir=str(tmp_path / "c")),
                         VOCAB, COUNTS)
    np.testing.assert_allclose(emb.matrix[2], _vectors(tiny_glove)["happy"], rtol=1e-5)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.write(tiny_glove, "a.txt")
        z.write(tiny_glove, "b.txt")
    with pytest.raises(EmbeddingError, match="holds 2 .txt files .* embeddings.member"):
        load_embedding(EmbeddingsConfig(source=str(two), cache_dir=str(tmp_path / "c")),
                       VOCAB, COUNTS)
    emb = load_embedding(EmbeddingsConfig(source=str(two), member="b.txt",
                                          cache_dir=str(tmp_path / "c")), VOCAB, COUNTS)
    assert emb.found[2]


def test_word2vec_header_and_any_dimension(tmp_path):
    f = tmp_path / "w2v.txt"
    f.write_text("2 3\nhappy 1 2 3\nsad 4 5 6\n")
    emb = load_embedding(EmbeddingsConfig(source=str(f), cache_dir=str(tmp_path / "c")),
                         VOCAB, COUNTS)
    assert emb.dim == 3
    assert emb.matrix[3].tolist() == [4, 5, 6]


@pytest.mark.parametrize("body, fragment", [
    ("happy 1 2 3\nsad 4 5\n", "line 2: 2 values where the first line had 3"),
    ("happy 1 2 3\nsad 4 x 6\n", "line 2: a vector value is not a number"),
    ("", "empty file"),
])
def test_bad_text_files(tmp_path, body, fragment):
    f = tmp_path / "bad.txt"
    f.write_text(body)
    with pytest.raises(EmbeddingError) as e:
        load_embedding(EmbeddingsConfig(source=str(f), cache_dir=str(tmp_path / "c")),
                       VOCAB, COUNTS)
    assert fragment in str(e.value)
    assert not list(tmp_path.glob("c/*"))  # nothing cached from a failed read


def test_unreadable_zip_and_missing_file(tmp_path):
    bad = tmp_path / "glove.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(EmbeddingError, match="not a readable zip"):
        load_embedding(EmbeddingsConfig(source=str(bad)), VOCAB, COUNTS)
    with pytest.raises(EmbeddingError, match="does not exist: pass --glove"):
        load_embedding(EmbeddingsConfig(source=str(tmp_path / "nope.txt")), VOCAB, COUNTS)


def test_packaged_glove_6b_50d_is_the_real_thing(tmp_path):
    emb = load_embedding(EmbeddingsConfig(cache_dir=str(tmp_path)), VOCAB, COUNTS)
    assert emb.dim == 50
    assert emb.found.tolist() == [False, False, True, True, True, True, True]
    # GloVe 6B 50-d's published vector for "the" starts 0.418 0.24968 -0.41242.
    np.testing.assert_allclose(emb.matrix[5][:3], [0.418, 0.24968, -0.41242], rtol=1e-4)

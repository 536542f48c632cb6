"""The default dataset's resolution order and its verified download, against 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BENCHMARK_DATA, make_rows, write_txt
from emotune import data
from emotune.config import DataConfig
from emotune.errors import DataError


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serves ``tmp_path/served`` on a free 127.0.0.1 port; yields (base_url, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_published(server, monkeypatch):
    """Small split files published on the local server, with their sums registered."""
    base, root = server
    files = {}
    for split, seed in (("train", 1), ("val", 2), ("test", 3)):
        body = write_txt(root / f"{split}.txt", make_rows(30, seed)).read_bytes()
        files[f"{split}.txt"] = (f"{base}/{split}.txt", len(body), hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(data.PUBLISHED, "emotion",
                        dataclasses.replace(data.PUBLISHED["emotion"], files=files))
    return base, root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "cache"
    monkeypatch.setenv("EMOTUNE_CACHE", str(c))
    return c / "data" / "emotion"


def test_download_verifies_and_caches(tiny_published, cache, monkeypatch):
    base, _ = tiny_published
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", base)
    ds = data.load_dataset(DataConfig())
    assert sorted(p.name for p in cache.iterdir()) == ["test.txt", "train.txt", "val.txt"]
    assert len(ds.splits["train"].texts) == 30
    # Second time: served from the cache, no network needed.
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", "http://127.0.0.1:9")
    assert data.resolve_data_path(DataConfig()) == cache


def test_corrupted_download_is_rejected_and_nothing_kept(tiny_published, cache, monkeypatch):
    base, root = tiny_published
    body = (root / "val.txt").read_bytes()
    (root / "val.txt").write_bytes(body[:-5] + b"xxxx\n")  # same size, other bytes
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", base)
    with pytest.raises(DataError, match="val.txt .* is corrupt"):
        data.load_dataset(DataConfig())
    assert sorted(p.name for p in cache.iterdir()) == ["train.txt"]  # verified before it
    assert not list(cache.glob(".*part"))


def test_truncated_download_is_rejected(tiny_published, cache, monkeypatch):
    base, root = tiny_published
    (root / "train.txt").write_bytes((root / "train.txt").read_bytes()[:100])
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", base)
    with pytest.raises(DataError, match="corrupt"):
        data.load_dataset(DataConfig())
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_error_names_the_three_ways(cache, monkeypatch):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DataError) as e:
        data.load_dataset(DataConfig())
    msg = str(e.value)
    assert "--data DIR" in msg and "EMOTUNE_DATA=DIR" in msg and str(cache) in msg


def test_resolution_order(tmp_path, cache, monkeypatch):
    explicit = tmp_path / "explicit"
    env = tmp_path / "env"
    for d in (explicit, env, cache):
        d.mkdir(parents=True)
    monkeypatch.setenv("EMOTUNE_DATA", str(env))
    assert data.resolve_data_path(DataConfig(path=str(explicit))) == explicit
    assert data.resolve_data_path(DataConfig()) == env
    monkeypatch.delenv("EMOTUNE_DATA")
    for s in ("train", "val", "test"):
        (cache / f"{s}.txt").write_text("x;joy\n")
    assert data.resolve_data_path(DataConfig()) == cache
    monkeypatch.setenv("EMOTUNE_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="EMOTUNE_DATA=.* does not exist"):
        data.resolve_data_path(DataConfig())


@pytest.mark.benchmark
@pytest.mark.skipif(not BENCHMARK_DATA.is_dir(), reason="benchmark data not present")
def test_real_files_match_the_published_sums(server, cache, monkeypatch):
    # The registered sizes and sha256 sums are the originals': serving the benchmark copy
    # (byte-identical to them) must pass verification unchanged.
    base, root = server
    for s in ("train", "val", "test"):
        shutil.copy(BENCHMARK_DATA / f"{s}.txt", root / f"{s}.txt")
    monkeypatch.setenv("EMOTUNE_EMOTION_URL", base)
    assert data.resolve_data_path(DataConfig()) == cache
    assert (cache / "train.txt").read_bytes() == (BENCHMARK_DATA / "train.txt").read_bytes()


def test_goemotions_by_name_downloads_verified_files(server, tmp_path, monkeypatch):
    # The goemotions dataset by name: its four files fetched from the (local) release,
    # verified, cached, and read as multi-label data; a corrupt file is refused.
    from test_multilabel import write_goemotions

    base, root = server
    write_goemotions(root)
    files = {}
    for name in ("train.tsv", "dev.tsv", "test.tsv", "labels.txt"):
        body = (root / name).read_bytes()
        files[name] = (f"{base}/{name}", len(body), hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(data.PUBLISHED, "goemotions",
                        dataclasses.replace(data.PUBLISHED["goemotions"], files=files))
    monkeypatch.setenv("EMOTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOTUNE_DATA", str(tmp_path / "not-for-goemotions"))
    monkeypatch.delenv("EMOTUNE_GOEMOTIONS_DATA", raising=False)
    ds = data.load_dataset(DataConfig(dataset="goemotions"))
    assert ds.multi_label and ds.name == "goemotions" and len(ds.splits["val"].texts) == 90
    cached = tmp_path / "cache" / "data" / "goemotions"
    assert sorted(p.name for p in cached.iterdir()) == sorted(files)
    monkeypatch.setenv("EMOTUNE_GOEMOTIONS_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="EMOTUNE_GOEMOTIONS_DATA=.* does not exist"):
        data.load_dataset(DataConfig(dataset="goemotions"))
    monkeypatch.delenv("EMOTUNE_GOEMOTIONS_DATA")
    (root / "dev.tsv").write_bytes(b"x" * files["dev.tsv"][1])
    monkeypatch.setenv("EMOTUNE_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(DataError, match="dev.tsv .* is corrupt"):
        data.load_dataset(DataConfig(dataset="goemotions"))


@pytest.mark.benchmark
@pytest.mark.skipif(not (BENCHMARK_DATA.parent / "goemotions").is_dir(),
                    reason="benchmark data not present")
def test_real_goemotions_files_match_the_published_sums(server, tmp_path, monkeypatch):
    base, root = server
    for name in data.GOEMOTIONS_FILES:
        shutil.copy(BENCHMARK_DATA.parent / "goemotions" / name, root / name)
    monkeypatch.setenv("EMOTUNE_GOEMOTIONS_URL", base)
    monkeypatch.delenv("EMOTUNE_GOEMOTIONS_DATA", raising=False)
    path = data.resolve_data_path(DataConfig(dataset="goemotions"))
    assert sorted(p.name for p in path.iterdir()) == sorted(data.GOEMOTIONS_FILES)

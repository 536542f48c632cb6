from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import BENCHMARK_DATA, make_rows, write_txt
from emotune import __version__
from emotune.cli import main
from emotune.config import build_config


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotune", *args], capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str, code: int = 1):
    """Exit ``code``, and stderr ends in exactly one error line (progress may precede it)."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert errors == lines[-1:], proc.stderr
    assert fragment in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"emotune {__version__}"


@pytest.mark.parametrize("argv", [[], ["train"], ["data"], ["data", "info"], ["embeddings"],
                                  ["embeddings", "info"], ["search"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    assert "usage: emotune" in capsys.readouterr().out


def test_train_writes_a_run_folder(tiny_sets, tmp_path, capsys):
    out = tmp_path / "run"
    sets = [x for s in tiny_sets for x in ("--set", s)]
    assert main(["train", "--model", "lstm", *sets, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val_accuracy" in printed and str(out) in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "config.yaml").read_text().count("type: lstm") == 1
    assert 0 <= metrics["val_accuracy"] <= 1
    # The same --out again is refused before any training, and the run is untouched.
    before = (out / "metrics.json").read_text()
    assert main(["train", *sets, "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before


def test_data_info_json(tiny_data, capsys):
    assert main(["data", "info", "--data", str(tiny_data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {s: v["rows"] for s, v in info["splits"].items()} == {"train": 300, "val": 90,
                                                                 "test": 90}


def test_embeddings_info(tiny_data, tiny_glove, tmp_path, capsys):
    assert main(["embeddings", "info", "--data", str(tiny_data), "--glove", str(tiny_glove),
                 "--set", f"embeddings.cache_dir={tmp_path}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 8
    assert set(info["most_frequent_missing"]) == {"delighted", "miserable", "annoyed"}


def test_bad_flags_are_one_line_usage_errors():
    assert_one_line_error(run_cli("train", "--modle", "gru"), "unrecognized arguments", 2)
    assert_one_line_error(run_cli("train", "--model", "bert"), "invalid choice: 'bert'", 2)
    assert_one_line_error(run_cli("frobnicate"), "invalid choice", 2)


def test_user_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    write_txt(tmp_path / "train.txt", make_rows(30, 1))
    (tmp_path / "val.txt").write_text("text without separator\n")
    proc = run_cli("data", "info", "--data", str(tmp_path))
    assert_one_line_error(proc, "val.txt line 1: no ';'")
    debug = run_cli("data", "info", "--data", str(tmp_path), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--set", "lr=-1"], "`lr` must be > 0"),
    (["--set", "optimizer=adamx"], "unknown optimizer 'adamx'"),
    (["--set", "dropout=1.5"], "`dropout` must be in [0, 1)"),
    (["--set", "units=0"], "`units` must be an integer >= 1"),
    (["--glove", "/nonexistent/glove.txt"], "does not exist: pass --glove"),
    (["--config", "/nonexistent/x.yaml"], "config file /nonexistent/x.yaml does not exist"),
])
def test_train_rejects_bad_input_before_training(tiny_data, tmp_path, args, fragment):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(tiny_data), *args, "--out", str(out))
    assert_one_line_error(proc, fragment)
    assert not out.exists() and not list(tmp_path.glob(".run*"))  # nothing partial left


@pytest.mark.slow
def test_training_failure_leaves_no_run_folder(tiny_sets, tmp_path):
    out = tmp_path / "run"
    sets = [x for s in tiny_sets + ["optimizer=sgd", "lr=1e39"] for x in ("--set", s)]
    assert_one_line_error(run_cli("train", *sets, "--out", str(out)), "training diverged")
    assert not out.exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.benchmark
@pytest.mark.skipif(not BENCHMARK_DATA.is_dir(), reason="benchmark data not present")
def test_data_info_on_the_benchmark_data(capsys):
    assert main(["data", "info", "--data", str(BENCHMARK_DATA), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows = {s: v["rows"] for s, v in info["splits"].items()}
    assert rows == {"train": 16000, "val": 2000, "test": 2000}
    assert info["splits"]["train"]["per_label"] == {
        "sadness": 4666, "joy": 5362, "love": 1304, "anger": 2159, "fear": 1937, "surprise": 572}
    assert info["shared_texts"] == {"train&val": 5, "train&test": 11, "val&test": 3}


@pytest.mark.slow
def test_search_end_to_end_on_tiny_data_then_resume(tiny_sets, tmp_path, capsys):
    project = tmp_path / "study"
    sets = [x for s in tiny_sets for x in ("--set", s)]
    argv = ["search", "--model", "gru", "--param", "dropout", "--set", "sweeps.dropout=[0.2, 0.5]",
            *sets, "--project", str(project)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 trials (2 completed); 2 trained in this run" in out
    trials = pd.read_csv(project / "trials.csv")
    assert sorted(trials["dropout"]) == [0.2, 0.5]
    assert (project / "best_model.keras").is_file()
    # No checkpoint per trial (KerasTuner issue #288): only the best model is kept.
    assert not list((project / "kt").glob("trial_*/*.keras"))
    assert not list((project / "kt").glob("trial_*/checkpoint*"))
    assert main(argv) == 0  # the same command again resumes: nothing left to train
    assert "0 trained in this run" in capsys.readouterr().out
    # The study's recommendation goes straight into final-train.
    assert main(["final-train", "--project", str(project), "--models-dir",
                 str(tmp_path / "models"), "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    saved = build_config(tmp_path / "models" / "study" / "config.yaml")
    best = trials.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    assert saved.model.dropout == best["dropout"] and saved.model.units == 8


def test_search_usage_errors(tiny_data):
    assert_one_line_error(run_cli("search", "--data", str(tiny_data)), "say what to search")
    assert_one_line_error(run_cli("search", "--param", "lrr", "--data", str(tiny_data)),
                          "unknown parameter 'lrr'. Did you mean 'lr'?")
    assert_one_line_error(run_cli("search", "--param", "lr", "--set", "sweeps.lr=[0.1, -1]",
                                  "--data", str(tiny_data)), "`lr` must be > 0")
    assert_one_line_error(run_cli("search", "--param", "lr", "--budget", "soon"),
                          "not a duration")
    assert_one_line_error(run_cli("search", "--strategy", "genetic"), "invalid choice", 2)

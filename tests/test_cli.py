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


def test_train_csv(tiny_sets, tmp_path, capsys):
    out = tmp_path / "run"
    sets = [x for s in tiny_sets for x in ("--set", s)]
    assert main(["train", *sets, "--epochs", "1", "--out", str(out), "--format", "csv"]) == 0
    printed = capsys.readouterr()
    header, row = printed.out.splitlines()
    assert header == "run_folder,val_accuracy,val_loss,val_macro_f1,best_epoch,epochs_run,seconds"
    metrics = json.loads((out / "metrics.json").read_text())
    assert row.split(",")[:3] == [str(out), str(metrics["val_accuracy"]),
                                  str(metrics["val_loss"])]
    assert f"run folder: {out}" in printed.err


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
            *sets, "--project", str(project), "--no-prune"]
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
    # the one-SE rule on 90 validation texts: the raw best only if it beats the default
    # (0.5) by more than one binomial error, else the default
    from emotune.noise import binomial_se

    best = trials.sort_values(["val_accuracy", "val_loss"], ascending=[False, True]).iloc[0]
    default = trials[trials["dropout"] == 0.5].iloc[0]
    clear = best["val_accuracy"] - default["val_accuracy"] > binomial_se(best["val_accuracy"], 90)
    assert saved.model.dropout == (best["dropout"] if clear else 0.5)
    assert saved.model.units == 8


def test_search_usage_errors(tiny_data):
    assert_one_line_error(run_cli("search", "--data", str(tiny_data)), "say what to search")
    assert_one_line_error(run_cli("search", "--param", "lrr", "--data", str(tiny_data)),
                          "unknown parameter 'lrr'. Did you mean 'lr'?")
    assert_one_line_error(run_cli("search", "--param", "lr", "--set", "sweeps.lr=[0.1, -1]",
                                  "--data", str(tiny_data)), "`lr` must be > 0")
    assert_one_line_error(run_cli("search", "--param", "lr", "--budget", "soon"),
                          "not a duration")
    assert_one_line_error(run_cli("search", "--strategy", "genetic"), "invalid choice", 2)


# ---------------------------------------------------------------- the command line's shape


HEAVY = ("tensorflow", "keras", "keras_tuner", "pandas", "sklearn", "matplotlib", "scipy")


def test_help_imports_nothing_heavy():
    """`emotune --help` (and every command's) stays fast: no TensorFlow, pandas, sklearn."""
    code = (
        "import sys\n"
        "from emotune.cli import COMMANDS, main\n"
        "for argv in [[], *[c.name.split() for c in COMMANDS]]:\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (argv, e.code)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("usage: emotune") == 14  # emotune and its 13 commands
    assert run_cli("--help").stdout.startswith("usage: emotune")  # python -m emotune


def test_every_command_has_one_class_with_its_parser():
    from emotune.cli import COMMANDS, build_parser

    names = [c.name for c in COMMANDS]
    assert len(set(names)) == len(names) == 13
    args = build_parser().parse_args(["data", "info", "--json"])
    assert args.handler.name == "data info" and args.format == "json"
    assert build_parser().parse_args(["leaderboard"]).format == "table"
    assert build_parser().parse_args(["search", "--role", "worker"]).role == "worker"


def test_prune_help_says_what_the_bar_is_for_sweeps_and_joint_searches(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    prune = text[text.index("--prune "):text.index("--budget DURATION ")]
    assert "one-at-a-time sweeps the default configuration's" in prune
    assert "random searches the median of the finished trials" in prune
    assert "search.prune_z standard errors" in prune and "never a recommendation" in prune


def test_a_bad_format_is_a_one_line_usage_error():
    assert_one_line_error(run_cli("leaderboard", "--format", "yaml"),
                          "invalid choice: 'yaml'", 2)


# ---------------------------------------------------------------- --format


def parse(fmt: str, out: str) -> list[dict]:
    """stdout of --format ``fmt`` as records; it must be that format and nothing else."""
    if fmt == "json":
        return json.loads(out)
    if fmt == "csv":
        import csv
        import io

        return list(csv.DictReader(io.StringIO(out)))
    lines = out.rstrip("\n").split("\n")
    assert lines[1].startswith("|---") and all(x.startswith("| ") for x in lines[2:]), out
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return [dict(zip(head, (c.strip() for c in x.strip("|").split(" | ")))) for x in lines[2:]]


def formats(argv: list[str], capsys) -> dict[str, tuple[list[dict], str]]:
    """Run ``argv`` with each machine-readable format: its records and stderr."""
    out = {}
    for fmt in ("json", "csv", "markdown"):
        assert main([*argv, "--format", fmt]) == 0
        printed = capsys.readouterr()
        out[fmt] = parse(fmt, printed.out), printed.err
    return out


@pytest.fixture
def fake_search(monkeypatch):
    """`emotune search` with the fake trainer of test_search: the CLI path, no training."""
    from test_search import FakePrepared, FakeTrainer

    import emotune.search as search_mod

    real = search_mod.run_search

    def run_search(study, config, prepared, embedding=None, **kw):
        return real(study, config, FakePrepared(), trainer=FakeTrainer(),
                    builder=lambda c: None, **kw)

    monkeypatch.setattr(search_mod, "run_search", run_search)


SEARCH_TABLE = """\
trial_id     status     lr  dropout  val_accuracy  val_loss  best_epoch  epochs_run  seconds
    0007  completed  0.001   0.4000        0.8200    0.1800           4           4        1
    0000  completed  0.001   0.5000        0.8100    0.1900           4           4        1
    0006  completed  0.001   0.3000        0.8100    0.1900           4           4        1
    0005  completed  0.001   0.2000        0.8000    0.2000           4           4        1
    0008  completed  0.001   0.6000        0.8000    0.2000           4           4        1
9 trials (9 completed); 9 trained in this run"""


def test_search_formats(fake_search, tiny_sets, tmp_path, capsys):
    project = tmp_path / "study"
    argv = ["search", "--param", "lr,dropout", *[x for s in tiny_sets for x in ("--set", s)],
            "--set", "epochs=4", "--project", str(project), "--no-prune"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(SEARCH_TABLE)  # the table as it always was
    got = formats(argv, capsys)  # the same command again: resumed, nothing to train
    cols = ["trial_id", "status", "lr", "dropout", "val_accuracy", "val_loss", "best_epoch",
            "epochs_run", "seconds"]
    (rows, err) = got["json"]
    assert [list(r) for r in rows] == [cols] * 5
    assert [r["trial_id"] for r in rows] == ["0007", "0000", "0006", "0005", "0008"]
    assert rows[0]["dropout"] == 0.4 and rows[0]["val_accuracy"] == pytest.approx(0.82)
    assert "9 trials (9 completed); 0 trained in this run" in err  # the notes: on stderr
    assert [r["trial_id"] for r in got["csv"][0]] == [r["trial_id"] for r in rows]
    assert float(got["csv"][0][0]["val_accuracy"]) == rows[0]["val_accuracy"]  # full precision
    assert got["markdown"][0][0] == {"trial_id": "0007", "status": "completed", "lr": "0.001",
                                     "dropout": "0.4000", "val_accuracy": "0.8200",
                                     "val_loss": "0.1800", "best_epoch": "4",
                                     "epochs_run": "4", "seconds": "1"}


RECOMMEND_TABLE = """\
== study (gru, one-at-a-time sweeps, 9 trials)
Hyperparameter   Choice   Best Value   Best Val Accuracy   Default's   Margin    Noise (1 SE)   \
Verdict
Learning Rate    0.001    0.001        0.8100 (n=1)        0.8100      +0.0000   0.0088         \
within noise
Dropout          0.4      0.4          0.8200 (n=1)        0.8100      +0.0100   0.0086         \
detectable

Recommended: lr=0.001 batch_size=32 units=8 dropout=0.4 optimizer=adam embedding=frozen \
bidirectional=False layers=1 pooling=last spatial_dropout=0 kernel_sizes=[3, 4, 5] \
schedule=constant warmup_epochs=0 clipnorm=None label_smoothing=0 class_weight=none \
focal_gamma=0 weight_decay=0
Expected: val accuracy 0.8200 ±0.0086 (1 SE), val loss 0.1800 (measured (trial 0007))
Best trained: trial 0007 val accuracy 0.8200, val loss 0.1800
Note: Noise: one standard error is the binomial error of an accuracy on 2000 validation texts \
(±0.0086 at 0.82), or the seeds' spread where it is larger. Values within one standard error of \
the best are ties, and of those the one nearest the default is chosen (the one-standard-error \
rule).
Note: One seed per value: a new study with --repeats auto (another --project, or --overwrite) \
races more seeds among the values within noise of the best.
written: """


def test_recommend_formats(fake_search, tiny_sets, tmp_path, capsys):
    project = tmp_path / "study"
    assert main(["search", "--param", "lr,dropout", *[x for s in tiny_sets for x in
                                                       ("--set", s)],
                 "--set", "epochs=4", "--project", str(project), "--no-prune"]) == 0
    capsys.readouterr()
    argv = ["recommend", "--project", str(project), "--reports-dir", str(tmp_path / "r"),
            "--experiments-dir", str(tmp_path / "e"), "--no-baseline"]  # test_baseline.py
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(RECOMMEND_TABLE)
    got = formats(argv, capsys)
    (study,) = got["json"][0]
    assert study["recommended"]["lr"] == 0.001 and study["recommended"]["dropout"] == 0.4
    assert study["expected_val_accuracy"] == pytest.approx(0.82)
    assert [p["parameter"] for p in study["parameters"][:2]] == ["lr", "dropout"]
    assert "written:" in got["json"][1] and "== study" in got["json"][1]
    rows = got["csv"][0]
    assert list(rows[0]) == ["study", "parameter", "searched", "recommended", "best_value",
                             "best_val_accuracy", "best_val_accuracy_std", "best_seeds",
                             "default", "default_val_accuracy", "margin", "noise", "verdict",
                             "ties", "paired_margin", "paired_95", "paired_seeds"]
    by_name = {r["parameter"]: r for r in rows}
    assert len(rows) == len(study["recommended"])  # the whole recommended configuration
    assert by_name["dropout"]["best_value"] == "0.4" and by_name["dropout"]["searched"] == "True"
    assert by_name["units"]["recommended"] == "8" and by_name["units"]["noise"] == ""
    assert by_name["dropout"]["verdict"] == "detectable"
    assert float(by_name["dropout"]["margin"]) == pytest.approx(0.01)
    md = {r["parameter"]: r for r in got["markdown"][0]}
    assert md["lr"]["recommended"] == "0.001" and md["lr"]["best_val_accuracy"] == "0.8100"


def _final_report(reports, name, val, test, f1s, seeds=None, provenance=None):
    d = reports / name / "final"
    d.mkdir(parents=True)
    m = {"val_accuracy": val, "test_accuracy": test, "test_macro_f1": test - 0.01,
         "params": 123456, "per_class": [{"label": k, "f1": v} for k, v in f1s.items()]}
    if provenance:
        m["provenance"] = provenance
    if not seeds:
        (d / "test_metrics.json").write_text(json.dumps(m))
        return
    for s in seeds:
        (d / f"seed-{s}").mkdir()
        (d / f"seed-{s}" / "test_metrics.json").write_text(json.dumps(m))
    numbers = {"val_accuracy": val, "test_accuracy": test, "test_macro_f1": test - 0.01,
               **{f"f1_{k}": v for k, v in f1s.items()}}
    (d / "seeds.json").write_text(json.dumps({"seeds": seeds, "summary": {
        k: {"mean": v, "std": 0.0123} for k, v in numbers.items()}}))


def test_leaderboard_formats(tmp_path, capsys):
    reports = tmp_path / "reports"
    _final_report(reports, "gru-all", 0.93, 0.925, {"joy": 0.95, "anger": 0.9},
                  provenance={"commit": "0123456789abcdef", "dirty": True})
    _final_report(reports, "lstm", 0.94, 0.92, {"joy": 0.96, "anger": 0.91}, seeds=[1, 2])
    (reports / "baseline").mkdir()
    (reports / "baseline" / "baseline.json").write_text(json.dumps({
        "majority": {"label": "joy", "val": {"accuracy": 0.35, "macro_f1": 0.08},
                     "test": {"accuracy": 0.34, "macro_f1": 0.07}},
        "tfidf_logreg": {"C": 16.0, "val": {"accuracy": 0.88, "macro_f1": 0.85},
                         "test": {"accuracy": 0.87, "macro_f1": 0.84}}}))
    argv = ["leaderboard", "--reports-dir", str(reports)]
    assert main(argv) == 0
    table, written = capsys.readouterr().out.rsplit("\n", 2)[:2]
    assert written == f"written: {reports / 'leaderboard.md'}"
    assert (reports / "leaderboard.md").read_text().endswith("\n\n" + table + "\n")
    assert table.split("\n") == [
        "| model | seeds | commit | parameters | val acc | test acc | test macro-F1 | F1 anger "
        "| F1 joy |",
        "|---|---|---|---|---|---|---|---|---|",
        "| lstm | 2 |  | 123,456 | 0.9400 | 0.9200 ± 0.0123 | 0.9100 ± 0.0123 | 0.910 | 0.960 |",
        "| gru-all | 1 | 0123456+dirty | 123,456 | 0.9300 | 0.9250 | 0.9150 | 0.900 | 0.950 |",
        "| baseline: TF-IDF + logistic regression (C=16) |  |  |  | 0.8800 | 0.8700 | 0.8400 |  "
        "|  |",
        "| baseline: majority class (joy) |  |  |  | 0.3500 | 0.3400 | 0.0700 |  |  |"]
    got = formats(argv, capsys)
    rows = got["json"][0]
    assert [r["name"] for r in rows] == ["lstm", "gru-all",
                                         "baseline: TF-IDF + logistic regression (C=16)",
                                         "baseline: majority class (joy)"]
    assert rows[0]["test_accuracy_std"] == 0.0123 and rows[1]["test_accuracy_std"] is None
    assert [r["name"] for r in got["csv"][0]] == [r["name"] for r in rows]
    assert got["csv"][0][1]["f1_joy"] == "0.95" and got["csv"][0][2]["f1_joy"] == ""
    assert got["markdown"][0] == parse("markdown", table + "\n")  # as in leaderboard.md


def test_baseline_formats(tiny_data, tmp_path, capsys):
    from emotune.baseline import baseline_markdown

    argv = ["baseline", "--data", str(tiny_data), "--reports-dir", str(tmp_path / "r")]
    assert main(argv) == 0
    result = json.loads((tmp_path / "r" / "baseline" / "baseline.json").read_text())
    first, rest = capsys.readouterr().out.split("\n", 1)
    assert first.startswith("computing the baselines of this dataset once")
    assert rest.startswith(baseline_markdown(result) + "written: ")
    assert main(argv) == 0  # the second time from the cache, the same numbers
    assert capsys.readouterr().out.startswith("from the cache: computed before by `emotune "
                                              "baseline --data")
    assert json.loads((tmp_path / "r" / "baseline" / "baseline.json").read_text()) == result
    got = formats(argv, capsys)
    assert [r["baseline"] for r in got["json"][0]] == ["majority", "tfidf_logreg"]
    assert got["json"][0][1]["C"] == result["tfidf_logreg"]["C"]
    assert float(got["csv"][0][0]["test_accuracy"]) == result["majority"]["test"]["accuracy"]
    assert got["markdown"][0] == parse("markdown", baseline_markdown(result))


DATA_INFO_TABLE = """\
sha256 dc52fb8b7bace8556d5f8e141e47114c2aa4f43b076058cdb969461b0fa0ca43
vocabulary (train) 19 words, max_len 9 tokens
             train      val     test
rows           300       90       90
sadness        100       30       30
joy            100       30       30
anger          100       30       30
words per text (p0 / p50 / p90 / p99 / p100):
  train  3 / 6 / 9 / 9 / 9
  val    3 / 6 / 9 / 9 / 9
  test   3 / 6 / 9 / 9 / 9
duplicate texts within a split (with conflicting labels):
  train  1 (0)
  val    0 (0)
  test   0 (0)
texts shared across splits: train&val 0, train&test 0, val&test 0
"""


def test_data_info_formats(tiny_data, capsys):
    argv = ["data", "info", "--data", str(tiny_data)]
    assert main(argv) == 0
    first, rest = capsys.readouterr().out.split("\n", 1)
    assert first.startswith("dataset tiny  (") and rest == DATA_INFO_TABLE
    got = formats(argv, capsys)
    assert main([*argv, "--json"]) == 0  # --json: the whole description, as before
    assert json.loads(capsys.readouterr().out) == got["json"][0]
    assert got["json"][0]["splits"]["val"]["rows"] == 90
    rows = got["csv"][0]
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    assert rows[0]["rows"] == "300" and rows[0]["per_label.joy"] == "100"
    assert rows[0]["words_percentiles.p50"] == "6.0"
    assert got["markdown"][0][2]["duplicate_texts"] == "0"


def test_embeddings_info_formats(tiny_data, tiny_glove, tmp_path, capsys):
    argv = ["embeddings", "info", "--data", str(tiny_data), "--glove", str(tiny_glove),
            "--set", f"embeddings.cache_dir={tmp_path}"]
    got = formats(argv, capsys)
    assert got["json"][0]["dim"] == 8
    (row,) = got["csv"][0]
    assert row["dim"] == "8"
    assert json.loads(row["most_frequent_missing"]) == got["json"][0]["most_frequent_missing"]


def test_stray_prints_go_to_stderr_when_stdout_is_data(tiny_data, capsys, monkeypatch):
    import emotune.data

    real = emotune.data.describe

    def chatty(*args):
        print("Reloading Tuner from ...")  # what KerasTuner does on its own
        return real(*args)

    monkeypatch.setattr(emotune.data, "describe", chatty)
    assert main(["data", "info", "--data", str(tiny_data), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("split,rows,") and "Reloading" in err
    assert main(["data", "info", "--data", str(tiny_data)]) == 0  # the table: as before
    assert capsys.readouterr().out.startswith("Reloading Tuner")


@pytest.fixture(scope="module")
def final_json(tmp_path_factory):
    """One final-train on tiny data with --format json: its stdout and the bundle."""
    import contextlib
    import io

    from conftest import make_tiny_data, make_tiny_glove, tiny_settings
    from emotune.progress import set_quiet

    root = tmp_path_factory.mktemp("final")
    sets = [x for s in tiny_settings(make_tiny_data(root), make_tiny_glove(root), root / "emb")
            for x in ("--set", s)]
    config = root / "tiny.yaml"
    config.write_text("train:\n  lr: 0.02\n")
    set_quiet(True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["final-train", "--config", str(config), *sets, "--models-dir",
                     str(root / "models"), "--reports-dir", str(root / "reports"),
                     "--format", "json"]) == 0
    return out.getvalue(), err.getvalue(), root / "models" / "tiny"


def test_final_train_json(final_json):
    out, err, bundle = final_json
    (row,) = json.loads(out)
    assert row["name"] == "tiny" and row["seed"] == 42 and row["bundle"] == str(bundle)
    assert 0 <= row["test_accuracy"] <= 1 and row["epochs_run"] == 2
    assert "test accuracy" in err and "model: " in err  # the sentence: on stderr


def test_predict_formats(final_json, capsys):
    bundle = final_json[2]
    argv = ["predict", "--model-dir", str(bundle), "i feel so happy today", "so sad, gloomy"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("  i feel so happy today")
    got = formats(argv, capsys)
    rows = got["json"][0]
    assert [r["text"] for r in rows] == argv[3:]
    assert set(rows[0]["probabilities"]) == {"joy", "sadness", "anger"}
    assert [r["label"] for r in rows] == [x.split()[0] for x in lines]
    assert list(got["csv"][0][0]) == ["text", "label", *(f"probabilities.{k}" for k in
                                                          rows[0]["probabilities"])]
    assert got["csv"][0][1]["text"] == "so sad, gloomy"  # quoted: the comma stays in the text
    assert [r["label"] for r in got["markdown"][0]] == [r["label"] for r in rows]

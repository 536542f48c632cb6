"""The TF-IDF + logistic regression baseline beside every recommendation: computed once per
dataset and split, cached, and said plainly when the tuned network trails it."""

from __future__ import annotations

import json

import pytest
from test_search import FakePrepared, FakeTrainer, study

from emotune import baseline as baseline_module
from emotune.analysis import BaselineCheck, Point, load_study
from emotune.baseline import cached_baselines, split_key
from emotune.cli import main
from emotune.config import DataConfig, build_config, parse_sets
from emotune.data import load_dataset
from emotune.search import run_search


def _point(acc: float, n: int = 1, std: float = float("nan")) -> Point:
    return Point("x", acc, std, 0.3, float("nan"), n, trial_id="0003")


@pytest.mark.parametrize("tuned, verdict", [(0.546, "trails"), (0.588, "within noise"),
                                            (0.640, "ahead")])
def test_check_says_whether_the_tuned_configuration_beats_the_baseline(tuned, verdict):
    # 757 validation texts near 0.59: one standard error of the difference is ~0.025
    check = BaselineCheck(0.592, 16.0, _point(tuned), 757)
    assert check.se == pytest.approx(0.0253, abs=5e-4)
    assert check.verdict == verdict
    sentence = check.sentence()
    assert ("TRAILS" in sentence) == (verdict == "trails")
    assert "0.5920" in sentence and f"{tuned:.4f}" in sentence


def test_baselines_are_computed_once_per_split_and_cached(tiny_data, tmp_path, monkeypatch):
    calls = []
    real = baseline_module.baselines
    monkeypatch.setattr(baseline_module, "baselines",
                        lambda ds, test=True: calls.append(test) or real(ds, test))
    dataset = load_dataset(DataConfig(path=str(tiny_data)))
    first, cached = cached_baselines(dataset, tmp_path / "c")
    assert not cached and len(calls) == 1 and first["n_val"] == 90
    assert first["provenance"]["commit"]
    again, cached = cached_baselines(dataset, tmp_path / "c")
    assert cached and len(calls) == 1 and again == json.loads(json.dumps(first))
    # validation only (what recommend asks for) is served by a result with test scores too
    assert cached_baselines(dataset, tmp_path / "c", test=False)[1] and len(calls) == 1
    # another split of the same files is another dataset for the baseline
    one_file = tmp_path / "one.txt"
    one_file.write_text((tiny_data / "train.txt").read_text())
    a = load_dataset(DataConfig(path=str(one_file), split_seed=1))
    b = load_dataset(DataConfig(path=str(one_file), split_seed=2))
    assert a.checksum == b.checksum and split_key(a) != split_key(b)


def _fake_study(tmp_path, tiny_data, checksum: str):
    prepared = FakePrepared()
    prepared.checksum = checksum
    config = build_config(overrides=parse_sets(["epochs=4", f"data.path={tiny_data}"]))
    run_search(study(["lr"]), config, prepared, project=tmp_path / "study",
               trainer=FakeTrainer(), builder=lambda c: None)
    return tmp_path / "study"


def test_recommend_and_report_say_plainly_when_the_tuned_network_trails(tiny_data, tmp_path,
                                                                         capsys):
    # The tiny data's cue words make TF-IDF + LR near perfect; the fake trainer scores 0.81 at best.
    checksum = load_dataset(DataConfig(path=str(tiny_data))).checksum
    project = _fake_study(tmp_path, tiny_data, checksum)
    reports = tmp_path / "reports"
    assert main(["recommend", "--project", str(project), "--reports-dir", str(reports),
                 "--experiments-dir", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "TRAILS the TF-IDF + logistic regression baseline" in out
    data = json.loads((reports / "study" / "recommendations.json").read_text())
    assert data["baseline"]["verdict"] == "trails"
    (cached,) = (tmp_path / "user-cache" / "baselines").glob("*.json")  # conftest's cache
    assert "test" not in json.loads(cached.read_text())["tfidf_logreg"]  # validation only
    assert data["baseline"]["tuned_val_accuracy"] == pytest.approx(0.81)  # lr=1e-3
    assert data["baseline"]["val_accuracy"] > 0.9
    assert "TRAILS" in (reports / "study" / "recommendations.md").read_text()
    assert main(["report", "--project", str(project), "--reports-dir", str(reports)]) == 0
    assert "TRAILS" in (reports / "study" / "summary.md").read_text()
    assert "TRAILS" in (reports / "study" / "index.html").read_text()
    # --no-baseline: nothing computed, nothing said
    assert main(["recommend", "--project", str(project), "--reports-dir", str(reports),
                 "--experiments-dir", str(tmp_path / "e"), "--no-baseline"]) == 0
    assert "baseline" not in capsys.readouterr().out.lower()


def test_no_baseline_on_changed_data_and_the_recommendation_still_written(tiny_data, tmp_path,
                                                                           capsys):
    project = _fake_study(tmp_path, tiny_data, "not-these-files")
    assert main(["recommend", "--project", str(project), "--reports-dir",
                 str(tmp_path / "r"), "--experiments-dir", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "No baseline shown: the study's data files have changed since it ran" in out
    assert json.loads((tmp_path / "r" / "study" / "recommendations.json").read_text())[
        "baseline"] is None
    assert load_study(project).n_val == 2000

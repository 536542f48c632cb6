"""Crash safety with real processes: kill -9 at random moments, a killed worker, the lock."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emotune.cli import main
from emotune.errors import EmotuneError
from emotune.results import read_json, study_lock

# 11 distinct configurations: enough that five short runs cannot finish the study by chance
SWEEP = ["--param", "lr,dropout", "--set", "sweeps.lr=[0.0005, 0.001, 0.002, 0.003, 0.01, 0.03]",
         "--set", "sweeps.dropout=[0.2, 0.3, 0.35, 0.4, 0.5, 0.65]"]
CONFIGS = 11


def _search(tiny_sets: list[str], project: Path, *extra: str) -> list[str]:
    sets = [x for s in tiny_sets for x in ("--set", s)]
    return [sys.executable, "-m", "emotune", "search", *SWEEP, *sets, "--project",
            str(project), *extra]


def _finished(project: Path) -> dict[str, str]:
    """trial id -> its emotune.json text, for every trial on disk that completed.

    Every file must parse (the writes are atomic), whenever the search was killed."""
    out = {}
    for d in sorted((project / "kt").glob("trial_*")):
        for name in ("trial.json", "emotune.json"):
            if (d / name).exists():
                read_json(d / name, attempts=1)  # raises on a torn file
        record = d / "emotune.json"
        if record.exists() and read_json(record)["status"] == "completed":
            out[d.name] = record.read_text()
    if (project / "trials.csv").exists():
        pd.read_csv(project / "trials.csv")  # whole, never half-written
    return out


def test_kill_9_at_random_moments_loses_and_retrains_nothing(tiny_sets, tmp_path):
    project = tmp_path / "study"
    rng = random.Random(20261123)
    kills, seen = 0, {}
    deadline = time.monotonic() + 420
    while kills < 5 and time.monotonic() < deadline:
        proc = subprocess.Popen(_search(tiny_sets, project), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(5, 12))  # ~5 s to import TensorFlow, then ~3 s per trial
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        now = _finished(project)
        for trial, record in seen.items():  # a finished trial is never lost or retrained
            assert now.get(trial) == record, trial
        seen = now
    assert kills == 5
    assert len(seen) < CONFIGS, "the kills came too late to interrupt the study"

    done = subprocess.run(_search(tiny_sets, project), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _finished(project)
    assert {t: final[t] for t in seen} == seen
    trials = pd.read_csv(project / "trials.csv")
    assert (trials["status"] == "completed").all()
    configs = trials[["lr", "dropout"]].apply(tuple, axis=1)
    assert len(trials) == configs.nunique() == CONFIGS  # each configuration trained once
    assert not list(project.glob(".*partial*"))


def test_a_killed_worker_is_restarted_and_its_trial_finished(tiny_sets, tmp_path):
    project = tmp_path / "study"
    proc = subprocess.Popen(_search(tiny_sets, project, "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            victim = _running_worker(project)
        assert victim is not None, "no worker started a trial"
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=400)  # bounded: never a hung chief
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "restarting it to resume its trial" in err
    assert "worker restart(s)" in out
    trials = pd.read_csv(project / "trials.csv")
    assert (trials["status"] == "completed").all()
    configs = trials[["lr", "dropout"]].apply(tuple, axis=1)
    assert len(trials) == configs.nunique() == CONFIGS  # the lost trial was not dropped


def _running_worker(project: Path) -> int | None:
    """The pid of a `--role worker` process of ``project`` that is inside a trial."""
    running = [d for d in (project / "kt").glob("trial_*") if (d / "emotune.json").exists()
               and read_json(d / "emotune.json")["status"] == "running"]
    if not running:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmd and str(project).encode() in cmd:
            return int(proc.name)
    return None


def test_a_second_search_into_a_held_project_is_refused(tiny_sets, tmp_path, capsys):
    project = tmp_path / "study"
    sets = [x for s in tiny_sets for x in ("--set", s)]
    with study_lock(project, "emotune search (the first one)"):
        assert main(["search", "--param", "lr", *sets, "--project", str(project)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "in use by another search" in err and "the first one" in err
    assert not (project / "kt").exists()  # nothing was started
    with pytest.raises(EmotuneError, match="in use"), study_lock(project):
        with study_lock(project):
            pass


def test_the_lock_of_a_killed_search_does_not_block_the_next(tmp_path):
    project = tmp_path / "study"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from emotune.results import study_lock\n"
         "with study_lock(Path(sys.argv[1]), 'holder'):\n"
         "    print('held', flush=True); time.sleep(600)", str(project)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EmotuneError, match=f"pid {holder.pid} .*holder"):
            with study_lock(project):
                pass
    finally:
        holder.kill()
        holder.wait()
    with study_lock(project, "next"):  # the dead owner's lock is gone with it
        assert "next" in (project / "study.lock").read_text()

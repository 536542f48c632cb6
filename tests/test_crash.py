"""Crash safety with real processes: kill -9 at random moments, a killed worker, the lock."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
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
# 7 for the kill test: its kills end each run within a second of its first event, so the
# rerun still has most of the study to do
KILL_SWEEP = ["--param", "lr,dropout", "--set", "sweeps.lr=[0.0005, 0.001, 0.003, 0.01]",
              "--set", "sweeps.dropout=[0.2, 0.35, 0.5, 0.65]"]
KILL_CONFIGS = 7


def _search(tiny_sets: list[str], project: Path, *extra: str, sweep=SWEEP) -> list[str]:
    """The search command; every trial runs to its early stop (--no-prune), in one process
    unless ``extra`` says --workers N."""
    workers = "--workers" in extra
    sets = [x for s in tiny_sets if not (workers and s.startswith("search.workers"))
            for x in ("--set", s)]
    return [sys.executable, "-m", "emotune", "search", *sweep, *sets, "--project",
            str(project), "--no-prune", *extra]


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


class Search:
    """An `emotune search` process, its stderr lines (read by a thread so the pipe never fills)
    and the trial records it writes."""

    def __init__(self, argv: list[str], project: Path) -> None:
        self.project = project
        self.old = self._records()  # records on disk before it started: not its own events
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def _records(self) -> dict[Path, tuple[int, int]]:
        """emotune.json of every trial -> (inode, mtime): each atomic write makes a new one."""
        out = {}
        for path in (self.project / "kt").glob("trial_*/emotune.json"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            out[path] = (st.st_ino, st.st_mtime_ns)
        return out

    def happened(self, event: str) -> bool:
        """``running`` or ``completed``: this process wrote a trial record with that status;
        ``epoch``: it logged the end of an epoch."""
        if event == "epoch":
            return any(EPOCH_LINE.match(line) for line in list(self.lines))
        for path, stamp in self._records().items():
            if self.old.get(path) != stamp:
                try:
                    if read_json(path, attempts=1)["status"] == event:
                        return True
                except EmotuneError:  # replaced between stat and read: look again next time
                    continue
        return False

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.happened(event):
            if self.proc.poll() is not None:
                raise AssertionError(f"the search exited ({self.proc.returncode}) before "
                                     f"'{event}':\n{''.join(self.lines)[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{event}' within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill it if still running (always: a test never leaves a search behind)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)


EPOCH_LINE = re.compile(r"\s*epoch\s+\d+/\d+\s")
# Where each kill lands: a random point in a short window after an event of the search, so
# what is interrupted does not depend on how fast the machine is. Right after a trial starts
# (the oracle's trial.json and its record just written), in training after an epoch, and right
# after a trial's record says completed (trials.csv, the oracle's end of trial, the best model).
KILLS = [("running", 1.0), ("epoch", 1.0), ("completed", 0.3), ("running", 1.0),
         ("completed", 0.3)]


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_retrains_nothing(tiny_sets, tmp_path):
    project = tmp_path / "study"
    rng = random.Random(20261123)
    seen: dict[str, str] = {}
    for event, window in KILLS:
        search = Search(_search(tiny_sets, project, sweep=KILL_SWEEP), project)
        try:
            search.wait_for(event, timeout=240)  # ~5 s to import TensorFlow, ~3 s per trial
            time.sleep(rng.uniform(0, window))
            assert search.proc.poll() is None, f"the search ended {window} s after '{event}'"
        finally:
            search.stop()
        now = _finished(project)
        for trial, record in seen.items():  # a finished trial is never lost or retrained
            assert now.get(trial) == record, (trial, event)
        seen = now
    assert len(seen) < KILL_CONFIGS, "the kills came too late to interrupt the study"
    assert len(seen) >= 2  # two kills came after a trial completed

    done = subprocess.run(_search(tiny_sets, project, sweep=KILL_SWEEP), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _finished(project)
    assert {t: final[t] for t in seen} == seen
    trials = pd.read_csv(project / "trials.csv")
    assert (trials["status"] == "completed").all()
    configs = trials[["lr", "dropout"]].apply(tuple, axis=1)
    assert len(trials) == configs.nunique() == KILL_CONFIGS  # each configuration trained once
    assert not list(project.glob(".*partial*"))


@pytest.mark.slow
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


class Killed(BaseException):
    """A kill -9 as seen from inside the search: nothing catches it (it is no Exception)."""


def test_a_trial_killed_before_kerastuner_records_its_end_is_not_trained_again(tmp_path,
                                                                               monkeypatch):
    import keras_tuner
    from test_search import FakeTrainer, run, study

    real_end_trial = keras_tuner.Oracle.end_trial

    def end_trial(self, trial):  # the process dies between run_trial and the oracle's record
        if trial.trial_id == "0001":
            raise Killed
        return real_end_trial(self, trial)

    monkeypatch.setattr(keras_tuner.Oracle, "end_trial", end_trial)
    first = FakeTrainer()
    with pytest.raises(Killed):
        run(tmp_path, study(["lr"]), first)
    monkeypatch.undo()
    record = tmp_path / "study" / "kt" / "trial_0001" / "emotune.json"
    assert read_json(record)["status"] == "completed"  # finished, as far as emotune says
    finished = record.read_text()

    second = FakeTrainer()
    out = run(tmp_path, study(["lr"]), second)
    assert len(out.trials) == 5 and set(out.trials["status"]) == {"completed"}
    assert first.calls[1] not in second.calls  # not trained again
    assert record.read_text() == finished

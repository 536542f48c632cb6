"""--workers: KerasTuner's chief and workers as real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import pandas as pd
import pytest

from emotune.cluster import auto_workers, free_port, worker_env


def _sets(tiny_sets: list[str]) -> list[str]:
    """The tiny settings as --set pairs, without their single-process search.workers=1 (a
    --set beats the --workers flag), every trial run to its early stop."""
    return [*(x for s in tiny_sets if not s.startswith("search.workers") for x in ("--set", s)),
            "--no-prune"]


def test_auto_workers_is_one_per_core_where_memory_allows(monkeypatch):
    import emotune.cluster as cluster

    assert auto_workers(cores=2, memory_mb=24000) == (2, "2 cores")
    assert auto_workers(cores=1, memory_mb=24000) == (1, "1 core")  # a single process
    n, why = auto_workers(cores=8, memory_mb=4500)  # 4 processes' worth, one is the chief's
    assert n == 3 and "holds 3 trial processes" in why
    n, why = auto_workers(cores=4, memory_mb=2500)  # room for one beside a chief: no chief
    assert n == 1 and "holds no two trial processes" in why
    monkeypatch.setattr(cluster, "memory_available_mb", lambda: None)  # no /proc/meminfo
    assert auto_workers(cores=2) == (2, "2 cores (available memory unknown)")


def test_workers_auto_runs_a_chief_and_workers_unless_told_otherwise(tiny_sets, tmp_path,
                                                                     monkeypatch, capsys):
    from test_search import FakePrepared, FakeTrainer

    import emotune.cluster as cluster
    import emotune.search as search_mod
    from emotune.cli import main
    from emotune.progress import set_quiet

    calls, single = [], []

    def fake_cluster(argv, n, log):
        calls.append((list(argv), n))
        (project / "kt").mkdir(parents=True, exist_ok=True)
        return cluster.ClusterResult(0, 0.0)

    real = search_mod.run_search

    def one_process(study, config, prepared, embedding=None, **kw):
        single.append(1)
        return real(study, config, FakePrepared(), trainer=FakeTrainer(),
                    builder=lambda c: None, **kw)

    monkeypatch.setattr(cluster, "auto_workers", lambda: (2, "2 cores"))
    monkeypatch.setattr(cluster, "run_cluster", fake_cluster)
    monkeypatch.setattr(search_mod, "run_search", one_process)
    set_quiet(False)
    project = tmp_path / "study"
    argv = ["search", "--param", "dropout", *_sets(tiny_sets), "--project", str(project)]
    assert main(argv) == 0  # search.workers: auto is the default
    assert calls[0][1] == 2 and "--workers" not in calls[0][0] and not single
    assert "--workers auto: 2 trial processes (2 cores)" in capsys.readouterr().err
    assert main([*argv, "--workers", "3"]) == 0 and calls[-1][1] == 3
    assert "--workers" not in calls[-1][0] and "3" not in calls[-1][0]  # the chief's argv
    assert main([*argv, "--workers", "1"]) == 0 and len(calls) == 2 and single == [1]
    # a different study in the folder is refused here, before any chief or worker starts
    capsys.readouterr()
    assert main([*argv[:2], "lr", *argv[3:]]) == 1 and len(calls) == 2
    assert "holds a different study" in capsys.readouterr().err
    # trials on disk now: the supervisor says the study resumes (its chief and workers do not)
    monkeypatch.setattr(search_mod, "check_resumable", lambda *a: None)  # FakePrepared's data
    assert main([*argv, "--workers", "2"]) == 0 and len(calls) == 3
    assert re.search(rf"resuming {re.escape(str(project))}: \d+ trials on disk",
                     capsys.readouterr().err)


def test_a_standalone_chief_owns_its_study_and_its_workers_do_not(tiny_sets, tmp_path,
                                                                  monkeypatch):
    """`emotune chief` holds the study's lock (and says when it resumes); `emotune worker`
    does neither: its chief does."""
    import emotune.cluster as cluster
    import emotune.search as search_mod
    from emotune.cli import main
    from emotune.errors import EmotuneError

    lock = {}

    def record(study, config, prepared, embedding=None, **kw):
        lock[os.environ["KERASTUNER_TUNER_ID"]] = kw["lock"]
        raise EmotuneError("recorded")  # no chief is served, no trial is trained

    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.setenv(name, "")  # the commands set them; restored after the test
    monkeypatch.setattr(search_mod, "run_search", record)
    monkeypatch.setattr(cluster, "wait_for", lambda *a: True)
    study = ["--param", "dropout", *_sets(tiny_sets), "--project", str(tmp_path / "study")]
    assert main(["chief", *study, "--port", "8123"]) == 1
    assert main(["worker", *study, "--chief", "127.0.0.1:8123", "--id", "w1"]) == 1
    assert lock == {"chief": True, "w1": False}


def test_worker_env_points_at_the_chief_and_limits_threads():
    env = worker_env("tuner1", 5123, threads=1)
    assert env["KERASTUNER_TUNER_ID"] == "tuner1"
    assert env["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
    assert env["KERASTUNER_ORACLE_PORT"] == "5123"
    assert env["TF_NUM_INTRAOP_THREADS"] == "1"
    assert 1024 <= free_port() <= 65535


@pytest.mark.slow
def test_two_workers_share_a_sweep_and_train_each_value_once(tiny_sets, tmp_path):
    project = tmp_path / "study"
    sets = _sets(tiny_sets)
    proc = subprocess.run(
        [sys.executable, "-m", "emotune", "search", "--param", "dropout", "--set",
         "sweeps.dropout=[0.2, 0.3, 0.4, 0.6]", *sets, "--project", str(project),
         "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "5 trials (5 completed)" in proc.stdout
    trials = pd.read_csv(project / "trials.csv")
    assert sorted(trials["dropout"]) == [0.2, 0.3, 0.4, 0.5, 0.6]  # each value exactly once
    trial_dirs = list((project / "kt").glob("trial_*"))
    status = {json.loads((d / "trial.json").read_text())["status"] for d in trial_dirs}
    assert status == {"COMPLETED"}
    owners = {json.loads((d / "emotune.json").read_text())["tuner_id"] for d in trial_dirs}
    assert owners == {"tuner0", "tuner1"}  # both workers trained
    assert proc.stderr.count("trial ") >= 5  # their progress reached this terminal
    # two trials' epochs interleave there, so each worker's lines name their trial
    epochs = [line for line in proc.stderr.splitlines() if re.search(r"epoch +\d+/", line)]
    ends = [line for line in proc.stderr.splitlines() if "trials done" in line]
    assert len(epochs) >= 5 and len(ends) == 5
    assert all(re.match(r"  \[trial 000[0-4]\] ", line) for line in epochs + ends), epochs + ends
    # a fresh study, whichever worker started last (a smoke check: it could only fail when
    # one worker starts after the other has finished a trial; test_search checks the rule)
    assert "resuming" not in proc.stderr
    assert sum(line.startswith("study ") for line in proc.stderr.splitlines()) == 1  # not 1 each
    assert (project / "chief.log").is_file()


@pytest.mark.slow
def test_two_workers_race_seeds_as_one_process_would(tiny_sets, tmp_path):
    # --repeats auto:2 with --workers: the chief's oracle decides the race from the finished
    # trials; every value gets its first seed once, and the values within noise of the best
    # after round one (on 90 validation texts, most of them) get one more.
    from emotune.noise import Candidate, binomial_se, contenders

    project = tmp_path / "study"
    sets = _sets(tiny_sets)
    proc = subprocess.run(
        [sys.executable, "-m", "emotune", "search", "--param", "dropout", "--set",
         "sweeps.dropout=[0.2, 0.4, 0.6]", *sets, "--project", str(project),
         "--repeats", "auto:2", "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = pd.read_csv(project / "trials.csv")
    assert (trials["status"] == "completed").all()
    first = trials[trials["seeds"] == 42]
    assert sorted(first["dropout"]) == [0.2, 0.4, 0.5, 0.6]  # round one: each value once
    racing = contenders([Candidate(r["dropout"], r["val_accuracy"],
                                   binomial_se(r["val_accuracy"], 90))
                         for _, r in first.iterrows()])
    second = trials[trials["seeds"] == 43]
    # round one's contenders all got their second seed (a value may join the race later,
    # when a second seed moves the best's mean), and no value got more than MAX=2
    assert {c.value for c in racing} <= set(second["dropout"])
    assert len(trials) == len(first) + len(second) and second["dropout"].is_unique


@pytest.mark.slow
def test_chief_and_workers_as_separate_commands(tiny_sets, tmp_path):
    """The multi-machine recipe, on one machine: `emotune chief` and two `emotune worker`."""
    project = tmp_path / "study"
    port = free_port()
    study = ["--param", "dropout", *_sets(tiny_sets), "--project", str(project)]
    emotune = [sys.executable, "-m", "emotune"]
    chief = subprocess.Popen([*emotune, "chief", "--host", "127.0.0.1", "--port", str(port),
                              *study], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([*emotune, "worker", "--chief", f"127.0.0.1:{port}", "--id",
                                 f"w{i}", "--threads", "1", *study], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        for w in workers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err[-2000:]
        out, err = chief.communicate(timeout=120)  # KerasTuner's chief polls every 20 s
        assert chief.returncode == 0, err[-2000:]
    finally:
        for p in [chief, *workers]:
            if p.poll() is None:
                p.kill()
    assert "5 trials (5 completed)" in out
    trials = pd.read_csv(project / "trials.csv")
    assert sorted(trials["dropout"]) == [0.2, 0.3, 0.4, 0.5, 0.6]
    owners = {json.loads((d / "emotune.json").read_text())["tuner_id"]
              for d in (project / "kt").glob("trial_*")}
    assert owners <= {"w0", "w1"} and owners


def test_a_worker_without_a_chief_gives_up_in_bounded_time(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emotune", "worker", "--chief",
                           f"127.0.0.1:{free_port()}", "--wait", "2", "--param", "lr",
                           "--project", str(tmp_path / "p")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "no KerasTuner chief answers" in proc.stderr and "emotune chief" in proc.stderr


def test_a_worker_still_shutting_down_when_the_chief_exits_is_no_error(monkeypatch, tmp_path):
    # KerasTuner's chief exits (code 0) once it has told every worker to stop; a worker that
    # has not exited yet at that moment is finishing, not orphaned: the study is done.
    from emotune import cluster

    class Fake:
        def __init__(self, role, polls_until_exit):
            self.role, self.left = role, polls_until_exit

        def poll(self):
            if self.left > 0:
                self.left -= 1
                return None
            return 0

        def wait(self, timeout=None):
            self.left = 0
            return 0

        def terminate(self):
            self.left = 0

        def send_signal(self, sig):
            signals.append((self.role, sig))

    made, signals = [], []

    def popen(cmd, **kw):
        role = cmd[cmd.index("--role") + 1]
        made.append(Fake(role, 1 if role == "chief" else 10**6))
        return made[-1]

    monkeypatch.setattr(cluster.subprocess, "Popen", popen)
    monkeypatch.setattr(cluster, "_listening", lambda port: True)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    result = cluster.run_cluster(["search"], 2, tmp_path / "chief.log", chief_exit_s=1)
    assert result.restarts == 0
    assert [p.role for p in made] == ["chief", "worker", "worker"]


def test_the_chief_is_told_when_every_worker_has_exited(monkeypatch, tmp_path):
    # The workers exit while the chief is still running (KerasTuner's chief would look again
    # only in 20 s, or never when a budget stopped the workers): the supervisor signals it.
    from emotune import cluster

    class Fake:
        def __init__(self, role):
            self.role, self.code = role, None if role == "chief" else 0

        def poll(self):
            return self.code

        def wait(self, timeout=None):
            self.code = 0
            return 0

        def send_signal(self, sig):
            signals.append((self.role, sig))

        def terminate(self):
            raise AssertionError("the chief exits when told; no terminate")

    signals = []
    monkeypatch.setattr(cluster.subprocess, "Popen",
                        lambda cmd, **kw: Fake(cmd[cmd.index("--role") + 1]))
    monkeypatch.setattr(cluster, "_listening", lambda port: True)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    cluster.run_cluster(["search"], 2, tmp_path / "chief.log")
    # (no signal where there is none, on Windows: the chief's own check, then the time limit)
    assert signals == ([("chief", cluster.DONE_SIGNAL)] if cluster.DONE_SIGNAL else [])


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 here")
def test_the_done_signal_ends_a_chiefs_search_and_nothing_else(tmp_path):
    # In a chief the signal ends what runs inside chief_stops_when_told (KerasTuner's serving
    # loop) and the rest goes on; after it, a late signal is ignored, not the default (exit).
    code = ("import time\n"
            "from emotune.cluster import chief_stops_when_told\n"
            "with chief_stops_when_told():\n"
            "    print('serving', flush=True)\n"
            "    time.sleep(120)\n"
            "print('after', flush=True)\n"
            "time.sleep(1)\n"
            "print('still here', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KERASTUNER_TUNER_ID": "chief"})
    watchdog = threading.Timer(120, proc.kill)  # a stalled child fails the test, not hangs it
    watchdog.start()
    try:
        assert proc.stdout.readline() == "serving\n"
        proc.send_signal(signal.SIGUSR1)
        assert proc.stdout.readline() == "after\n"
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == "still here\n", err
    assert "told that every worker has exited: the search ends here" in err
    # not a chief (a worker, a single process): the context does nothing
    from emotune.cluster import chief_stops_when_told

    before = signal.getsignal(signal.SIGUSR1)
    with chief_stops_when_told():
        assert signal.getsignal(signal.SIGUSR1) == before
    assert signal.getsignal(signal.SIGUSR1) == before


@pytest.mark.slow
def test_a_budget_stopped_study_with_workers_ends_when_its_workers_do(tiny_sets, tmp_path):
    # Workers stopped by --budget never ask the chief again, so KerasTuner's chief would wait
    # for them until the supervisor's limit (90 s) and be terminated; it is told instead.
    project = tmp_path / "study"
    proc = subprocess.run(
        [sys.executable, "-m", "emotune", "search", "--param", "dropout", *_sets(tiny_sets),
         "--project", str(project), "--workers", "2", "--budget", "1s"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "budget 1s spent" in proc.stdout
    # the chief ended its search on the signal, not by the supervisor's terminate
    log = (project / "chief.log").read_text()
    assert "told that every worker has exited: the search ends here" in log

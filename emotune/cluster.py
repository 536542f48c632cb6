"""A KerasTuner chief and N workers on this machine, supervised (``emotune search --workers``).

KerasTuner's own distributed mode does the work: the chief process serves the oracle over gRPC
(``KERASTUNER_TUNER_ID=chief``) and each worker (``tuner0``, ``tuner1``...) pulls a trial,
trains it and reports back. The supervisor here only starts the processes on 127.0.0.1 and a
free port, gives each worker its share of the cores, and bounds every wait: a worker that dies
is restarted with the same id, so the chief hands it the trial it was running (a dead worker
otherwise leaves its trial RUNNING forever and the chief never exits); once the last worker has
exited the chief is told so (``DONE_SIGNAL``) instead of waiting for KerasTuner's own check,
which comes every 20 s, and gets a bounded time to exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotune.errors import EmotuneError
from emotune.progress import log

PROCESS_MB = 1000  # a trial process peaks near 860 MB RSS (CALIBRATION.md), with headroom
CHIEF_START_S = 120  # the chief imports TensorFlow and reads the data before it listens
CHIEF_EXIT_S = 90  # KerasTuner's chief polls for its exit every 20 s
MAX_RESTARTS = 3
# Sent by the supervisor to its chief once every worker has exited: the study is over.
DONE_SIGNAL = getattr(signal, "SIGUSR1", None)  # None on Windows: the chief's own poll


class StudyDone(Exception):
    """Raised in the chief's main thread by ``DONE_SIGNAL`` (``chief_stops_when_told``)."""


@contextlib.contextmanager
def chief_stops_when_told() -> Iterator[None]:
    """Around a KerasTuner chief's ``tuner.search()``: ``DONE_SIGNAL`` ends it at once.

    KerasTuner's chief, once a worker has been told to stop, looks only every 20 s whether
    all of them have and no trial is running. A worker stopped by ``--budget`` never asks
    again, so such a study waited the supervisor's 90 s (``CHIEF_EXIT_S``) after its last
    trial; and KerasTuner's own oracles (Bayesian, random, Hyperband) stop a worker while
    another still trains, 0-20 s more. (emotune's grid and racing oracles answer IDLE until
    the last trial ends, so there both workers are told to stop together.) The supervisor sees
    its workers exit and sends the signal; every trial has then ended and been saved by the
    chief. Elsewhere (a worker, a single process) this does nothing; after the search a late
    signal is ignored rather than ending the process.
    """
    if (DONE_SIGNAL is None or os.environ.get("KERASTUNER_TUNER_ID") != "chief"
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    serving = [True]

    def done(signum: int, frame: Any) -> None:
        signal.signal(DONE_SIGNAL, signal.SIG_IGN)  # once
        if serving[0]:
            raise StudyDone

    signal.signal(DONE_SIGNAL, done)
    try:
        yield
        serving[0] = False
    except StudyDone:
        log("told that every worker has exited: the search ends here")
    finally:
        serving[0] = False
        signal.signal(DONE_SIGNAL, signal.SIG_IGN)


def cores_available() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_available_mb() -> int | None:
    """MemAvailable from /proc/meminfo in MB; None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def auto_workers(cores: int | None = None, memory_mb: int | None = None) -> tuple[int, str]:
    """``--workers auto``: one trial process per core, as many as memory holds beside the
    chief (``PROCESS_MB`` each); 1 (a single process, no chief) on one core or when memory
    holds no two. Returns the count and why, for the log.

    Example:
        >>> auto_workers(cores=2, memory_mb=24000)
        (2, '2 cores')
    """
    cores = cores or cores_available()
    memory_mb = memory_available_mb() if memory_mb is None else memory_mb
    if cores < 2:
        return 1, "1 core"
    if memory_mb is None:
        return cores, f"{cores} cores (available memory unknown)"
    fits = memory_mb // PROCESS_MB - 1  # the chief holds one process's worth
    if fits < 2 <= cores:
        return 1, (f"{cores} cores, but {memory_mb} MB of memory available holds no two trial "
                   f"processes of ~{PROCESS_MB} MB beside a chief")
    if fits < cores:
        return fits, (f"{cores} cores, but {memory_mb} MB of memory available holds "
                      f"{fits} trial processes of ~{PROCESS_MB} MB beside the chief")
    return cores, f"{cores} cores"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(host: str, port: int, seconds: float) -> bool:
    """Whether something listens at ``host:port`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), or a one-line error saying what is expected."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EmotuneError(f"--chief must be HOST:PORT, e.g. 10.0.0.5:8000. Received: {text!r}")
    return host.strip("[]"), int(port)


def serve_env(host: str, port: int) -> dict[str, str]:
    """The environment that makes a KerasTuner search the chief, listening on host:port."""
    return {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": host,
            "KERASTUNER_ORACLE_PORT": str(port)}


def thread_env(intra: int, inter: int = 1) -> dict[str, str]:
    """TensorFlow's thread settings for a trial process (a worker: ``intra`` = its cores)."""
    return {"TF_NUM_INTRAOP_THREADS": str(intra), "TF_NUM_INTEROP_THREADS": str(inter),
            "OMP_NUM_THREADS": str(intra)}


def worker_env(tuner_id: str, port: int, threads: int | None = None,
               host: str = "127.0.0.1") -> dict[str, str]:
    env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host,
               KERASTUNER_ORACLE_PORT=str(port))
    if threads:
        env.update(thread_env(threads))
    return env


def is_worker() -> bool:
    """Whether this process is a KerasTuner worker, as KerasTuner decides it (``worker_env``):
    a chief's address, and an id that is not the chief's."""
    return ("KERASTUNER_ORACLE_IP" in os.environ
            and os.environ.get("KERASTUNER_TUNER_ID", "") not in ("", "chief"))


@dataclass
class ClusterResult:
    restarts: int
    seconds: float


def run_cluster(argv: Sequence[str], workers: int, chief_log: Path, *,
                cores: int | None = None, chief_exit_s: float = CHIEF_EXIT_S) -> ClusterResult:
    """Run ``emotune <argv>`` as a chief and ``workers`` workers until the study is done.

    The chief's messages go to ``chief_log``; the workers' progress to this terminal.
    """
    cores = cores or cores_available()
    threads = max(1, cores // workers)
    port = free_port()
    cmd = [sys.executable, "-m", "emotune", *argv]
    start = time.monotonic()
    log(f"starting a KerasTuner chief on 127.0.0.1:{port} and {workers} workers "
        f"({threads} thread{'s' if threads > 1 else ''} each)")
    chief_log.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(chief_log, "w")  # noqa: SIM115 - closed in `finally`
    chief = subprocess.Popen([*cmd, "--role", "chief"], env={**os.environ,
                                                             **serve_env("127.0.0.1", port)},
                             stdout=log_file, stderr=subprocess.STDOUT)
    procs: dict[str, subprocess.Popen] = {}
    restarts = 0
    try:
        while not _listening(port):
            if chief.poll() is not None:
                tail = chief_log.read_text().strip().splitlines()
                raise EmotuneError(f"the KerasTuner chief exited before serving "
                                   f"({tail[-1] if tail else 'no message'}; see {chief_log})")
            if time.monotonic() - start > CHIEF_START_S:
                raise EmotuneError(f"the KerasTuner chief did not listen on port {port} "
                                   f"within {CHIEF_START_S}s")
            time.sleep(0.5)

        def launch(tuner_id: str) -> subprocess.Popen:
            return subprocess.Popen([*cmd, "--role", "worker"],
                                    env=worker_env(tuner_id, port, threads))

        runs = {f"tuner{i}": 0 for i in range(workers)}
        procs = {t: launch(t) for t in runs}
        while procs:
            time.sleep(0.5)
            for tuner_id, proc in list(procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del procs[tuner_id]
                if code == 0:
                    continue
                if code == 1:  # a reported user error (printed by the worker): no retry
                    raise EmotuneError(f"worker {tuner_id} stopped with an error (above)")
                runs[tuner_id] += 1
                if runs[tuner_id] > MAX_RESTARTS:
                    raise EmotuneError(f"worker {tuner_id} died {runs[tuner_id]} times (exit "
                                       f"{code}); finished trials are kept — rerun to resume")
                restarts += 1
                log(f"worker {tuner_id} died (exit {code}); restarting it to resume its trial")
                procs[tuner_id] = launch(tuner_id)
            chief_code = chief.poll()
            if chief_code == 0 and procs:
                # KerasTuner's chief exits once it has told every worker to stop: the study
                # is done and the workers are only shutting down.
                _wait_for(list(procs.values()), chief_exit_s)
                break
            if chief_code is not None and procs:
                raise EmotuneError("the KerasTuner chief died; finished trials are kept — "
                                   "rerun the same command to resume")
        if chief.poll() is None and DONE_SIGNAL is not None:
            chief.send_signal(DONE_SIGNAL)  # every worker has exited (chief_stops_when_told)
        try:
            chief.wait(timeout=chief_exit_s)
        except subprocess.TimeoutExpired:
            chief.terminate()  # every worker is done: nothing is lost
    finally:
        for proc in [*procs.values(), chief]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log_file.close()
    return ClusterResult(restarts, time.monotonic() - start)


def _wait_for(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """Wait up to ``timeout_s`` in all for ``procs`` to exit (the caller ends the rest)."""
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return

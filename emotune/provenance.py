"""Which code, command and machine wrote a result: recorded in every file emotune writes that
holds numbers (study.json, each trial's emotune.json, metrics.json, test_metrics.json,
seeds.json, bundle.json).

The CPU matters as much as the commit: the same code and seed give identical numbers on the
same CPU type, but a chaotic trial (a high learning rate) can round differently on another CPU
model (an AMD Zen 3 with AVX2 against a Zen 5 with AVX-512, say), so a result names both.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("tensorflow", "keras", "keras-tuner")
CODE = ("emotune", "setup.py", "pyproject.toml")  # what "dirty" is about: not reports/, runs/
_command: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """The command line being run (``emotune.cli.main`` sets it; the default is sys.argv)."""
    global _command
    _command = ["emotune", *argv]


def provenance() -> dict[str, Any]:
    """emotune's version, git commit and dirty flag, the command line, the CPU model and SIMD
    level, Python's, TensorFlow's, Keras's and KerasTuner's versions, and the time.

    Example:
        >>> provenance()["simd"]  # doctest: +SKIP
        'AVX2'
    """
    commit, dirty = git_commit()
    cpu, simd = cpu_model()
    argv = _command if _command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    return {"emotune": _version("emotune"), "commit": commit, "dirty": dirty,
            "command": " ".join(argv), "cpu": cpu, "simd": simd,
            "python": platform.python_version(),
            **{name: _version(name) for name in PACKAGES},
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def benchmark_header(*notes: str) -> str:
    """The first line of a benchmark's output: commit (``+dirty`` when emotune's code or
    ``benchmarks/`` has uncommitted changes), CPU model, SIMD level, cores, then ``notes``.

    Example:
        >>> benchmark_header("TF intra-op threads 1")  # doctest: +SKIP
        'commit 40df9b7; AMD EPYC (family 26, model 2), AVX-512, 2 cores; TF intra-op threads 1'
    """
    commit, dirty = git_commit((*CODE, "benchmarks"))
    cpu, simd = cpu_model()
    return "; ".join([f"commit {commit[:7]}{'+dirty' if dirty else ''}",
                      f"{cpu}, {simd}, {os.cpu_count()} cores", *notes])


def git_commit(paths: tuple[str, ...] = CODE) -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout emotune is imported from, dirty meaning uncommitted
    changes under ``paths`` (the code, ``CODE``, by default: results in reports/ and
    experiments/ do not count); ("unknown", None) when it is not a git checkout (an installed
    wheel) or git is missing. Asked each time: a long search may outlive a commit."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown", None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no", "--", *paths], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return head.stdout.strip(), bool(status.stdout.strip())


@functools.lru_cache(maxsize=1)
def cpu_model() -> tuple[str, str]:
    """(CPU model, SIMD level): e.g. ("AMD EPYC (family 25, model 1)", "AVX2")."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break  # the first processor is enough
    except OSError:
        return platform.processor() or platform.machine() or "unknown", "unknown"
    name = fields.get("model name", platform.machine() or "unknown")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name, simd_level(set(fields.get("flags", "").split()))


def simd_level(flags: set[str]) -> str:
    """The widest x86 vector extension in ``flags`` (/proc/cpuinfo's), as people name it."""
    for flag, level in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                        ("sse4_2", "SSE4.2"), ("asimd", "NEON")):
        if flag in flags:
            return level
    return "unknown"


@functools.cache
def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"

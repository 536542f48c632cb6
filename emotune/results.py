"""Studies on disk: the trial files, trials.csv and the best model written, and read back as
pandas DataFrames. Every write is atomic; nothing here trains or draws. The study's lock lives
here too.

A study folder holds ``study.json`` (what was searched), ``trials.csv`` and KerasTuner's own
project in ``kt/``: one ``trial_<id>/`` per trial with KerasTuner's ``trial.json`` and emotune's
``emotune.json`` (full hyperparameters, status, reason, per-seed metrics) and ``history.csv``
(and ``model.keras`` with ``--keep-models``); ``best_model.keras`` and ``best_trial.json`` are the
best trial's so far.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emotune.errors import EmotuneError

KT_DIR = "kt"
METRICS = ("val_accuracy", "val_loss", "val_macro_f1", "val_micro_f1", "val_weighted_f1",
           "val_kl", "val_hamming", "val_accuracy_se", "val_macro_f1_se", "val_micro_f1_se",
           "val_loss_se", "best_epoch", "epochs_run", "train_accuracy", "train_loss", "seconds")
# each seed's, and their spread (val_micro_f1: multi-label studies only)
BY_SEED = ("val_accuracy", "val_loss", "val_macro_f1", "val_micro_f1")
MULTI_LABEL_ONLY = ("val_micro_f1", "val_micro_f1_se", "val_hamming")  # columns of their studies
KT_STATUS = {"RUNNING": "running", "IDLE": "running", "COMPLETED": "completed",
             "INVALID": "failed", "FAILED": "failed", "STOPPED": "failed"}


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` when the block ends
    normally, delete it otherwise, so ``path`` is either complete or absent."""
    if path.exists():
        raise EmotuneError(f"{path} already exists; choose another name or remove it")
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


LOCK_FILE = "study.lock"


@contextlib.contextmanager
def study_lock(project: Path, command: str = "") -> Iterator[None]:
    """Hold ``project``'s lock for the block, or refuse at once if another search holds it.

    An ``flock`` on ``study.lock``: the kernel drops it when its owner exits or is killed, so a
    dead owner never blocks the next run (the file itself stays; it only says who held it last).
    """
    import fcntl
    import socket
    from datetime import datetime

    project.mkdir(parents=True, exist_ok=True)
    path = project / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            raise EmotuneError(
                f"{project} is in use by another search ({owner}); wait for it to finish, "
                f"or use another --project") from None
        owner = (f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{datetime.now():%Y-%m-%d %H:%M:%S}{f': {command}' if command else ''}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def clear_project(project: Path) -> None:
    """Delete a study's contents (``--overwrite``), keeping the lock file its owner holds."""
    if not project.is_dir():
        return
    for entry in project.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, attempts: int = 5) -> dict:
    """Read a JSON file; a file being rewritten right now (KerasTuner writes its trial files
    in place, and with --workers another process may be writing) is read again shortly."""
    for attempt in range(attempts):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            if attempt == attempts - 1:
                raise EmotuneError(f"{path} cannot be read ({e}); the study folder is damaged "
                                   f"— restore the file or start over with --overwrite") from None
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def trial_dirs(project: Path) -> list[Path]:
    return sorted((project / KT_DIR).glob("trial_*"))


def _last_line(message: str | None) -> str:
    lines = [x.strip() for x in (message or "").strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


def trial_row(trial_dir: Path) -> dict[str, Any]:
    """One trials.csv row from a trial's files."""
    kt = read_json(trial_dir / "trial.json")
    mine_path = trial_dir / "emotune.json"
    mine = read_json(mine_path) if mine_path.is_file() else {}
    row: dict[str, Any] = {"trial_id": kt["trial_id"]}
    status = mine.get("status") or KT_STATUS.get(kt.get("status", ""), "running")
    if kt.get("status") in ("INVALID", "FAILED") and status == "running":
        status = "failed"
    row["status"] = status
    row["reason"] = mine.get("reason") or (
        _last_line(kt.get("message")) if status == "failed" else "")
    row.update(mine.get("hyperparameters") or kt.get("hyperparameters", {}).get("values", {}))
    per_seed = mine.get("runs", [])
    multi = any(r.get("val_micro_f1") is not None for r in per_seed)
    for m in METRICS:
        if m in MULTI_LABEL_ONLY and not multi:
            continue
        vals = [r[m] for r in per_seed if r.get(m) is not None]
        row[m] = sum(vals) / len(vals) if vals else math.nan
        if m in BY_SEED:
            row[f"{m}_std"] = _std(vals)
    row["seconds"] = sum(r.get("seconds", 0.0) for r in per_seed) if per_seed else math.nan
    row["seeds"] = " ".join(str(r["seed"]) for r in per_seed)
    for m in BY_SEED:  # each seed's, for paired and pooled numbers
        if m in MULTI_LABEL_ONLY and not multi:
            continue
        row[f"{m}_by_seed"] = " ".join(f"{r[m]:.6g}" for r in per_seed if r.get(m) is not None)
    row["sweeps"] = " ".join(mine.get("sweeps", []))
    return row


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0 if values else math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def load_trials(project: str | Path) -> Any:
    """Every trial of a study as a DataFrame, straight from the trial files.

    Args:
        project: a study folder written by ``emotune search`` (``run_search``).

    Returns:
        One row per trial, by trial id: ``trial_id``, ``status`` (running, completed, pruned,
        failed), ``reason``, every tunable parameter, the metrics (mean over seeds:
        ``val_accuracy``, ``val_loss``, ``val_macro_f1``, ``best_epoch``, ...), their
        ``*_std`` over seeds, ``seconds``, ``seeds``, ``sweeps`` and ``objective`` (what the
        study ranks by): the columns of trials.csv.

    Raises:
        EmotuneError: ``project`` is not a study folder, or a trial file is damaged.

    Example:
        >>> trials = load_trials("runs/gru-all")  # doctest: +SKIP
        >>> trials.sort_values("val_accuracy", ascending=False).head(3)  # doctest: +SKIP
    """
    import pandas as pd

    project = Path(project)
    if not (project / KT_DIR).is_dir():
        raise EmotuneError(f"{project} is not an emotune study (no {KT_DIR}/ folder); "
                           f"give the --project of an `emotune search`")
    rows = [trial_row(d) for d in trial_dirs(project) if (d / "trial.json").is_file()]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
        # what the study ranks its trials by (val_accuracy for studies from before objectives)
        study = project / "study.json"
        record = read_json(study) if study.is_file() else {}
        frame["objective"] = record.get("study", {}).get("objective", "val_accuracy")
    return frame


def write_trials_csv(project: Path) -> Any:
    frame = load_trials(project)
    atomic_write_text(project / "trials.csv", frame.to_csv(index=False))
    return frame


def trial_history(project: str | Path, trial_id: str) -> Any:
    """Per-epoch history of one trial (every seed, a ``seed`` column)."""
    import pandas as pd

    path = Path(project) / KT_DIR / f"trial_{trial_id}" / "history.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


# ---------------------------------------------------------------- what a trial leaves


def write_trial_record(trial_dir: Path, record: dict[str, Any]) -> None:
    """A trial's ``emotune.json``: status, reason, hyperparameters and per-seed metrics."""
    atomic_write_json(trial_dir / "emotune.json", record)


def read_trial_record(trial_dir: Path) -> dict[str, Any]:
    """A trial's ``emotune.json``; empty if it has none yet."""
    path = trial_dir / "emotune.json"
    return read_json(path) if path.is_file() else {}


def write_trial_history(trial_dir: Path, histories: list[Any]) -> None:
    """A trial's per-epoch history, every seed's (each frame with its ``seed`` column)."""
    import pandas as pd

    atomic_write_text(trial_dir / "history.csv", pd.concat(histories).to_csv(index=False))


def save_keras_model(model: Any, path: Path) -> None:
    """``model.save`` into a temporary file renamed into place."""
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, path)


def save_best_model(project: Path, model: Any, trial_id: str, summary: dict[str, Any]) -> None:
    """The best trial so far: its model as ``best_model.keras``, and ``best_trial.json``."""
    save_keras_model(model, project / "best_model.keras")
    atomic_write_json(project / "best_trial.json", {"trial_id": trial_id, **summary})


def trial_model_path(project: Path, trial_id: str) -> Path:
    """Where a trial's model was kept: its own (``--keep-models``), or the best one's."""
    path = project / KT_DIR / f"trial_{trial_id}" / "model.keras"
    if path.is_file():
        return path
    best = project / "best_trial.json"
    if best.is_file() and read_json(best).get("trial_id") == trial_id:
        return project / "best_model.keras"
    raise EmotuneError(f"trial {trial_id} kept no model; rerun with --keep-models to keep "
                       f"every trial's model")


def finished_curves(project: Path, like: dict[str, Any] | None = None,
                    objective: str = "val_accuracy", monitor: str = "val_loss"
                    ) -> list[list[float]]:
    """Per epoch, the ``objective`` each completed trial (its first seed) would have reported
    had it stopped there (``search.reported_so_far``, at its best ``monitor`` epoch so far),
    signed so that higher is better (a loss negated), for the pruning rule; with ``like``,
    only of the trials with those parameter values."""
    import pandas as pd

    from emotune.scores import objective as find
    from emotune.scores import per_epoch
    from emotune.search import reported_so_far
    from emotune.space import same_setting

    goal = find(objective)
    curves = []
    for d in trial_dirs(project):
        record = read_trial_record(d)
        values = record.get("hyperparameters", {})
        if like is not None and not all(same_setting(values.get(k), v) for k, v in like.items()):
            continue
        if record.get("status") == "completed" and (d / "history.csv").is_file():
            h = pd.read_csv(d / "history.csv")
            h = h[h["seed"] == h["seed"].iloc[0]]
            column = per_epoch(objective)
            if column not in h:
                continue  # a history from before per-epoch scores
            watch = h[monitor] if monitor in h else [math.nan] * len(h)
            values = [goal.signed(v) for v in h[column]]
            curves.append(reported_so_far(values, list(watch), monitor != "val_loss"))
    return curves


def top(frame: Any, n: int = 5, objective: str = "val_accuracy") -> Any:
    """The ``n`` best trials, best first: those that ran to the end, then pruned ones (their
    numbers are lower bounds, so they never rank above a measured one)."""
    from emotune.scores import objective as find

    if frame.empty:
        return frame
    goal = find(objective)
    done = frame[frame["status"].isin(["completed", "pruned"])]
    keys = ["_cut", goal.name] + ([] if goal.name == "val_loss" else ["val_loss"])
    order = [True, not goal.maximize] + ([] if goal.name == "val_loss" else [True])
    return done.assign(_cut=done["status"] == "pruned").sort_values(
        keys, ascending=order).drop(columns="_cut").head(n)

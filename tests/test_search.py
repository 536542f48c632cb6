"""Search logic with a fake trial result (no training), as KerasTuner's own tests do."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotune import search as search_mod
from emotune.config import build_config, override, parse_sets
from emotune.errors import EmotuneError, TrainingError
from emotune.results import load_trials
from emotune.search import StudySpec, parse_budget, run_search, should_prune
from emotune.space import CORE, expected_cost, hp_values
from emotune.train import TrainResult

DEFAULT = hp_values(build_config())


class FakeSplit:
    labels = np.zeros(2000, dtype=int)  # 2,000 validation texts, as the emotion dataset's


class FakePrepared:
    checksum = "fake"
    val = FakeSplit()


class FakeTrainer:
    """Scores a config by a formula; reports per-epoch values so pruning can act."""

    def __init__(self, fail_on=None, clock=None, interrupt_at=None):
        self.calls: list[dict] = []
        self.models: list = []  # what each fit was given to train
        self.fail_on = fail_on or (lambda values: None)
        self.clock = clock
        self.interrupt_at = interrupt_at

    @staticmethod
    def score(values: dict, seed: int) -> float:
        s = 0.8 - abs(math.log10(values["lr"]) + 3) * 0.05 - abs(values["dropout"] - 0.4) * 0.1
        s += {"adam": 0.02, "rmsprop": 0.01, "sgd": -0.1}[values["optimizer"]]
        return s + 0.001 * (seed - 42)

    def __call__(self, config, model=None, on_epoch=None, prefix=""):
        values = {**hp_values(config), "seed": config.train.seed}
        self.calls.append(values)
        self.models.append(model)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        error = self.fail_on(values)
        if error:
            raise error
        if self.clock is not None:
            self.clock[0] += 60
        final = self.score(values, config.train.seed)
        rows, stopped = [], False
        for epoch in range(1, config.train.epochs + 1):
            acc = final * (0.5 + 0.5 * epoch / config.train.epochs)
            rows.append({"epoch": epoch, "val_accuracy": acc, "val_loss": 1 - acc,
                         "accuracy": acc, "loss": 1 - acc})
            if on_epoch is not None and on_epoch(epoch, rows[-1]):
                stopped = True
                break
        history = pd.DataFrame(rows)
        last = rows[-1]
        metrics = {"val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
                   "val_macro_f1": last["val_accuracy"] - 0.05, "best_epoch": len(rows),
                   "epochs_run": len(rows), "train_accuracy": last["accuracy"],
                   "train_loss": last["loss"], "seconds": 1.0}
        return TrainResult(None, history, metrics, stopped)


def study(params=("lr",), strategy="sweep", trials=None, repeats=1, prune=False):
    return StudySpec("gru", tuple(params), strategy, trials, repeats, None, prune)


def run(tmp_path: Path, st: StudySpec, trainer: FakeTrainer, sets=(), **kw):
    config = build_config(overrides=parse_sets(["epochs=4", *sets]))
    return run_search(st, config, FakePrepared(), project=tmp_path / "study", trainer=trainer,
                      builder=lambda c: None, **kw)


def test_sweep_visits_every_value_exactly_once(tmp_path):
    trainer = FakeTrainer()
    out = run(tmp_path, study(["lr"]), trainer)
    assert sorted(c["lr"] for c in trainer.calls) == [0.0001, 0.0005, 0.001, 0.005, 0.01]
    for c in trainer.calls:  # everything else at its default
        assert {k: c[k] for k in CORE if k != "lr"} == {k: DEFAULT[k] for k in CORE
                                                          if k != "lr"}
    assert trainer.calls[0] == {**DEFAULT, "seed": 42}  # the default configuration first
    assert len(out.trials) == 5 and set(out.trials["status"]) == {"completed"}
    assert out.trials.equals(load_trials(tmp_path / "study"))
    on_disk = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert list(on_disk["lr"]) == list(out.trials["lr"])


def test_one_build_per_trial_and_seed_and_fit_trains_that_model(tmp_path):
    # KerasTuner's contract: HyperModel.build(hp) returns the model that fit(hp, model)
    # trains. No extra build for space discovery, none per trial beyond one per seed.
    built = []

    def builder(config):
        built.append((config.train.lr, config.train.seed))
        return f"model {len(built)}"

    trainer = FakeTrainer()
    config = build_config(overrides=parse_sets(["epochs=2"]))
    run_search(study(["lr"], repeats=2), config, FakePrepared(), project=tmp_path / "s",
               trainer=trainer, builder=builder)
    assert len(built) == 10  # 5 values x 2 seeds, and nothing else
    assert sorted(built) == sorted((c["lr"], c["seed"]) for c in trainer.calls)
    assert trainer.models == [f"model {i}" for i in range(1, 11)]


def test_all_six_sweeps_train_the_shared_default_once(tmp_path):
    trainer = FakeTrainer()
    out = run(tmp_path, study(list(CORE)), trainer)
    assert len(trainer.calls) == 19  # 5 + 4 + 5 + 5 + 3 + 2 values, the default shared
    keys = [tuple(c[k] for k in CORE) for c in trainer.calls]
    assert len(set(keys)) == 19
    assert keys.count(tuple(DEFAULT[k] for k in CORE)) == 1
    config = build_config()
    for name in CORE:  # each sweep is complete: every value, the others at default
        others = [k for k in CORE if k != name]
        seen = {c[name] for c in trainer.calls if all(c[k] == DEFAULT[k] for k in others)}
        assert seen == set(config.search.sweeps[name]), name
    default_row = out.trials[out.trials["sweeps"].str.split().str.len() == 6]
    assert len(default_row) == 1 and default_row.iloc[0]["lr"] == DEFAULT["lr"]


def test_resume_after_a_kill_never_retrains_finished_trials(tmp_path):
    first = FakeTrainer(interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, study(["lr", "dropout"]), first)
    finished = load_trials(tmp_path / "study")
    assert list(finished["status"]) == ["completed"] * 3 + ["running"]
    second = FakeTrainer()
    out = run(tmp_path, study(["lr", "dropout"]), second)
    assert len(out.trials) == 9 and set(out.trials["status"]) == {"completed"}
    done_first = {tuple(c[k] for k in CORE) for c in first.calls[:3]}
    done_second = [tuple(c[k] for k in CORE) for c in second.calls]
    assert not done_first & set(done_second)  # finished trials were not trained again
    assert len(done_second) == 6  # the interrupted trial, then the 5 never started
    third = FakeTrainer()
    assert run(tmp_path, study(["lr", "dropout"]), third).trained_now == 0
    assert third.calls == []


def test_only_the_process_that_owns_the_study_says_it_resumes(tmp_path, capsys):
    from emotune.progress import set_quiet

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, study(["optimizer"]), FakeTrainer(interrupt_at=2))  # 1 trial finished
    set_quiet(False)  # the autouse fixture silences the log; it sets it back after the test
    capsys.readouterr()
    run(tmp_path, study(["optimizer"]), FakeTrainer(), lock=False)  # a --workers process
    assert "resuming" not in capsys.readouterr().err  # its supervisor says it, or nobody
    run(tmp_path, study(["optimizer"]), FakeTrainer())
    assert f"resuming {tmp_path / 'study'}: 3 trials on disk" in capsys.readouterr().err


def test_a_single_process_marks_no_trial_on_its_lines(tmp_path, capsys, monkeypatch):
    from emotune.progress import set_quiet

    # an id without a chief's address is no worker, as KerasTuner decides it
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    set_quiet(False)  # the autouse fixture silences the log; it sets it back after the test
    run(tmp_path, study(["optimizer"]), FakeTrainer())
    ends = [line for line in capsys.readouterr().err.splitlines() if "trials done" in line]
    assert len(ends) == 3 and all(line.startswith("  val accuracy ") for line in ends), ends


def test_overwrite_starts_over_and_other_settings_are_refused(tmp_path):
    run(tmp_path, study(["optimizer"]), FakeTrainer())
    with pytest.raises(EmotuneError, match="holds a different study .*units"):
        run(tmp_path, study(["optimizer"]), FakeTrainer(), sets=["units=64"])
    with pytest.raises(EmotuneError, match="holds a different study"):
        run(tmp_path, study(["lr"]), FakeTrainer())
    again = FakeTrainer()
    out = run(tmp_path, study(["lr"]), again, overwrite=True)
    assert len(again.calls) == 5 and len(out.trials) == 5


def test_budget_launches_no_new_trial_once_spent(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(search_mod.time, "monotonic", lambda: clock[0])
    trainer = FakeTrainer(clock=clock)  # each trial takes 60 "seconds"
    out = run(tmp_path, study(["lr"]), trainer, budget_s=150)
    assert out.budget_spent and out.trained_now == 3  # started at 0, 60 and 120
    assert len(load_trials(tmp_path / "study")) == 3
    rest = FakeTrainer()
    assert run(tmp_path, study(["lr"]), rest).trained_now == 2  # the rerun finishes it


def test_repeats_aggregate_mean_and_std(tmp_path):
    trainer = FakeTrainer()
    out = run(tmp_path, study(["optimizer"], repeats=3), trainer)
    assert len(trainer.calls) == 9
    row = out.trials[out.trials["optimizer"] == "adam"].iloc[0]
    scores = [FakeTrainer.score({**DEFAULT}, s) for s in (42, 43, 44)]
    assert row["seeds"] == "42 43 44"
    assert row["val_accuracy"] == pytest.approx(np.mean(scores))
    assert row["val_accuracy_std"] == pytest.approx(np.std(scores, ddof=1))
    assert row["seconds"] == pytest.approx(3.0)


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    def fail(values):
        if values["lr"] == 0.01:
            return TrainingError("training diverged: the loss became NaN in epoch 2")
        return None

    out = run(tmp_path, study(["lr"]), FakeTrainer(fail_on=fail))
    failed = out.trials[out.trials["status"] == "failed"]
    assert list(failed["lr"]) == [0.01]
    assert "NaN" in failed.iloc[0]["reason"]
    assert (out.trials["status"] == "completed").sum() == 4


def test_an_error_that_would_fail_every_trial_stops_the_search(tmp_path):
    def fail(values):
        return RuntimeError("disk full") if values["lr"] == 0.0005 else None

    with pytest.raises(EmotuneError, match="search stopped: RuntimeError: disk full"):
        run(tmp_path, study(["lr"]), FakeTrainer(fail_on=fail))
    frame = load_trials(tmp_path / "study")
    assert list(frame["status"]) == ["completed", "completed", "failed"]  # kept on disk


@pytest.mark.parametrize("epoch, value, expected", [
    (1, 0.1, False),  # still in warm-up
    (2, 0.5, True),  # below the median (0.6) of three finished trials
    (2, 0.6, False),  # at the median
    (4, 0.1, False),  # only one finished trial reached epoch 4
])
def test_median_stopping_rule(epoch, value, expected):
    finished = [[0.5, 0.6, 0.7], [0.4, 0.5], [0.6, 0.7, 0.8, 0.9]]
    assert should_prune(epoch, value, finished, warmup=2, min_trials=2) is expected


def test_pruning_judges_the_objective_the_trial_would_report():
    # The pruned quantity is the reported one: val accuracy at the lowest val loss so far
    # (the epoch early stopping restores), not the best accuracy of any epoch.
    from emotune.search import median_stopping, reported_so_far

    assert reported_so_far([0.9, 0.4, 0.7], [0.3, 0.5, 0.2]) == [0.9, 0.9, 0.7]
    finished = [[0.5, 0.6, 0.7], [0.4, 0.6], [0.6, 0.7, 0.8]]  # medians 0.5, 0.6, 0.75

    def judged(curve):
        rule = median_stopping(finished, warmup=2, min_trials=2)
        return [rule(e, {"val_accuracy": a, "val_loss": loss})
                for e, (a, loss) in enumerate(curve, 1)]

    assert judged([(0.9, 0.3), (0.4, 0.5)]) == [False, False]  # keeps its epoch-1 weights
    assert judged([(0.55, 0.5), (0.5, 0.45)]) == [False, True]  # 0.5 < 0.6
    # its best accuracy (0.65) beats the median, but the epoch it would report does not
    assert judged([(0.65, 0.6), (0.5, 0.4)]) == [False, True]


def test_pruning_finds_a_bar_that_finishes_while_the_trial_runs():
    # With several workers the default (the bar) may finish after this trial started: the
    # rule asks for the finished curves at every epoch it checks, not once at the start.
    from emotune.search import median_stopping

    finished: list[list[float]] = []
    asked = []
    rule = median_stopping(lambda: asked.append(1) or finished, warmup=2, min_trials=1)
    assert rule(1, {"val_accuracy": 0.5, "val_loss": 0.9}) is False and not asked  # warm-up
    assert rule(2, {"val_accuracy": 0.5, "val_loss": 0.8}) is False  # no bar yet
    finished.append([0.7, 0.8, 0.85])  # another worker finished the default
    assert rule(3, {"val_accuracy": 0.5, "val_loss": 0.7}) is True
    assert len(asked) == 2


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path):
    # Stopping then saves nothing, and the trial has its complete number, not a lower bound.
    # (It happened when the bar, the default, finished on the other worker only late.)
    from emotune.search import median_stopping

    rule = median_stopping([[0.8, 0.9, 0.95]], warmup=2, min_trials=1, epochs=3)
    assert [rule(e, {"val_accuracy": 0.1, "val_loss": 2.0}) for e in (1, 2, 3)] == [
        False, True, False]
    last = median_stopping([[0.8, 0.9, 0.95]], warmup=3, min_trials=1, epochs=3)
    assert [last(e, {"val_accuracy": 0.1, "val_loss": 2.0}) for e in (1, 2, 3)] == [
        False, False, False]
    # a whole sweep whose warm-up reaches the last epoch (4): values below the default run to
    # the end and are complete; with one epoch left to save, they are pruned at epoch 3
    out = run(tmp_path / "late", study(["lr"], prune=True), FakeTrainer(),
              sets=["prune_warmup=4", "prune_z=0"])
    assert set(out.trials["status"]) == {"completed"} and (out.trials["epochs_run"] == 4).all()
    out = run(tmp_path / "early", study(["lr"], prune=True), FakeTrainer(),
              sets=["prune_warmup=3", "prune_z=0"])
    pruned = out.trials[out.trials["status"] == "pruned"]
    assert len(pruned) >= 2 and (pruned["epochs_run"] == 3).all()


def test_pruning_is_noise_aware():
    # With z standard errors of margin (binomial, on n_val texts) a trial trailing the bar by
    # less than that goes on; by more, it stops.
    from emotune.noise import binomial_se

    finished = [[0.80, 0.85]]
    se = math.hypot(binomial_se(0.84, 2000), binomial_se(0.85, 2000))  # ~0.011
    assert should_prune(2, 0.84, finished, 2, 1) is True  # any shortfall, without noise
    assert should_prune(2, 0.84, finished, 2, 1, n_val=2000, z=1.0) is False  # 0.01 < 1 SE
    assert should_prune(2, 0.85 - 2.1 * se, finished, 2, 1, n_val=2000, z=2.0) is True
    assert should_prune(2, 0.85 - 1.9 * se, finished, 2, 1, n_val=2000, z=2.0) is False
    assert should_prune(2, 0.84, finished, 2, 1, n_val=100, z=1.0) is False  # fewer texts


def test_sweep_pruning_measures_each_value_against_the_default(tmp_path):
    # In one-at-a-time sweeps the bar is the default's curve, not the median of every sweep:
    # values that end above the default are never stopped, values below it are.
    trainer = FakeTrainer()
    out = run(tmp_path, study(["lr", "dropout"], prune=True), trainer,
              sets=["prune_warmup=1", "prune_z=0"])
    default = FakeTrainer.score({"lr": 0.001, "dropout": 0.5, "optimizer": "adam"}, 42)
    for _, t in out.trials.iterrows():
        score = FakeTrainer.score({"lr": t["lr"], "dropout": t["dropout"],
                                   "optimizer": t["optimizer"]}, 42)
        if abs(score - default) > 1e-6:  # a tie may go either way
            assert (t["status"] == "pruned") == (score < default), (t["lr"], t["dropout"])
    assert (out.trials["status"] == "pruned").sum() >= 3


def _pruned_by_hand(trials: pd.DataFrame, warmup: int, min_trials: int,
                    counts=lambda row: True, epochs: int = 4) -> list[tuple[str, int]]:
    """(status, epochs run) of each trial, in trial order, under median stopping worked out by
    hand from FakeTrainer's curves (``run`` trains 4 epochs): from epoch ``warmup`` on, a trial
    stops at the first epoch where its best val accuracy so far is below the median, at that
    epoch, of the completed trials before it that ``counts`` admits, once there are
    ``min_trials`` of those."""
    done: list[list[float]] = []
    out = []
    for _, row in trials.sort_values("trial_id").iterrows():
        final = FakeTrainer.score(row, 42)
        curve = [final * (0.5 + 0.5 * e / epochs) for e in range(1, epochs + 1)]
        outcome = ("completed", epochs)
        for e in range(warmup, epochs):  # never at the last epoch: nothing left to save
            bar = [c[e - 1] for c in done]
            if len(bar) >= min_trials and max(curve[:e]) < statistics.median(bar):
                outcome = ("pruned", e)
                break
        if outcome[0] == "completed" and counts(row):
            done.append(curve)
        out.append(outcome)
    return out


def _outcomes(trials: pd.DataFrame) -> list[tuple[str, int]]:
    rows = trials.sort_values("trial_id")
    return list(zip(rows["status"], rows["epochs_run"].astype(int)))


def test_pruning_stops_bad_trials_early(tmp_path):
    # One-at-a-time sweeps: the bar is the default configuration's curve alone, so a value is
    # stopped at the end of the warm-up exactly when it is heading below the default, and
    # prune_min_trials (5 here, more trials than the bar ever holds) does not apply.
    out = run(tmp_path / "sweep", study(["optimizer", "dropout"], prune=True), FakeTrainer(),
              sets=["sweeps.dropout=[0.2, 0.38, 0.41, 0.46, 0.5, 0.65]", "prune_warmup=2",
                    "prune_min_trials=5", "prune_z=0"])
    trials = out.trials
    assert len(trials) == 8  # the default, 2 other optimizers, 5 other dropouts
    is_default = lambda row: (row["optimizer"], row["dropout"]) == ("adam", 0.5)  # noqa: E731
    expected = _pruned_by_hand(trials, 2, 1, counts=is_default)
    assert _outcomes(trials) == expected
    # 0.46 ends above the default but below the median of the better values before it
    assert expected != _pruned_by_hand(trials, 2, 1)  # the default's curve made a difference
    pruned = trials[trials["status"] == "pruned"]
    assert set(zip(pruned["optimizer"], pruned["dropout"])) == {
        ("rmsprop", 0.5), ("sgd", 0.5), ("adam", 0.2), ("adam", 0.65)}  # below the default
    assert (pruned["epochs_run"] == 2).all()  # stopped early: 2 of 4 epochs
    best = trials.loc[trials["val_accuracy"].idxmax()]
    assert best["status"] == "completed" and best["dropout"] == 0.41
    # Pruned trials still count in the sweeps, with the best value they reached.
    from emotune.analysis import load_study, sweeps

    (opt,) = [s for s in sweeps(load_study(tmp_path / "sweep" / "study"))
              if s.param == "optimizer"]
    assert "sgd" in [p.value for p in opt.points]

    # Joint searches: the bar is the median of every completed trial, once there are
    # prune_min_trials of them. (In both studies no two dropouts are equally far from 0.4,
    # FakeTrainer's best: no ties with the bar.)
    out = run(tmp_path / "grid", study(["optimizer", "dropout"], "grid", prune=True),
              FakeTrainer(), sets=["sweeps.dropout=[0.2, 0.35, 0.5, 0.65]", "prune_warmup=2",
                                   "prune_min_trials=3", "prune_z=0"])
    trials = out.trials
    assert len(trials) == 12
    expected = _pruned_by_hand(trials, 2, 3)
    assert _outcomes(trials) == expected
    assert expected != _pruned_by_hand(trials, 2, 1)  # prune_min_trials made a difference
    pruned = trials[trials["status"] == "pruned"]
    assert "sgd" in set(pruned["optimizer"]) and (pruned["epochs_run"] == 2).all()
    assert (trials.sort_values("trial_id")["status"].iloc[:3] == "completed").all()


@pytest.mark.parametrize("strategy, trials", [("random", 5), ("bayesian", 4), ("grid", 6)])
def test_joint_searches_respect_trials_and_choices(tmp_path, strategy, trials):
    trainer = FakeTrainer()
    out = run(tmp_path, study(list(CORE), strategy, trials=trials), trainer)
    assert len(out.trials) == trials == len(trainer.calls)
    sweeps = build_config().search.sweeps
    for c in trainer.calls:
        for name in CORE:
            assert c[name] in sweeps[name]
    assert len({tuple(c[k] for k in CORE) for c in trainer.calls}) == trials


def test_hyperband_trains_trials_for_its_epoch_budgets(tmp_path):
    trainer = FakeTrainer()
    out = run(tmp_path, study(["lr", "units"], "hyperband"), trainer, sets=["epochs=9"])
    assert len(out.trials) == len(trainer.calls) > 5
    runs = out.trials["epochs_run"]
    assert runs.max() == 9 and runs.min() < 9  # short trials first, survivors get more


@pytest.mark.parametrize("text, seconds", [("15m", 900), ("90s", 90), ("1h30m", 5400),
                                           ("2h", 7200), ("0.5m", 30)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


def test_parse_budget_rejects_nonsense():
    with pytest.raises(EmotuneError, match="not a duration"):
        parse_budget("soon")


@pytest.mark.parametrize("strategy", ["random", "bayesian"])
def test_joint_search_resumes_after_a_kill(tmp_path, strategy):
    first = FakeTrainer(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, study(list(CORE), strategy, trials=5), first)
    second = FakeTrainer()
    out = run(tmp_path, study(list(CORE), strategy, trials=5), second)
    assert len(out.trials) == 5 and set(out.trials["status"]) == {"completed"}
    assert len(first.calls) - 1 + len(second.calls) == 5  # only the killed trial ran twice


def test_moving_the_data_folder_does_not_block_a_resume(tmp_path):
    run(tmp_path, study(["optimizer"]), FakeTrainer(), sets=["data.path=/old/place"])
    again = FakeTrainer()
    out = run(tmp_path, study(["optimizer"]), again, sets=["data.path=/new/place"])
    assert again.calls == [] and len(out.trials) == 3


def test_a_study_from_before_newer_settings_resumes(tmp_path):
    # study.json of a study made before train.monitor, search.objective and
    # train.steps_per_execution's new default: it ran with the defaults of those settings
    run(tmp_path, study(["optimizer"]), FakeTrainer())
    path = tmp_path / "study" / "study.json"
    record = json.loads(path.read_text())
    del record["base_config"]["train"]["monitor"]
    del record["study"]["objective"]
    record["base_config"]["train"]["steps_per_execution"] = 1
    path.write_text(json.dumps(record))
    again = FakeTrainer()
    out = run(tmp_path, study(["optimizer"]), again)
    assert again.calls == [] and len(out.trials) == 3
    with pytest.raises(EmotuneError, match="differs in train.monitor"):
        run(tmp_path, study(["optimizer"]), FakeTrainer(), sets=["monitor=val_accuracy"])


def test_a_trial_file_caught_mid_write_is_read_again(tmp_path):
    import threading

    from emotune.results import read_json

    path = tmp_path / "trial.json"
    path.write_text('{"trial_id": "00')  # a writer has got this far
    threading.Timer(0.15, lambda: path.write_text('{"trial_id": "0001"}')).start()
    assert read_json(path) == {"trial_id": "0001"}
    path.write_text("{broken")
    with pytest.raises(EmotuneError, match="cannot be read"):
        read_json(path, attempts=2)


def _race(tmp_path, trainer, race=3, **kw):
    st = StudySpec("gru", ("lr",), "sweep", None, 1, None, False, race)
    return run(tmp_path, st, trainer, sets=["sweeps.lr=[0.001, 0.0009, 0.002, 0.01]"], **kw)


def test_racing_gives_extra_seeds_only_to_values_within_noise_of_the_best(tmp_path):
    # FakeTrainer: lr 0.001 (the default) scores 0.810, 0.0009 0.8077, 0.002 0.795, 0.01 0.760,
    # each +0.001 per seed. On 2,000 texts one SE of a difference is ~0.012: only 0.0009 is
    # within noise of the best, and the two never separate, so both get all three seeds.
    trainer = FakeTrainer()
    out = _race(tmp_path, trainer)
    seeds = {}
    for c in trainer.calls:
        seeds.setdefault(c["lr"], []).append(c["seed"])
    assert seeds == {0.001: [42, 43, 44], 0.0009: [42, 43, 44], 0.002: [42], 0.01: [42]}
    assert [c["lr"] for c in trainer.calls[:4]] == [0.001, 0.0009, 0.002, 0.01]  # round one
    assert len(out.trials) == 8  # one row per seed's run in trials.csv
    rows = out.trials[out.trials["lr"] == 0.0009]
    assert sorted(rows["seeds"].astype(str)) == ["42", "43", "44"]
    # a value never clearly behind that is separated by its second seed stops there
    trainer = FakeTrainer()
    _race(tmp_path / "max2", trainer, race=2)
    assert len(trainer.calls) == 6


def test_a_race_resumed_after_a_kill_makes_the_same_decisions(tmp_path):
    whole = FakeTrainer()
    _race(tmp_path / "whole", whole)
    first = FakeTrainer(interrupt_at=6)  # killed during the race's second round
    with pytest.raises(KeyboardInterrupt):
        _race(tmp_path / "killed", first)
    second = FakeTrainer()
    out = _race(tmp_path / "killed", second)
    key = lambda c: (c["lr"], c["seed"])  # noqa: E731
    assert sorted(map(key, first.calls[:5] + second.calls)) == sorted(map(key, whole.calls))
    assert len(out.trials) == 8 and set(out.trials["status"]) == {"completed"}


def test_sweeps_run_the_default_first_then_the_longest_expected(tmp_path):
    # The default is every sweep's pruning bar; then the widest GRU, the smallest batch, the
    # fine-tuned embedding, so that with several workers none is left alone at the end.
    trainer = FakeTrainer()
    run(tmp_path, study(["units", "batch_size", "embedding"]), trainer,
        sets=["sweeps.units=[64, 128, 256]", "sweeps.batch_size=[16, 32, 128]"])
    order = [(c["units"], c["batch_size"], c["embedding"]) for c in trainer.calls]
    assert order == [(128, 32, "frozen"), (256, 32, "frozen"), (128, 16, "frozen"),
                     (128, 32, "fine-tuned"), (128, 128, "frozen"), (64, 32, "frozen")]
    costs = [expected_cost(override(build_config(), {"model.units": u, "train.batch_size": b,
                                                     "model.embedding": e}))
             for u, b, e in order[1:]]
    assert costs == sorted(costs, reverse=True)


def test_a_capped_grid_keeps_grid_order(tmp_path):
    trainer = FakeTrainer()
    run(tmp_path, study(["units", "batch_size"], "grid", trials=3), trainer,
        sets=["sweeps.units=[64, 128, 256]", "sweeps.batch_size=[16, 32]"])
    # which three combinations run is the cap's choice in grid order, not the costliest three
    assert [(c["units"], c["batch_size"]) for c in trainer.calls] == [(128, 32), (128, 16),
                                                                      (64, 32)]


def test_a_racing_seed_joins_the_queue_as_soon_as_its_race_allows(tmp_path):
    # The lr sweep's race can start once its three values have run, while units=64 (the
    # cheapest trial) still waits: the racing seeds, longer expected, go before it.
    trainer = FakeTrainer()
    st = StudySpec("gru", ("units", "lr"), "sweep", None, 1, None, False, 3)
    run(tmp_path, st, trainer,
        sets=["sweeps.units=[64, 128, 256]", "sweeps.lr=[0.001, 0.0009, 0.01]"])
    calls = [(c["units"], c["lr"], c["seed"]) for c in trainer.calls]
    assert calls[:4] == [(128, 0.001, 42), (256, 0.001, 42), (128, 0.0009, 42),
                         (128, 0.01, 42)]
    assert calls[4][2] == 43  # a second seed of an lr value within noise
    assert calls.index((64, 0.001, 42)) > 4
    assert sorted(calls) == sorted(set(calls))  # nothing trained twice


def test_a_worker_that_would_wait_takes_a_running_contenders_next_seed(tmp_path):
    # Two workers ask the chief's oracle in turn (KerasTuner's create_trial/end_trial, as the
    # gRPC chief relays them). A value's next seed waits for its running one, except when the
    # asking worker would otherwise sit idle: then it takes that seed at once.
    import keras_tuner as kt

    from emotune.space import POINT, REPEAT, SearchSpace
    from emotune.tuner import make_oracle

    config = build_config(overrides=parse_sets(["sweeps.lr=[0.001, 0.0009, 0.01]"]))
    st = StudySpec("gru", ("lr",), "sweep", None, 1, None, False, 3)
    space = SearchSpace(config, ["lr"], True, 3)
    oracle = make_oracle(st, config, space, n_val=2000)
    oracle._set_project_dir(str(tmp_path), "kt")
    hp = kt.HyperParameters()
    space.declare(hp)
    oracle.update_space(hp)
    score = {"default": 0.810, "lr=0.0009": 0.8077, "lr=0.01": 0.760}  # one SE ~0.012

    def ask(worker):
        trial = oracle.create_trial(worker)
        values = trial.hyperparameters.values
        return trial, (values[POINT], values[REPEAT]) if trial.status == "RUNNING" else None

    def finish(trial):
        oracle.update_trial(trial.trial_id, {"val_accuracy": score[
            trial.hyperparameters.values[POINT]], "pruned": 0.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)

    for _ in score:  # round one, one worker
        finish(ask("tuner0")[0])
    a, got_a = ask("tuner0")
    b, got_b = ask("tuner1")
    assert (got_a, got_b) == (("default", 1), ("lr=0.0009", 1))  # both contenders race
    finish(a)
    a, got_a = ask("tuner0")
    assert got_a == ("default", 2)  # its own next seed: nothing of it is running
    finish(a)
    a, got_a = ask("tuner0")
    # the only seed left belongs to lr=0.0009, whose second seed still runs on tuner1:
    # tuner0 takes the third now instead of waiting
    assert got_a == ("lr=0.0009", 2)
    # a third worker waits: both contenders have all their seeds, and lr=0.01, clearly
    # behind, gets none, ahead or not
    assert ask("tuner2")[0].status == "IDLE"
    finish(b)
    finish(a)
    assert ask("tuner1")[0].status == "STOPPED"  # every contender has all three seeds
    assert ask("tuner0")[0].status == "STOPPED"


def test_racing_needs_a_fixed_set_of_values(tmp_path):
    st = StudySpec("gru", ("lr",), "bayesian", 4, 1, None, False, 3)
    with pytest.raises(Exception, match="--repeats auto races seeds"):
        run(tmp_path, st, FakeTrainer())


def test_a_grid_races_too_and_its_extra_seeds_do_not_count_against_trials(tmp_path):
    # A 2 x 3 grid capped at 4 configurations: the first round takes 4, then the contenders
    # get extra seeds beyond that cap.
    st = StudySpec("gru", ("lr", "dropout"), "grid", 4, 1, None, False, 2)
    trainer = FakeTrainer()
    out = run(tmp_path, st, trainer, sets=["sweeps.lr=[0.001, 0.0009]",
                                           "sweeps.dropout=[0.5, 0.45, 0.2]"])
    first = [(c["lr"], c["dropout"]) for c in trainer.calls if c["seed"] == 42]
    extra = [(c["lr"], c["dropout"]) for c in trainer.calls if c["seed"] == 43]
    assert len(first) == 4 and len(set(first)) == 4
    assert extra and set(extra) <= set(first) and len(extra) == len(set(extra))
    assert len(out.trials) == len(first) + len(extra)


def test_a_study_run_without_pruning_says_how_to_resume_it(tmp_path):
    run(tmp_path, study(["lr"], prune=False), FakeTrainer())  # as before pruning was default
    with pytest.raises(EmotuneError, match=r"differs in prune\) \(it ran without pruning: "
                                           r"add --no-prune to resume it\)"):
        run(tmp_path, study(["lr"], prune=True), FakeTrainer())

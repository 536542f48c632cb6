"""Seconds per epoch with each speed lever on and off, side by side in one process.

    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion [--epochs 4]
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --steps
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --fixed
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --onednn
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --parallel
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --scores
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --trace [--rounds 3]

Each row trains the same configuration for ``--epochs`` epochs (no early stopping) with one
setting changed, alternating base and variant; it prints the median seconds of epochs 2..N
(the first epoch carries the graph build), the first epoch's seconds, and the ratio.

``--steps`` times single training steps instead: the default GRU on fixed batches of 32 texts
at a few lengths, compiled with and without ``jit_compile`` (XLA), and built with
``GRU(unroll=True)`` (no while loop: the time steps written out, one trace per length, what
length buckets would need), alternating, median of ``--repeat`` steps after a warm-up.

``--fixed`` splits a step inside ``fit`` into the GRU and the rest: epochs of the default GRU
and of the same model with the GRU replaced by a mean over time (embedding, dense, loss,
optimizer, Keras's step and callbacks), each at 1 and at 10 batches per compiled call
(``steps_per_execution``: what is paid per call, not per batch, is divided by 10).

``--scores`` prices the per-epoch validation scores (macro- and weighted-F1, cross-entropy,
KL: ``callbacks.ValidationScores``, one prediction pass) against validation as Keras does it
(``evaluate``: loss and accuracy only), the default GRU, alternating, twice each.

``--trace`` prices two fixed costs of every trained model. The second trace of the training
step: the default GRU with its optimizer's and metrics' variables created before ``fit``
(``models.build_state``, the default) and inside the first traced step (Keras's deferred
build: the step is traced twice), alternating, ``--rounds`` pairs after a warm-up fit; it
prints the first epoch's seconds, how often the step was traced, and whether every number of
the histories is the same. And the prediction of validation that ``fit`` made after training
until ``0e9c6cd`` (now taken from the best epoch's scoring pass): timed on each trained model,
with whether it equals ``TrainResult.val_probs``.

``--onednn`` runs the default GRU in child processes with one thread (as a ``--workers``
process runs), ``TF_ENABLE_ONEDNN_OPTS`` 1 and 0 alternating (tensorflow#56350), each twice.

``--parallel`` prices the thread settings of trial processes: the default GRU trained by N child
processes at once, each with its own TensorFlow thread settings (today's ``--workers 2``: one
intra-op and one inter-op thread each), against one two-thread process (``--workers 1``),
settings alternating, ``--rounds`` rounds. It prints each child's seconds per epoch and the
epochs per second of all of them together: a study's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotune.cluster import thread_env  # noqa: E402
from emotune.config import build_config, override, parse_sets  # noqa: E402
from emotune.progress import set_quiet  # noqa: E402
from emotune.provenance import benchmark_header  # noqa: E402
from emotune.train import fit, load_inputs, steps_per_epoch  # noqa: E402

LEVERS = [
    ("gru steps_per_execution 1 -> 16 (10 used)",
     {"model.type": "gru", "train.steps_per_execution": 1},
     {"train.steps_per_execution": 16}),
    ("cnn steps_per_execution 1 -> 16 (10 used)",
     {"model.type": "cnn", "train.steps_per_execution": 1},
     {"train.steps_per_execution": 16}),
    ("gru mask on -> off", {"model.type": "gru"}, {"model.mask": False}),
    ("gru frozen -> fine-tuned", {"model.type": "gru"}, {"model.embedding": "fine-tuned"}),
    ("gru batch 32 -> 128", {"model.type": "gru"}, {"train.batch_size": 128}),
]


def epoch_seconds(config, prepared, embedding) -> tuple[float, float, float]:
    r = fit(config, prepared, embedding)
    s = list(r.history["seconds"])
    return statistics.median(s[1:]), s[0], r.metrics["val_accuracy"]


def step_ms(config, prepared, embedding, length: int, jit: bool, repeat: int,
            unroll: bool = False) -> float:
    from unittest import mock

    import keras
    import numpy as np

    from emotune.models import build_model

    gru = keras.layers.GRU
    with mock.patch.object(keras.layers, "GRU",
                           lambda *a, **k: gru(*a, **{**k, "unroll": unroll})):
        model = build_model(config.model, config.train, embedding.matrix,
                            len(prepared.label_names))
    model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=jit)
    rows = np.flatnonzero(prepared.train.lengths >= length)[:32]
    x, y = prepared.train.ids[rows, :length], prepared.train.labels[rows]
    for _ in range(5):
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def fixed_cost(base, prepared, embedding, steps: int) -> int:
    """Per-step milliseconds inside ``fit``: the GRU model and a no-RNN model, 1 and 10 steps
    per compiled call, alternating; the median of epochs 2..N of each."""
    from unittest import mock

    from keras import layers

    from emotune import models

    def mean_over_time(x, cfg):
        return layers.GlobalAveragePooling1D()(x)

    runs = {}
    for _ in range(2):
        for rnn in (True, False):
            for spe in (1, 16):
                config = override(base, {"train.steps_per_execution": spe})
                with mock.patch.dict(models.ENCODERS, {} if rnn else {"gru": mean_over_time}):
                    per_epoch, _, acc = epoch_seconds(config, prepared, embedding)
                runs.setdefault((rnn, spe), []).append(per_epoch)
    ms = {k: 1000 * statistics.median(v) / steps for k, v in runs.items()}
    for rnn in (True, False):
        name = "gru 128" if rnn else "no RNN (mean over time)"
        print(f"{name:<24} {ms[rnn, 1]:5.2f} ms per step at 1 per call, {ms[rnn, 16]:5.2f} "
              f"at 10 per call ({ms[rnn, 1] / ms[rnn, 16]:4.2f}x)", flush=True)
    per_call = (ms[False, 1] - ms[False, 16]) * 10 / 9
    print(f"paid per call, not per batch: {per_call:.2f} ms; the rest of a no-RNN step: "
          f"{ms[False, 1] - per_call:.2f} ms; the GRU: {ms[True, 1] - ms[False, 1]:.2f} ms",
          flush=True)
    return 0


def scores_cost(base, prepared, embedding, rounds: int = 2) -> int:
    """Epoch seconds with emotune's per-epoch scores and with Keras's own validation, in
    ``rounds`` alternating pairs; the paired differences' mean and its standard error."""
    from unittest import mock

    from emotune import callbacks

    class KerasValidation(callbacks.ValidationScores):
        def on_epoch_end(self, epoch, logs=None):  # what fit(validation_data=...) runs
            out = self.model.evaluate(self.data, verbose=0, return_dict=True)
            logs.update({f"val_{k}": float(v) for k, v in out.items()})

    runs: dict[str, list[float]] = {"keras": [], "scores": []}
    accs: dict[str, float] = {}
    for _ in range(rounds):
        for who in ("keras", "scores"):
            patch = {} if who == "scores" else {"ValidationScores": KerasValidation}
            with mock.patch.multiple(callbacks, **patch) if patch else contextlib.nullcontext():
                per_epoch, _, accs[who] = epoch_seconds(base, prepared, embedding)
            runs[who].append(per_epoch)
            print(f"{who:<7} {per_epoch:.2f} s per epoch", flush=True)
    validation_pass(base, prepared, embedding)
    if not rounds:
        return 0
    k, sc = statistics.median(runs["keras"]), statistics.median(runs["scores"])
    rel = [100 * (b / a - 1) for a, b in zip(runs["keras"], runs["scores"])]
    se = statistics.stdev(rel) / len(rel) ** 0.5 if len(rel) > 1 else float("nan")
    print(f"per-epoch scores: {k:.2f} -> {sc:.2f} s per epoch (medians); paired "
          f"{statistics.mean(rel):+.1f}% ± {se:.1f}% (1 SE over {len(rel)} pairs); val acc "
          f"after the epochs {accs['keras']:.4f} -> {accs['scores']:.4f}", flush=True)
    return 0


def validation_pass(base, prepared, embedding, repeat: int = 15) -> None:
    """The validation part alone, on one model, alternating: Keras's ``evaluate`` against
    ``ValidationScores``'s pass (forward over the cached batches, then every score)."""
    import numpy as np

    from emotune.callbacks import ValidationScores
    from emotune.scores import epoch_scores, mean_loss
    from emotune.train import eval_stream, new_model

    model = new_model(base, prepared, embedding)
    data, y = eval_stream(prepared.val), prepared.val.labels
    scores = ValidationScores(data, y)
    scores.set_model(model)
    scores.on_train_begin()
    logs: dict = {}
    times: dict[str, list[float]] = {"evaluate": [], "scores": [], "numbers": []}
    for i in range(repeat + 1):
        t = time.perf_counter()
        model.evaluate(data, verbose=0)
        t1 = time.perf_counter()
        scores.on_epoch_end(0, logs)
        t2 = time.perf_counter()
        probs = np.concatenate([scores._forward(x).numpy() for x in scores._batches])
        t3 = time.perf_counter()
        epoch_scores(y, probs, mean_loss(model.loss, y, probs)[0])
        t4 = time.perf_counter()
        if i:  # the first of each carries its tracing
            times["evaluate"].append(t1 - t)
            times["scores"].append(t2 - t1)
            times["numbers"].append(t4 - t3)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(f"validation pass alone (median of {repeat}): Keras evaluate {ms['evaluate']:.0f} ms, "
          f"ValidationScores {ms['scores']:.0f} ms, of which the scores from the predictions "
          f"{ms['numbers']:.1f} ms", flush=True)


def counted(model) -> list[int]:
    """A list that grows by one each time ``model``'s training step is traced."""
    traces: list[int] = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    return traces


def second_trace(base, prepared, embedding, rounds: int) -> int:
    """First-epoch seconds with the variables built before ``fit`` and inside the first trace."""
    from unittest import mock

    import numpy as np

    from emotune import models
    from emotune.train import new_model, predict_probs

    fit(override(base, {"train.epochs": 1}), prepared, embedding)  # warm-up: one-time costs
    runs: dict[str, list[float]] = {"before fit": [], "in the trace": []}
    predicts: list[float] = []
    equal = True
    histories: dict[str, object] = {}
    for _ in range(rounds):
        for who in runs:
            patch = {"build_state": lambda *a, **k: None} if who == "in the trace" else {}
            with mock.patch.multiple(models, **patch) if patch else contextlib.nullcontext():
                model = new_model(base, prepared, embedding)
            traces = counted(model)
            r = fit(base, prepared, embedding, model=model)
            t = time.perf_counter()
            probs = predict_probs(r.model, prepared.val)  # what fit did before 0e9c6cd
            predicts.append(time.perf_counter() - t)
            equal = equal and bool(np.array_equal(probs, r.val_probs))
            s = list(r.history["seconds"])
            later = statistics.median(s[1:])
            runs[who].append(s[0] - later)
            histories[who] = r.history.drop(columns="seconds")
            print(f"variables {who:<12}: first epoch {s[0]:5.2f} s, later {later:5.2f} s "
                  f"(median), step traced {len(traces)}x; predicting val again "
                  f"{predicts[-1]:.2f} s", flush=True)
    a, b = (statistics.median(v) for v in runs.values())
    same = histories["before fit"].equals(histories["in the trace"])
    print(f"first epoch's extra seconds (over the later epochs' median), median of {rounds}: "
          f"{b:.2f} s traced twice -> {a:.2f} s traced once ({b - a:.2f} s saved per model); "
          f"histories {'identical' if same else 'DIFFER'}", flush=True)
    print(f"predicting validation after fit (no longer done), median of {len(predicts)}: "
          f"{statistics.median(predicts):.2f} s per model; the best epoch's scoring pass gave "
          f"{'the same' if equal else 'DIFFERENT'} numbers", flush=True)
    return 0


def onednn(args) -> int:
    """Epoch seconds of the default GRU in one-thread child processes, oneDNN on and off."""
    import subprocess

    cmd = [sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs),
           "--onednn", "--child"]
    threads = thread_env(1)  # as a --workers process runs
    runs: dict[str, list[str]] = {"1": [], "0": []}
    for _ in range(2):
        for flag in ("1", "0"):
            out = subprocess.run(cmd, env={**os.environ, **threads, "TF_ENABLE_ONEDNN_OPTS": flag},
                                 capture_output=True, text=True, check=True).stdout
            runs[flag].append(out.strip().splitlines()[-1])
            print(f"TF_ENABLE_ONEDNN_OPTS={flag}, 1 thread: {runs[flag][-1]}", flush=True)
    return 0


# (name, processes, environment): today's one process, today's workers, and the alternatives
PARALLEL = [
    ("1 process, 2 threads (--workers 1)", 1, {}),
    ("2 processes, intra 1, inter 1 (--workers 2)", 2, thread_env(1)),
    ("2 processes, intra 1, inter 2", 2, thread_env(1, 2)),
    ("2 processes, intra 2, inter 2", 2, thread_env(2, 2)),
    ("3 processes, intra 1, inter 1", 3, thread_env(1)),
]


def parallel(args) -> int:
    """Epochs per second of N child processes training the default GRU at once."""
    import subprocess
    import tempfile

    cmd = [sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs),
           "--parallel", "--child"]
    for r in range(args.rounds):
        for name, n, threads in PARALLEL:
            # stderr (TensorFlow's start-up lines) to files: a full pipe would stall a child
            errs = [tempfile.TemporaryFile("w+") for _ in range(n)]
            children = [subprocess.Popen(cmd, env={**os.environ, **threads}, text=True,
                                         stdout=subprocess.PIPE, stderr=err) for err in errs]
            outs = [c.communicate()[0] for c in children]
            for c, err in zip(children, errs):
                if c.returncode:
                    err.seek(0)
                    print(f"{name}: a child failed:\n{err.read()}", flush=True)
                    return 1
                err.close()
            lines = [out.strip().splitlines()[-1] for out in outs]
            seconds = [float(line.split()[0]) for line in lines]
            print(f"round {r + 1}, {name:<44} {sum(1 / s for s in seconds):.3f} epochs/s; "
                  + " | ".join(lines), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--only", help="run only levers whose name contains this")
    ap.add_argument("--steps", action="store_true", help="time single steps, XLA on and off")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--fixed", action="store_true", help="GRU against no RNN, 1 and 10 per call")
    ap.add_argument("--onednn", action="store_true", help="one thread, oneDNN on and off")
    ap.add_argument("--parallel", action="store_true",
                    help="epochs per second of 1-3 trial processes at once, by thread settings")
    ap.add_argument("--scores", action="store_true",
                    help="per-epoch validation scores against Keras's validation")
    ap.add_argument("--trace", action="store_true",
                    help="variables built before fit against inside the first traced step")
    ap.add_argument("--rounds", type=int, default=2,
                    help="--scores, --trace, --parallel: alternating pairs of fits or rounds "
                         "(--scores 0: the validation pass alone)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        print(benchmark_header(), flush=True)
    if args.onednn and not args.child:
        return onednn(args)  # the children train
    if args.parallel and not args.child:
        return parallel(args)
    set_quiet(True)
    base = build_config(overrides=parse_sets([f"data.path={args.data}",
                                              f"epochs={args.epochs}", "patience=100"]))
    _, prepared, embedding = load_inputs(base)
    if args.child:  # one --onednn or --parallel run: the default GRU, this process's threads
        per_epoch, first, acc = epoch_seconds(base, prepared, embedding)
        print(f"{per_epoch:.2f} s per epoch, first {first:.1f} s, val acc after "
              f"{args.epochs} epochs {acc:.4f}")
        return 0
    if args.steps:
        for length in (16, 24, 32):
            off = step_ms(base, prepared, embedding, length, False, args.repeat)
            on = step_ms(base, prepared, embedding, length, True, args.repeat)
            unrolled = step_ms(base, prepared, embedding, length, False, args.repeat, True)
            print(f"gru batch 32, length {length}: {off:5.1f} ms per step, jit_compile "
                  f"{on:5.1f} ms ({off / on:4.2f}x), unroll {unrolled:5.1f} ms "
                  f"({off / unrolled:4.2f}x)", flush=True)
        return 0
    if args.trace:
        return second_trace(base, prepared, embedding, args.rounds)
    if args.scores:
        return scores_cost(base, prepared, embedding, args.rounds)
    if args.fixed:
        return fixed_cost(base, prepared, embedding, steps_per_epoch(
            len(prepared.train.labels), base.train.batch_size))
    for name, common, change in LEVERS:
        if args.only and args.only not in name:
            continue
        a = override(base, common)
        b = override(a, change)
        sa, fa, acc_a = epoch_seconds(a, prepared, embedding)
        sb, fb, acc_b = epoch_seconds(b, prepared, embedding)
        print(f"{name:<34} {sa:5.2f}s -> {sb:5.2f}s per epoch ({sa / sb:4.2f}x); first epoch "
              f"{fa:4.1f}s -> {fb:4.1f}s; val acc after {args.epochs} epochs {acc_a:.4f} -> "
              f"{acc_b:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

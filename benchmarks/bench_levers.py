"""Seconds per epoch with each speed lever on and off, side by side in one process.

    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion [--epochs 4]
    .venv/bin/python benchmarks/bench_levers.py --data ../shared/data/emotion --steps

Each row trains the same configuration for ``--epochs`` epochs (no early stopping) with one
setting changed, alternating base and variant; it prints the median seconds of epochs 2..N
(the first epoch carries the graph build), the first epoch's seconds, and the ratio.

``--steps`` times single training steps instead: the default GRU on fixed batches of 32 texts
at a few lengths, compiled with and without ``jit_compile`` (XLA), alternating, median of
``--repeat`` steps after a warm-up (which holds XLA's compile for that shape).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotune.config import build_config, override, parse_sets  # noqa: E402
from emotune.progress import set_quiet  # noqa: E402
from emotune.train import fit, load_inputs  # noqa: E402

LEVERS = [
    ("gru steps_per_execution 1 -> 16", {"model.type": "gru"},
     {"train.steps_per_execution": 16}),
    ("cnn steps_per_execution 1 -> 16", {"model.type": "cnn"},
     {"train.steps_per_execution": 16}),
    ("gru mask on -> off", {"model.type": "gru"}, {"model.mask": False}),
    ("gru frozen -> fine-tuned", {"model.type": "gru"}, {"model.embedding": "fine-tuned"}),
    ("gru batch 32 -> 128", {"model.type": "gru"}, {"train.batch_size": 128}),
]


def epoch_seconds(config, prepared, embedding) -> tuple[float, float, float]:
    r = fit(config, prepared, embedding)
    s = list(r.history["seconds"])
    return statistics.median(s[1:]), s[0], r.metrics["val_accuracy"]


def step_ms(config, prepared, embedding, length: int, jit: bool, repeat: int) -> float:
    import numpy as np

    from emotune.models import build_model

    model = build_model(config.model, config.train, embedding.matrix, len(prepared.label_names))
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--only", help="run only levers whose name contains this")
    ap.add_argument("--steps", action="store_true", help="time single steps, XLA on and off")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    set_quiet(True)
    base = build_config(overrides=parse_sets([f"data.path={args.data}",
                                              f"epochs={args.epochs}", "patience=100"]))
    _, prepared, embedding = load_inputs(base)
    if args.steps:
        for length in (16, 24, 32):
            off = step_ms(base, prepared, embedding, length, False, args.repeat)
            on = step_ms(base, prepared, embedding, length, True, args.repeat)
            print(f"gru batch 32, length {length}: {off:5.1f} ms per step, jit_compile "
                  f"{on:5.1f} ms ({off / on:4.2f}x)", flush=True)
        return 0
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

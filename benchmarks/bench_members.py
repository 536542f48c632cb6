"""Fused members: several seeds of one GRU configuration trained as one model, against the
same seeds trained one after the other (#14: adopt only at >= 1.5x for 3 members).

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_members.py --data ../shared/data/emotion

A member axis M runs through the whole model: one GRU loop whose state is (M, batch, units),
the recurrent product a batched matrix product (M matrices, one op), the input projection of
every time step one product before the loop, gates as in Keras's GRU (z, r, h; reset after),
then dropout, and each member's own softmax layer. Per time step the loop runs the same ops
for any M, so what TensorFlow pays per op is paid once for all members.

Two ways to feed the members:
- ``shared``: every member trains on the same batches (only initialisation and dropout
  differ). The most fusing can gain, but not what a seed is in emotune (a seed also shuffles
  the data), and the members' spread would leave out the data order's share of the noise.
- ``own``: each member draws its own batches, as its seed would alone, padded to the longest
  of the M batches of a step (masked: the same numbers as unpadded); the padding costs time
  steps.

The bound: Keras's GRU (emotune's model) on batches of M x 32, the same number of them (drawn
over as many epochs of the data as that takes): the same data per step as M shared members, with
one set of weights. A fused model of M members does at least that work per step, so
M x (one model's epoch) / (this epoch) bounds what any fused version can gain.

Each row: the median seconds of epochs 2..N over ``--steps`` real training batches (length
sorted within chunks as ``train.epoch_rows`` makes them), at the same batches per compiled call
as emotune (``steps_per_execution``): Keras's GRU (emotune's model) for one member, the bound
for M = 2, 3, and the fused model for M = 1, 2, 3 (shared and own batches).
Speed-up = M x (one Keras model's epoch) / (the row's epoch).
The fused layer is checked against Keras's GRU on the same weights first (largest difference).
Run it with one thread per process, as ``--workers`` trains.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotune.config import build_config, override, parse_sets  # noqa: E402
from emotune.progress import set_quiet  # noqa: E402
from emotune.provenance import benchmark_header  # noqa: E402
from emotune.train import load_inputs, steps_per_epoch, train_stream  # noqa: E402


def member_gru_class():
    import keras
    import tensorflow as tf

    class MemberGRU(keras.layers.Layer):
        """``members`` GRUs in one loop: (batch, T, E) shared or (batch, M, T, E) own inputs
        -> last states (M, batch, units)."""

        def __init__(self, units: int, members: int, **kwargs):
            super().__init__(**kwargs)
            self.units, self.members = units, members
            self.supports_masking = True

        def build(self, shape):
            # Initialisers see 3-D shapes, so their scales (and orthogonality) differ from one
            # Keras GRU's per member: the same work per step, not the same numbers as emotune.
            m, u, e = self.members, self.units, shape[-1]
            self.kernel = self.add_weight((m, e, 3 * u), "glorot_uniform", name="kernel")
            self.recurrent = self.add_weight((m, u, 3 * u), "orthogonal", name="recurrent")
            self.bias = self.add_weight((m, 2, 3 * u), "zeros", name="bias")

        def call(self, x, mask=None):
            own = len(x.shape) == 4
            # time-major (T, M, batch, 3u): every step's input projection in one product
            xp = tf.einsum("bmte,meg->tmbg" if own else "bte,meg->tmbg", x, self.kernel)
            xp = xp + self.bias[None, :, 0, None, :]
            if mask is None:
                mask = tf.ones(tf.shape(x)[:-1], tf.bool)
            keep = tf.transpose(mask, [2, 1, 0] if own else [1, 0])  # (T, M, b) or (T, b)
            keep = keep[..., None] if own else keep[:, None, :, None]
            h0 = tf.zeros([self.members, tf.shape(x)[0], self.units], x.dtype)
            rbias, u = self.bias[:, 1, None, :], self.units

            def step(h, inputs):
                x_t, keep_t = inputs
                rec = tf.matmul(h, self.recurrent) + rbias
                z = tf.sigmoid(x_t[..., :u] + rec[..., :u])
                r = tf.sigmoid(x_t[..., u:2 * u] + rec[..., u:2 * u])
                hh = tf.tanh(x_t[..., 2 * u:] + r * rec[..., 2 * u:])
                return tf.where(keep_t, z * h + (1 - z) * hh, h)

            states = tf.scan(step, (xp, keep), initializer=h0)
            return states[-1]

        def compute_mask(self, inputs, mask=None):
            return None

    class MemberDense(keras.layers.Layer):
        """Each member's own softmax layer: (M, batch, units) -> (batch, M, classes)."""

        def __init__(self, classes: int, **kwargs):
            super().__init__(**kwargs)
            self.classes = classes

        def build(self, shape):
            self.w = self.add_weight((shape[0], shape[-1], self.classes), "glorot_uniform")
            self.b = self.add_weight((shape[0], self.classes), "zeros")

        def call(self, h):
            return tf.nn.softmax(tf.einsum("mbu,muc->bmc", h, self.w) + self.b)

    return MemberGRU, MemberDense


def fused_model(base, embedding, classes: int, members: int, own: bool, spe: int):
    import keras

    from emotune.models import make_optimizer

    gru_cls, dense_cls = member_gru_class()
    mc = base.model
    ids = keras.Input(shape=(members, None) if own else (None,), dtype="int32")
    emb = keras.layers.Embedding(*embedding.matrix.shape, mask_zero=True, trainable=False)
    emb.build((None, None))
    emb.set_weights([embedding.matrix])
    h = gru_cls(mc.units, members)(emb(ids))
    out = dense_cls(classes)(keras.layers.Dropout(mc.dropout)(h))
    model = keras.Model(ids, out)
    # the mean over members x batch, times M: each member's gradient is its own mean loss's
    loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(make_optimizer(base.train),
                  loss=lambda y, p: members * loss(y, p), steps_per_execution=spe)
    return model


def check_against_keras(embedding) -> float:
    """Largest difference between the fused layer (M = 1) and Keras's GRU on one weight set."""
    import keras
    import numpy as np

    gru_cls, _ = member_gru_class()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 12, embedding.matrix.shape[1])).astype("float32")
    mask = np.arange(12)[None, :] < rng.integers(1, 13, 8)[:, None]
    ref = keras.layers.GRU(16)
    want = ref(x, mask=mask)
    fused = gru_cls(16, 1)
    fused.build(x.shape)
    k, r, b = ref.get_weights()
    fused.set_weights([k[None], r[None], b[None]])
    got = fused(x, mask=mask)[0]
    return float(np.abs(np.asarray(got) - np.asarray(want)).max())


def stream(prepared, batch_size: int, seed: int, steps: int):
    """Exactly ``steps`` training batches of ``batch_size``, over as many epochs as that takes."""
    epochs = math.ceil(steps / steps_per_epoch(len(prepared.train.labels), batch_size))
    data = train_stream(prepared.train, batch_size, seed, epochs).take(steps)
    assert int(data.cardinality()) == steps, (int(data.cardinality()), steps)
    return data


def batches(prepared, batch_size: int, seeds: list[int], steps: int, own: bool):
    """``steps`` training batches, cached: one seed's (shared) or each seed's own, stacked and
    padded to the longest (own)."""
    import tensorflow as tf

    if not own:
        m = len(seeds)
        one = stream(prepared, batch_size, seeds[0], steps)
        return one.map(lambda x, y: (x, tf.tile(y[:, None], [1, m]))).cache()
    streams = [stream(prepared, batch_size, s, steps) for s in seeds]

    def stack(*pairs):
        width = tf.reduce_max([tf.shape(x)[1] for x, _ in pairs])
        xs = [tf.pad(x, [[0, 0], [0, width - tf.shape(x)[1]]]) for x, _ in pairs]
        return tf.stack(xs, axis=1), tf.stack([y for _, y in pairs], axis=1)

    return tf.data.Dataset.zip(tuple(streams)).map(stack).cache()


def epochs_seconds(model, data, epochs: int) -> tuple[float, float]:
    import keras

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    times: list[float] = []
    model.fit(data, epochs=epochs, verbose=0, callbacks=[Clock()])
    return statistics.median(times[1:]), times[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=200, help="training batches per epoch")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--members", default="1,2,3")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch traces and is not timed")
    set_quiet(True)
    print(benchmark_header("TF intra-op threads "
                           + os.environ.get("TF_NUM_INTRAOP_THREADS", "default")), flush=True)
    import keras

    from emotune.models import exact_steps_per_execution
    from emotune.train import new_model

    base = build_config(overrides=parse_sets([f"data.path={args.data}"]))
    _, prepared, embedding = load_inputs(base)
    classes = prepared.num_classes
    spe = exact_steps_per_execution(args.steps, base.train.steps_per_execution)
    print(f"fused layer (M = 1) against keras.layers.GRU, same weights: largest difference "
          f"{check_against_keras(embedding):.2e}", flush=True)
    members = [int(m) for m in args.members.split(",")]
    runs: dict[str, list[float]] = {}
    firsts: dict[str, list[float]] = {}
    seed = base.train.seed
    keras_data = stream(prepared, base.train.batch_size, seed, args.steps).cache()
    for _ in range(args.rounds):
        model = new_model(base, prepared, embedding)
        model.compile(optimizer=model.optimizer, loss=model.loss, steps_per_execution=spe)
        per, first = epochs_seconds(model, keras_data, args.epochs)
        runs.setdefault("keras", []).append(per)
        firsts.setdefault("keras", []).append(first)
        for m in members:
            if m > 1:  # the bound: Keras's own GRU on M times the batch (one weight set)
                wide = override(base, {"train.batch_size": m * base.train.batch_size})
                model = new_model(wide, prepared, embedding)
                model.compile(optimizer=model.optimizer, loss=model.loss,
                              steps_per_execution=spe)
                data = stream(prepared, m * base.train.batch_size, seed, args.steps).cache()
                per, first = epochs_seconds(model, data, args.epochs)
                runs.setdefault(f"{m} bound", []).append(per)
                firsts.setdefault(f"{m} bound", []).append(first)
            for own in (False, True):
                if own and m == 1:
                    continue
                keras.backend.clear_session()
                model = fused_model(base, embedding, classes, m, own, spe)
                data = batches(prepared, base.train.batch_size,
                               [seed + i for i in range(m)], args.steps, own)
                per, first = epochs_seconds(model, data, args.epochs)
                key = f"{m} {'own' if own else 'shared'}"
                runs.setdefault(key, []).append(per)
                firsts.setdefault(key, []).append(first)
        print("round: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), flush=True)
    one = statistics.median(runs["keras"])
    print(f"\n{args.steps} batches per epoch (of {base.train.batch_size}; the bounds' of "
          f"M x {base.train.batch_size}), {spe} per call; median s per "
          f"epoch of epochs 2..{args.epochs} over {args.rounds} rounds")
    print(f"{'model':<34} {'s/epoch':>8} {'first':>6}  speed-up over M Keras models")
    print(f"{'Keras GRU, one member':<34} {one:8.2f} {statistics.median(firsts['keras']):6.1f}")
    for key, v in runs.items():
        if key == "keras":
            continue
        m = int(key.split()[0])
        per = statistics.median(v)
        name = (f"Keras GRU, batch {m} x {base.train.batch_size}" if key.endswith("bound")
                else f"fused, {m} member{'s' * (m > 1)}, {key.split()[1]} batches")
        print(f"{name:<34} {per:8.2f} "
              f"{statistics.median(firsts[key]):6.1f}  {m * one / per:4.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

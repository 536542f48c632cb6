"""Where a GRU training step's time goes, and whether a hand-written loop beats Keras's.

    .venv/bin/python benchmarks/bench_gru_loop.py [--lengths 16 32] [--repeat 3]

Times ``train_on_batch`` (batch 32, 128 units, 50-d frozen embedding, masked, Adam) on 40
fixed batches per length, in one process, the variants alternating, best of ``--repeat``:

- ``keras``: Keras's own GRU (what emotune uses).
- ``no-rnn``: the GRU replaced by a mean over time and a dense layer: the fixed cost of a
  step (embedding lookup, loss, optimizer, Keras's step function).
- ``lean``: the same GRU equations (Keras's reset-after form, same weights), with the input
  projection done once for all time steps outside the loop, and a hand-written gradient that
  keeps one matrix product per time step and computes the recurrent kernel's gradient once,
  as one large product after the loop.
- ``lean+xla``: ``lean`` compiled with ``jit_compile=True`` (one compile per length).

It also checks that ``lean`` matches Keras's GRU (predictions and weights after 3 steps).
This is a benchmark for RESULTS.md, not part of emotune: the lean loop did not pay enough
to replace Keras's layer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

VOCAB, DIM, UNITS, BATCH = 15000, 50, 128, 32


def lean_gru(xw, h0, kernel, bias, keep):
    """Masked GRU over xw [T, B, 3u] (inputs already projected); returns hs [T, B, u]."""
    u = kernel.shape[0]

    @tf.custom_gradient
    def run(xw, h0, kernel, bias):
        def step(carry, inp):
            h = carry[0]
            x, k = inp
            inner = tf.matmul(h, kernel) + bias
            zr = tf.sigmoid(x[:, :2 * u] + inner[:, :2 * u])
            z, r = zr[:, :u], zr[:, u:]
            n = tf.tanh(x[:, 2 * u:] + r * inner[:, 2 * u:])
            return h + k * (n + z * (h - n) - h), zr, n, inner[:, 2 * u:]

        init = (h0, tf.zeros_like(xw[0, :, :2 * u]), h0, h0)
        hs, zrs, ns, i_ns = tf.scan(step, (xw, keep), initializer=init)
        h_prev = tf.concat([h0[None], hs[:-1]], 0)

        def grad(dhs):
            def back(carry, inp):
                dout, k, h, zr, n, i_n = inp
                g = carry[0] + dout
                dnew = k * g
                z, r = zr[:, :u], zr[:, u:]
                dn = dnew * (1 - z) * (1 - n * n)
                dz = dnew * (h - n) * z * (1 - z)
                dr = dn * i_n * r * (1 - r)
                d_inner = tf.concat([dz, dr, dn * r], 1)
                g_prev = g - dnew + dnew * z + tf.matmul(d_inner, kernel, transpose_b=True)
                return g_prev, d_inner, tf.concat([dz, dr, dn], 1)

            zeros = tf.zeros_like(xw[0])
            gs, d_inners, dxs = tf.scan(back, (dhs, keep, h_prev, zrs, ns, i_ns),
                                        initializer=(tf.zeros_like(h0), zeros, zeros),
                                        reverse=True)
            d_kernel = tf.matmul(tf.reshape(h_prev, [-1, u]), tf.reshape(d_inners, [-1, 3 * u]),
                                 transpose_a=True)
            return dxs, gs[0], d_kernel, tf.reduce_sum(d_inners, [0, 1])

        return hs, grad

    return run(xw, h0, kernel, bias)


class LeanGRU(keras.layers.GRU):
    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        bias = tf.convert_to_tensor(cell.bias)
        xw = tf.einsum("bti,ij->tbj", sequences, tf.convert_to_tensor(cell.kernel)) + bias[0]
        keep = tf.cast(tf.transpose(mask[0] if isinstance(mask, list) else mask),
                       xw.dtype)[:, :, None]
        hs = lean_gru(xw, initial_state[0], tf.convert_to_tensor(cell.recurrent_kernel),
                      bias[1], keep)
        return hs[-1], hs[-1][:, None], [hs[-1]]


class MeanDense(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.dense = keras.layers.Dense(units)

    def call(self, x, mask=None):
        return self.dense(tf.reduce_mean(x, 1))

    def compute_mask(self, x, mask=None):
        return None


def build(encoder, matrix: np.ndarray, jit: bool = False):
    keras.utils.set_random_seed(1)
    ids = keras.Input((None,), dtype="int32")
    embed = keras.layers.Embedding(VOCAB, DIM, mask_zero=True, trainable=False)
    x = keras.layers.Dropout(0.5)(encoder(UNITS)(embed(ids)))
    model = keras.Model(ids, keras.layers.Dense(6, activation="softmax")(x))
    embed.set_weights([matrix])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit)
    return model


def batches(rng: np.random.Generator, length: int, n: int = 40) -> list:
    out = []
    for _ in range(n):
        lengths = rng.integers(max(1, length - 6), length + 1, BATCH)
        lengths[0] = length
        x = np.zeros((BATCH, length), "int32")
        for i, n_tokens in enumerate(lengths):
            x[i, :n_tokens] = rng.integers(1, VOCAB, n_tokens)
        out.append((x, rng.integers(0, 6, BATCH)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(VOCAB, DIM)).astype("float32")

    x, y = batches(rng, 20, 1)[0]
    ref, lean = build(keras.layers.GRU, matrix), build(LeanGRU, matrix)
    lean.set_weights(ref.get_weights())
    pred = np.abs(ref.predict(x, verbose=0) - lean.predict(x, verbose=0)).max()
    for _ in range(3):
        ref.train_on_batch(x, y)
        lean.train_on_batch(x, y)
    weights = max(np.abs(a - b).max() for a, b in zip(ref.get_weights(), lean.get_weights()))
    print(f"lean vs keras GRU: predictions differ by {pred:.1e}, weights after 3 steps by "
          f"{weights:.1e}", flush=True)

    for length in args.lengths:
        data = batches(rng, length)
        models = {"keras": build(keras.layers.GRU, matrix), "no-rnn": build(MeanDense, matrix),
                  "lean": build(LeanGRU, matrix), "lean+xla": build(LeanGRU, matrix, jit=True)}
        for model in models.values():  # warm-up: traces (and XLA's compile)
            for xb, yb in data[:5]:
                model.train_on_batch(xb, yb)
        best = dict.fromkeys(models, float("inf"))
        for _ in range(args.repeat):
            for name, model in models.items():
                start = time.perf_counter()
                for xb, yb in data:
                    model.train_on_batch(xb, yb)
                best[name] = min(best[name], (time.perf_counter() - start) / len(data) * 1000)
        base = best["keras"]
        print(f"length {length}: " + ", ".join(
            f"{name} {ms:.2f} ms ({base / ms:.2f}x)" for name, ms in best.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

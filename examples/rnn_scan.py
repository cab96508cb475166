"""A recurrent network over a long sequence with ``ad.scan``: the gradient equals the unrolled
Python loop's, and the scanned program is one loop body compiled once instead of a graph with
one copy of the cell per step.

The task: predict the next value of a noisy sum of sines from an Elman RNN's hidden state.
We time one gradient evaluation three ways, in one process: ``ad.jit(ad.grad(...))`` over
``ad.scan``; the same cell unrolled in Python under ``mx.compile(mx.grad(...))``; and
``ad.jit(ad.grad(...))`` of the unrolled loop. First calls include tracing and compilation.

Run:  python examples/rnn_scan.py [--fast]
"""

from __future__ import annotations

import argparse
import time

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp

HIDDEN = 32


def init(key):
    k1, k2, k3 = mx.random.split(key, 3)
    return {
        "wx": mx.random.normal((1, HIDDEN), key=k1) * 0.5,
        "wh": mx.random.normal((HIDDEN, HIDDEN), key=k2) * (0.9 / np.sqrt(HIDDEN)),
        "b": mx.zeros(HIDDEN),
        "wo": mx.random.normal((HIDDEN, 1), key=k3) * 0.1,
    }


def cell(p, h, x):
    return anp.tanh(x @ p["wx"] + h @ p["wh"] + p["b"])


def loss_scan(p, xs, ys):
    """Mean squared error of next-step predictions, the recurrence as one ``ad.scan``."""

    def step(h, xy):
        x, y = xy
        h = cell(p, h, x)
        return h, anp.sum((h @ p["wo"] - y) ** 2)

    _, errs = ad.scan(step, anp.zeros((xs.shape[1], HIDDEN)), (xs, ys))
    return anp.mean(errs)


def loss_unrolled(p, xs, ys):
    """The same function with a Python loop: one copy of the cell per step in the graph."""
    h, total = mx.zeros((xs.shape[1], HIDDEN)), 0.0
    for t in range(xs.shape[0]):
        h = cell(p, h, xs[t])
        total = total + anp.sum((h @ p["wo"] - ys[t]) ** 2)
    return total / xs.shape[0]


def data(steps, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1)[:, None] * 0.1 + rng.uniform(0, 6, size=(1, batch))
    s = np.sin(t) + 0.5 * np.sin(2.7 * t) + 0.05 * rng.standard_normal(t.shape)
    s = s.astype(np.float32)[..., None]  # (steps + 1, batch, 1)
    return mx.array(s[:-1]), mx.array(s[1:])


def timed(fn, *args, repeat=3):
    start = time.perf_counter()
    mx.eval(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        mx.eval(fn(*args))
        times.append(time.perf_counter() - start)
    return first, min(times)


def main(fast: bool = False) -> dict:
    steps = 100 if fast else 500
    xs, ys = data(steps)
    params = init(mx.random.key(0))
    g_scan = ad.jit(ad.grad(loss_scan))(params, xs, ys)
    g_loop = ad.grad(loss_unrolled)(params, xs, ys)
    diff = max(float(mx.max(mx.abs(g_scan[k] - g_loop[k]))) for k in params)
    print(f"{steps} steps, hidden {HIDDEN}: max |grad(scan) - grad(unrolled loop)| = {diff:.2e}")

    contenders = {
        "ad.jit(ad.grad) over ad.scan": ad.jit(ad.grad(loss_scan)),
        "mx.compile(mx.grad), unrolled": mx.compile(mx.grad(loss_unrolled)),
        "ad.jit(ad.grad), unrolled": ad.jit(ad.grad(loss_unrolled)),
    }
    timings = {}
    for name, fn in contenders.items():
        first, steady = timed(fn, params, xs, ys, repeat=2 if fast else 3)
        timings[name] = (first, steady)
        print(f"  {name:32s} first call {first * 1e3:8.1f} ms   then {steady * 1e3:8.1f} ms")

    # a few steps of SGD with the scanned gradient
    step_fn = ad.jit(ad.value_and_grad(loss_scan))
    losses = []
    for _ in range(20 if fast else 100):
        value, g = step_fn(params, xs, ys)
        params = ad.tree_map(lambda p, g: p - 0.05 * g, params, g)
        losses.append(float(value))
    print(f"training: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return {"grad_diff": diff, "timings": timings, "loss_first": losses[0], "loss_last": losses[-1]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

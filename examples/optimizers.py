"""Optimisers as pure functions over pytrees: SGD, momentum and Adam written with
``ad.tree_map``, run on the same problem as ``mlx.optimizers.SGD`` / ``Adam``, step by step.

Each optimiser is a pair ``init(params) -> state`` and
``update(grads, state, params) -> (params, state)``: no hidden state, so a training step is a
pure function that can itself be transformed (jitted, vmapped over hyperparameters, ...).

Run:  python examples/optimizers.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

import autodiff as ad
import autodiff.numpy as anp


class Optimizer(NamedTuple):
    init: Callable
    update: Callable


def sgd(lr: float) -> Optimizer:
    return Optimizer(
        init=lambda params: (),
        update=lambda g, state, p: (ad.tree_map(lambda p, g: p - lr * g, p, g), state),
    )


def momentum(lr: float, beta: float = 0.9) -> Optimizer:
    """Heavy-ball momentum, ``v = beta v + g; p -= lr v`` (mlx.optimizers.SGD's convention)."""

    def update(g, v, p):
        v = ad.tree_map(lambda v, g: beta * v + g, v, g)
        return ad.tree_map(lambda p, v: p - lr * v, p, v), v

    return Optimizer(lambda params: ad.tree_map(anp.zeros_like, params), update)


def adam(
    lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, bias_correction: bool = False
) -> Optimizer:
    """Adam; like mlx.optimizers.Adam, without bias correction unless asked for."""

    def init(params):
        zeros = ad.tree_map(anp.zeros_like, params)
        return {"m": zeros, "v": zeros, "t": mx.array(0.0)}

    def update(g, state, p):
        t = state["t"] + 1
        m = ad.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], g)
        v = ad.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], g)
        if bias_correction:
            step = lambda m, v: lr / (1 - b1**t) * m / (anp.sqrt(v) / anp.sqrt(1 - b2**t) + eps)
        else:
            step = lambda m, v: lr * m / (anp.sqrt(v) + eps)
        new = ad.tree_map(lambda p, m, v: p - step(m, v), p, m, v)
        return new, {"m": m, "v": v, "t": t}

    return Optimizer(init, update)


def problem(seed=0):
    """Softmax regression with an L2 penalty on synthetic data: a smooth, convex loss."""
    rng = np.random.default_rng(seed)
    x = mx.array(rng.standard_normal((256, 20)).astype(np.float32))
    w_true = rng.standard_normal((20, 4)).astype(np.float32)
    y = mx.array(
        np.argmax(np.array(x) @ w_true + rng.gumbel(size=(256, 4)), axis=1).astype(np.int32)
    )

    def loss(params):
        logits = x @ params["w"] + params["b"]
        logp = logits - anp.logsumexp(logits, axis=-1, keepdims=True)
        nll = -anp.mean(anp.take_along_axis(logp, y[:, None], axis=-1))
        return nll + 1e-3 * anp.sum(params["w"] ** 2)

    params = {"w": mx.zeros((20, 4)), "b": mx.zeros(4)}
    return loss, params


def run_ours(opt: Optimizer, loss, params, steps):
    @ad.jit
    def step(params, state):
        value, grads = ad.value_and_grad(loss)(params)
        params, state = opt.update(grads, state, params)
        return params, state, value

    state = opt.init(params)
    values = []
    for _ in range(steps):
        params, state, value = step(params, state)
        values.append(float(value))
    return params, values


def run_mlx(opt, loss, params, steps):
    grad = ad.jit(ad.value_and_grad(loss))
    values = []
    for _ in range(steps):
        value, grads = grad(params)
        params = opt.apply_gradients(grads, params)
        mx.eval(params, opt.state)
        values.append(float(value))
    return params, values


def main(fast: bool = False) -> dict:
    loss, params0 = problem()
    steps = 60 if fast else 300
    pairs = {
        "SGD": (sgd(0.5), optim.SGD(learning_rate=0.5)),
        "momentum": (momentum(0.1), optim.SGD(learning_rate=0.1, momentum=0.9)),
        "Adam": (adam(0.05), optim.Adam(learning_rate=0.05)),
    }
    diffs = {}
    print(
        f"{'optimiser':<10} {'loss at start':>14} {'ours after':>12} {'mlx after':>12} {'max |param diff|':>18}"
    )
    for name, (ours, theirs) in pairs.items():
        p_ours, v_ours = run_ours(ours, loss, params0, steps)
        p_mlx, v_mlx = run_mlx(theirs, loss, params0, steps)
        diff = max(
            float(mx.max(mx.abs(a - b)))
            for a, b in zip(ad.tree_leaves(p_ours), ad.tree_leaves(p_mlx))
        )
        diffs[name] = diff
        print(f"{name:<10} {v_ours[0]:>14.4f} {v_ours[-1]:>12.4f} {v_mlx[-1]:>12.4f} {diff:>18.2e}")
    print(
        f"after {steps} steps each pure-function optimiser matches mlx.optimizers to float32 rounding"
    )
    return {"max_param_diff": max(diffs.values()), "per_optimizer": diffs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

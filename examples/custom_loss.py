"""A custom loss written from primitives: the Huber loss, its gradient checked with
``autodiff.testing.check_grads`` before it is trusted, then used to fit a line through data
with outliers, side by side with the mean squared error.

Run:  python examples/custom_loss.py
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

import autodiff as ad
import autodiff.numpy as anp
from autodiff.testing import check_grads


def huber(residual, delta: float = 1.0):
    """Quadratic near zero, linear beyond ``delta``: robust to outliers, smooth at 0."""
    a = anp.abs(residual)
    return anp.where(a <= delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def mse(residual):
    return 0.5 * residual**2


def make_loss(kind):
    def loss(params, x, y):
        residual = params["slope"] * x + params["intercept"] - y
        return anp.mean(huber(residual) if kind == "huber" else mse(residual))

    return loss


def make_data(n=200, outliers=0.15, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, n).astype(np.float32)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.3, n).astype(np.float32)
    bad = rng.random(n) < outliers
    y[bad] += rng.uniform(15, 30, bad.sum()).astype(np.float32)  # gross outliers, all upwards
    return mx.array(x), mx.array(y)


def fit(loss, x, y, steps):
    params = {"slope": mx.array(0.0), "intercept": mx.array(0.0)}
    opt = optim.Adam(learning_rate=0.05)
    step = ad.jit(ad.value_and_grad(loss))
    for i in range(steps):
        value, grads = step(params, x, y)
        params = opt.apply_gradients(grads, params)
        mx.eval(params, opt.state)
        if (i + 1) % max(1, steps // 5) == 0:
            print(
                f"  step {i + 1:4d}  loss {float(value):.4f}  slope {float(params['slope']):.3f}  intercept {float(params['intercept']):.3f}"
            )
    return {k: float(v) for k, v in params.items()}


def main(fast: bool = False) -> dict:
    # 1. Check the loss's derivatives (to second order) against float64 finite differences,
    #    at residuals on both sides of the kink at |r| = delta.
    r = mx.array([-2.5, -0.7, 0.1, 0.6, 1.8, 3.0])
    check_grads(lambda r: anp.sum(huber(r)), (r,), order=2)
    x, y = make_data()
    params = {"slope": mx.array(0.5), "intercept": mx.array(-0.3)}
    check_grads(lambda p: make_loss("huber")(p, x, y), (params,), order=2, atol=1e-4, rtol=1e-4)
    print("check_grads: the Huber loss's first and second derivatives match finite differences")

    # 2. Fit y = slope * x + intercept with each loss; the true line is y = 2x + 1.
    steps = 150 if fast else 600
    results = {}
    for kind in ("mse", "huber"):
        print(f"fitting with {kind}:")
        results[kind] = fit(make_loss(kind), x, y, steps)
    err = {k: abs(v["slope"] - 2.0) + abs(v["intercept"] - 1.0) for k, v in results.items()}
    print("true line: slope 2.000, intercept 1.000")
    for k in results:
        print(
            f"{k:>5}: slope {results[k]['slope']:.3f}, intercept {results[k]['intercept']:.3f}  (error {err[k]:.3f})"
        )
    print("the outliers drag the squared-error fit upwards; the Huber fit stays close to the truth")
    return {"huber_error": err["huber"], "mse_error": err["mse"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

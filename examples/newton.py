"""Newton's method with ``ad.hessian``: L2-regularised logistic regression (is it a 3 or an
8?) on scikit-learn's digits, converging quadratically where gradient descent crawls.

Run:  pip install -e '.[examples]' && python examples/newton.py
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import numpy as np
from sklearn.datasets import load_digits

import autodiff as ad
import autodiff.numpy as anp


def data():
    d = load_digits()
    keep = (d.target == 3) | (d.target == 8)
    x = (d.data[keep] / 16.0).astype(np.float32)
    x = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)  # bias feature
    return mx.array(x), mx.array((d.target[keep] == 8).astype(np.float32))


def make_loss(x, y, l2=1e-2):
    def loss(w):
        z = x @ w
        # mean log(1 + exp(z)) - y z, written stably with logaddexp
        return anp.mean(anp.logaddexp(0.0, z) - y * z) + 0.5 * l2 * anp.sum(w * w)

    return loss


def main(fast: bool = False) -> dict:
    x, y = data()
    loss = make_loss(x, y)
    grad, hess = ad.jit(ad.grad(loss)), ad.jit(ad.hessian(loss))
    w = mx.zeros(x.shape[1])
    print(
        f"{x.shape[0]} images, {x.shape[1]} parameters; Hessian {x.shape[1]}x{x.shape[1]} by ad.hessian"
    )
    history = []
    for it in range(1, 9):
        g = grad(w)
        step = mx.linalg.solve(hess(w), g[:, None], stream=mx.cpu)[:, 0]
        w = w - step
        gnorm = float(mx.linalg.norm(grad(w)))
        history.append(gnorm)
        print(f"newton iteration {it}: loss {float(loss(w)):.6f}  |grad| {gnorm:.2e}")
        if gnorm < 1e-5:
            break
    w_gd = mx.zeros(x.shape[1])
    for _ in range(50 if fast else 200):
        w_gd = w_gd - 1.0 * grad(w_gd)
    print(
        f"gradient descent, {50 if fast else 200} steps: loss {float(loss(w_gd)):.6f}  |grad| {float(mx.linalg.norm(grad(w_gd))):.2e}"
    )
    acc = float(mx.mean(((x @ w) > 0) == (y > 0.5)))
    print(f"training accuracy of the Newton solution: {acc:.3f}")
    return {"iterations": len(history), "final_grad_norm": history[-1], "accuracy": acc}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

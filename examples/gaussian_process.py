"""Gaussian-process regression: fit the kernel's hyperparameters by Newton's method on the
negative log marginal likelihood, with its gradient and Hessian from ``ad.grad`` and
``ad.hessian`` through a Cholesky factorisation, triangular solves and a log-determinant.

MLX cannot differentiate this: it has no VJP or JVP for ``mx.linalg.cholesky`` (nor for
``inv``, ``svd``, ``eigh``, ``qr``, ``lu`` ...). The same code, written with ``mx.linalg``,
runs under autodiff's transforms, and the linalg calls run on MLX's CPU stream.

Run:  python examples/gaussian_process.py [--fast]
"""

from __future__ import annotations

import argparse
import math
import time

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp


def make_data(n: int, seed: int = 0):
    """Noisy samples of a smooth function on [0, 5], and a grid to predict on."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 5.0, n)).astype(np.float32)
    f = lambda x: np.sin(2.0 * x) + 0.5 * np.cos(0.7 * x)
    y = (f(x) + 0.15 * rng.standard_normal(n)).astype(np.float32)
    grid = np.linspace(0.0, 5.0, 50, dtype=np.float32)
    return mx.array(x), mx.array(y), mx.array(grid), mx.array(f(grid).astype(np.float32))


def kernel(theta, a, b):
    """Squared-exponential kernel with length-scale exp(theta[0]), variance exp(theta[1])."""
    sqdist = (a[:, None] - b[None, :]) ** 2
    return anp.exp(theta[1]) * anp.exp(-0.5 * sqdist * anp.exp(-2.0 * theta[0]))


def neg_log_marginal_likelihood(theta, x, y):
    """0.5 y^T K^-1 y + 0.5 log det K + n/2 log(2 pi), with K = kernel + exp(theta[2]) I,
    from the Cholesky factor L of K: K^-1 y = L^-T L^-1 y and log det K = 2 sum log diag L."""
    n = x.shape[0]
    k = kernel(theta, x, x) + (anp.exp(theta[2]) + 1e-5) * mx.eye(n)
    # mx.linalg, routed to autodiff while traced; the stream matters only when run eagerly
    chol = mx.linalg.cholesky(k, stream=mx.cpu)
    alpha = mx.linalg.solve_triangular(chol, y[:, None], stream=mx.cpu)
    log_det = 2.0 * anp.sum(anp.log(anp.sum(chol * mx.eye(n), axis=1)))
    return 0.5 * anp.sum(alpha**2) + 0.5 * log_det + 0.5 * n * math.log(2 * math.pi)


def predict(theta, x, y, grid):
    """The posterior mean at ``grid``: k(grid, x) K^-1 y, with two triangular solves."""
    n = x.shape[0]
    k = kernel(theta, x, x) + (mx.exp(theta[2]) + 1e-5) * mx.eye(n)
    chol = mx.linalg.cholesky(k, stream=mx.cpu)
    alpha = mx.linalg.solve_triangular(chol, y[:, None], stream=mx.cpu)
    alpha = mx.linalg.solve_triangular(chol.T, alpha, upper=True, stream=mx.cpu)
    return (kernel(theta, grid, x) @ alpha)[:, 0]


def newton(loss, theta, steps: int, rtol: float = 1e-3):
    """Newton's method with a safeguard: where the Hessian is not positive definite, shift it
    by more than its most negative eigenvalue; halve a step that does not lower the loss.
    Stops when |grad| < rtol max(1, |loss|), about what float32 resolves."""
    grad, hess = ad.jit(ad.grad(loss)), ad.jit(ad.hessian(loss))
    value, history = float(loss(theta)), []
    for it in range(1, steps + 1):
        g, h = grad(theta), hess(theta)
        gnorm = float(mx.linalg.norm(g))
        lowest = float(mx.linalg.eigvalsh(h, stream=mx.cpu)[0])
        shift = 0.0 if lowest > 1e-3 else 1e-3 - 1.5 * lowest
        history.append((it, value, gnorm))
        print(f"  step {it:2d}: nll {value:9.4f}  |grad| {gnorm:.2e}  Hessian shift {shift:.2g}")
        if gnorm < rtol * max(1.0, abs(value)):
            break
        step = mx.linalg.solve(h + shift * mx.eye(3), g, stream=mx.cpu)
        for _ in range(30):
            candidate = theta - step
            new = float(loss(candidate))
            if new < value:
                break
            step = 0.5 * step
        theta, value = candidate, min(new, value)
    return theta, value, float(mx.linalg.norm(grad(theta))), history


def main(fast: bool = False) -> dict:
    start = time.perf_counter()
    x, y, grid, truth = make_data(20 if fast else 60)
    loss = lambda theta: neg_log_marginal_likelihood(theta, x, y)
    theta0 = mx.array([math.log(2.0), 0.0, math.log(0.5)])  # a poor guess: long, noisy

    try:
        mx.grad(loss)(theta0)
        mlx_note = "mx.grad differentiated it too"
    except Exception as e:  # MLX has no VJP for the Cholesky factorisation
        mlx_note = f"mx.grad cannot: {str(e).splitlines()[0]}"
    print(f"{x.shape[0]} noisy points of sin(2x) + 0.5 cos(0.7x); {mlx_note}")

    rmse0 = float(mx.sqrt(mx.mean((predict(theta0, x, y, grid) - truth) ** 2)))
    print(f"initial: nll {float(loss(theta0)):.4f}, posterior-mean RMSE {rmse0:.4f}")
    theta, value, gnorm, history = newton(loss, theta0, steps=8 if fast else 15)

    ell, var, noise = (math.exp(v) for v in theta.tolist())
    rmse = float(mx.sqrt(mx.mean((predict(theta, x, y, grid) - truth) ** 2)))
    print(
        f"fitted: length-scale {ell:.3f}, signal variance {var:.3f}, noise std "
        f"{math.sqrt(noise):.3f} (true 0.15)"
    )
    print(f"nll {value:.4f}, |grad| {gnorm:.1e}, posterior-mean RMSE {rmse:.4f} (was {rmse0:.4f})")
    print("  x      truth   mean")
    mean = predict(theta, x, y, grid)
    for i in range(0, 50, 7):
        print(f"  {float(grid[i]):4.2f}  {float(truth[i]):6.3f}  {float(mean[i]):6.3f}")
    print(f"done in {time.perf_counter() - start:.1f}s")
    return {
        "initial_nll": float(loss(theta0)),
        "final_nll": value,
        "final_grad_norm": gnorm,
        "steps": len(history),
        "rmse": rmse,
        "initial_rmse": rmse0,
        "noise_std": math.sqrt(noise),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer points and Newton steps")
    main(parser.parse_args().fast)

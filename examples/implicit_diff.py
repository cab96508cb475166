"""Implicit differentiation with ``ad.custom_vjp``: the gradient of a fixed point through the
implicit function theorem, without differentiating the solver's iterations.

The fixed point is the equilibrium of a small "deep equilibrium" layer, z* = tanh(W z* + U a),
found by iterating to convergence (a ``while_loop``, whose step count depends on the data).
Its VJP solves the adjoint fixed point u = g + (dF/dz)^T u with the same iteration, each step a
VJP of the layer: memory does not grow with the number of iterations, and the solver can be
anything. We check the gradient against float64 finite differences and against
differentiating straight through an unrolled solve.

Run:  python examples/implicit_diff.py [--fast]
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp


def layer(params, z, a):
    W, U = params
    return anp.tanh(z @ W + a @ U)


def fixed_point(f, z0, tol=1e-6, max_iter=200):
    """Iterate ``z = f(z)`` until the update is below ``tol``."""

    def not_done(c):
        z, z_prev, i = c
        return anp.logical_and(anp.max(anp.abs(z - z_prev)) > tol, i < max_iter)

    def step(c):
        z, _, i = c
        return f(z), z, i + 1

    z, _, _ = ad.while_loop(not_done, step, (f(z0), z0, 1))
    return z


@ad.custom_vjp
def equilibrium(params, a):
    return fixed_point(lambda z: layer(params, z, a), anp.zeros_like(a @ params[1]))


def equilibrium_fwd(params, a):
    z = equilibrium(params, a)
    return z, (params, a, z)


def equilibrium_bwd(res, g):
    params, a, z = res
    _, vjp_z = ad.vjp(lambda z: layer(params, z, a), z)
    # the adjoint fixed point u = g + (dF/dz)^T u, by the same iteration
    u = fixed_point(lambda u: g + vjp_z(u)[0], g)
    _, vjp_inputs = ad.vjp(lambda p, a: layer(p, z, a), params, a)
    return vjp_inputs(u)


equilibrium.defvjp(equilibrium_fwd, equilibrium_bwd)


def loss(params, a, target):
    return anp.mean((equilibrium(params, a) - target) ** 2)


def unrolled_loss(params, a, target, steps=100):
    z = anp.zeros_like(a @ params[1])
    for _ in range(steps):
        z = layer(params, z, a)
    return anp.mean((z - target) ** 2)


def finite_difference(params, a, target, eps=1e-4):
    """Central differences of the loss in float64 NumPy, for a few entries of W."""
    W, U = (np.array(p, dtype=np.float64) for p in params)
    a64, t64 = np.array(a, dtype=np.float64), np.array(target, dtype=np.float64)

    def value(W):
        z = np.zeros((a64.shape[0], W.shape[0]))
        for _ in range(400):
            z = np.tanh(z @ W + a64 @ U)
        return np.mean((z - t64) ** 2)

    out = {}
    for idx in [(0, 0), (1, 2), (3, 1)]:
        d = np.zeros_like(W)
        d[idx] = eps
        out[idx] = (value(W + d) - value(W - d)) / (2 * eps)
    return out


def main(fast: bool = False) -> dict:
    key = mx.random.key(0)
    kw, ku, ka, kt = mx.random.split(key, 4)
    n, m, batch = 8, 3, 5
    params = (
        mx.random.normal((n, n), key=kw) * (0.5 / np.sqrt(n)),
        mx.random.normal((m, n), key=ku),
    )
    a, target = mx.random.normal((batch, m), key=ka), mx.random.normal((batch, n), key=kt) * 0.5

    g_implicit = ad.jit(ad.grad(loss))(params, a, target)
    g_unrolled = ad.grad(unrolled_loss)(params, a, target)
    fd = finite_difference(params, a, target)
    diff_unrolled = max(float(mx.max(mx.abs(x - y))) for x, y in zip(g_implicit, g_unrolled))
    diff_fd = max(abs(float(g_implicit[0][idx]) - v) for idx, v in fd.items())
    print(f"max |implicit - unrolled (100 steps)| = {diff_unrolled:.2e}")
    print(f"max |implicit - float64 finite differences| = {diff_fd:.2e}")

    step = ad.jit(ad.value_and_grad(loss))
    losses = []
    for _ in range(30 if fast else 200):
        value, g = step(params, a, target)
        params = tuple(p - 0.5 * gp for p, gp in zip(params, g))
        losses.append(float(value))
    print(f"fitting the equilibrium to the targets: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return {"diff_unrolled": diff_unrolled, "diff_fd": diff_fd, "losses": losses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

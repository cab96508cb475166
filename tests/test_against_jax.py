"""Differential tests against JAX (skipped without it; ``pip install -e '.[dev]'`` has it):
random programs with kinks, ties and exact zeros, every transform compared with JAX's on the
same inputs. JAX runs on the CPU in float32, like MLX here; AUTODIFF_JAX_EXAMPLES sets the size
(the default fits CI's time budget)."""

import os

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings

import autodiff as ad
from autodiff.testing.strategies import jax_namespace, programs, shapes, special_arrays

jax = pytest.importorskip("jax")
jax.config.update("jax_platforms", "cpu")
jnp = pytest.importorskip("jax.numpy")

N = int(os.environ.get("AUTODIFF_JAX_EXAMPLES", "25"))
inputs = shapes(0, 2, 1, 3).flatmap(special_arrays)


def close(ours, theirs, what, tol=2e-4):
    for a, b in zip(ad.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_allclose(
            np.array(a), np.asarray(b), rtol=tol, atol=tol, err_msg=what, equal_nan=True
        )


@settings(max_examples=N)
@given(programs(max_steps=6, kinks=True), inputs)
def test_every_transform_matches_jax(prog, x):
    f, fj = prog, prog.with_namespace(jax_namespace)
    xj = jnp.asarray(np.array(x))
    v = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    close(f(x), fj(xj), "value")
    close(ad.grad(f)(x), jax.grad(fj)(xj), "grad")
    close(ad.jvp(f, (x,), (mx.array(v),))[1], jax.jvp(fj, (xj,), (jnp.asarray(v),))[1], "jvp")
    close(ad.vjp(f, x)[1](mx.array(1.5)), jax.vjp(fj, xj)[1](jnp.float32(1.5)), "vjp")
    hvp = ad.jvp(ad.grad(f), (x,), (mx.array(v),))[1]
    close(hvp, jax.jvp(jax.grad(fj), (xj,), (jnp.asarray(v),))[1], "hvp", tol=1e-3)
    close(ad.jit(ad.grad(f))(x), jax.grad(fj)(xj), "jit(grad)")
    if x.ndim:
        close(ad.hessian(f)(x), jax.hessian(fj)(xj), "hessian", tol=1e-3)
        close(ad.jacfwd(ad.grad(f))(x), jax.jacfwd(jax.grad(fj))(xj), "jacfwd", tol=1e-3)
        close(ad.jacrev(ad.grad(f))(x), jax.jacrev(jax.grad(fj))(xj), "jacrev", tol=1e-3)
        xs = mx.stack([x, x * 0.5, -x])
        close(ad.vmap(ad.grad(f))(xs), jax.vmap(jax.grad(fj))(jnp.asarray(np.array(xs))), "vmap")
    else:
        g2, g3 = ad.grad(ad.grad(f)), ad.grad(ad.grad(ad.grad(f)))
        close(g2(x), jax.grad(jax.grad(fj))(xj), "grad^2", tol=1e-3)
        close(g3(x), jax.grad(jax.grad(jax.grad(fj)))(xj), "grad^3", tol=5e-3)


def test_the_power_rule_at_a_zero_exponent():
    # second derivatives of x**y at y == 0 (issue 9: a guard dropped the mixed term)
    f = lambda b, e: b**e
    for b, e in [(1.3, 0.0), (2.0, 0.0), (0.5, 0.0), (1.3, 1.0)]:
        ours = ad.hessian(f, argnums=(0, 1))(mx.array(b), mx.array(e))
        theirs = jax.hessian(f, argnums=(0, 1))(jnp.float32(b), jnp.float32(e))
        close(ours, theirs, f"hessian of x**y at {(b, e)}")
    g = lambda s: (1.5 + 0.3 * s) ** jnp.tanh(0.7 * s)
    ours = ad.grad(ad.grad(lambda s: (1.5 + 0.3 * s) ** ad_tanh(0.7 * s)))(mx.array(0.0))
    close(ours, jax.grad(jax.grad(g))(jnp.float32(0.0)), "grad^2 of a variable power")


def ad_tanh(x):
    import autodiff.numpy as anp

    return anp.tanh(x)


def test_documented_conventions_are_jaxs():
    import autodiff.numpy as anp

    at = lambda fs, x: (ad.grad(fs[0])(mx.array(x)), jax.grad(fs[1])(jnp.float32(x)))
    cases = {
        "abs'(0)": ((anp.abs, jnp.abs), 0.0),
        "relu'(0)": ((anp.relu, jax.nn.relu), 0.0),
        "sqrt'(0)": ((anp.sqrt, jnp.sqrt), 0.0),
        "sign'": ((anp.sign, jnp.sign), 0.3),
        "round'": ((anp.round, jnp.round), 0.3),
        "floor'": ((anp.floor, jnp.floor), 0.3),
        "maximum tie": ((lambda x: anp.maximum(x, 1.0), lambda x: jnp.maximum(x, 1.0)), 1.0),
        "minimum tie": ((lambda x: anp.minimum(x, 1.0), lambda x: jnp.minimum(x, 1.0)), 1.0),
        "clip at the bound": (
            (lambda x: anp.clip(x, -1.0, 1.0), lambda x: jnp.clip(x, -1, 1)),
            1.0,
        ),
        "cast to int": (
            (
                lambda x: x.astype(mx.int32).astype(mx.float32),
                lambda x: x.astype(jnp.int32).astype(jnp.float32),
            ),
            1.5,
        ),
    }
    for name, (fs, x) in cases.items():
        ours, theirs = at(fs, x)
        close(ours, theirs, name)
    tie = mx.array([2.0, 2.0, 1.0])
    close(ad.grad(anp.max)(tie), jax.grad(jnp.max)(jnp.asarray([2.0, 2.0, 1.0])), "max ties")

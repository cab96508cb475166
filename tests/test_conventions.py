"""JAX's conventions at kinks, and each documented difference from mlx.grad (README)."""

import math

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp


def g(f, x):
    return np.array(ad.grad(lambda x: anp.sum(f(x)))(mx.array(x)))


def test_subgradients_at_kinks_follow_jax():
    # (checked against JAX itself in test_against_jax.py)
    assert g(anp.abs, [0.0, -1.0]).tolist() == [1.0, -1.0]
    assert g(anp.relu, [0.0, 1.0]).tolist() == [0.0, 1.0]
    assert g(lambda x: anp.maximum(x, 1.0), [1.0]).tolist() == [0.5]
    assert g(lambda x: anp.minimum(x, 1.0), [1.0]).tolist() == [0.5]
    assert g(anp.max, [2.0, 2.0, 1.0]).tolist() == [0.5, 0.5, 0.0]
    assert math.isinf(g(anp.sqrt, [0.0])[0])
    for f in (anp.sign, anp.floor, anp.ceil, anp.round):
        assert g(f, [0.3]).tolist() == [0.0]
    # d/dx x^0 = 0, also at 0 (JAX gives nan at 0: 0 * 0**-1; x**0 == 1 is constant in x)
    assert g(lambda x: x**0.0, [0.0]).tolist() == [0.0]
    assert g(lambda x: anp.power(0.0, x), [2.0]).tolist() == [0.0]  # d/dy 0^y = 0


def test_differences_from_mlx_are_as_documented():
    # abs at 0: MLX's derivative is sign(0) = 0, JAX's (and ours) is 1
    assert float(mx.grad(mx.abs)(mx.array(0.0))) == 0.0
    assert float(ad.grad(anp.abs)(mx.array(0.0))) == 1.0
    # ties in maximum: MLX gives the whole derivative to one side
    x = mx.array([1.0])
    assert float(mx.grad(lambda x: mx.maximum(x, 1.0).sum())(x)[0]) in (0.0, 1.0)
    # casting to int: MLX passes the gradient through
    to_int = lambda x: anp.sum(x.astype(mx.int32).astype(mx.float32))
    assert np.array(mx.grad(to_int)(mx.array([1.5]))).tolist() == [1.0]
    assert np.array(ad.grad(to_int)(mx.array([1.5]))).tolist() == [0.0]
    # argmax dtype
    assert mx.argmax(mx.array([1.0, 3.0])).dtype == mx.uint32
    assert ad.jit(lambda x: anp.argmax(x))(mx.array([1.0, 3.0])).dtype == mx.int32
    # argnums order: MLX sorts
    f = lambda a, b: a * b**2
    a, b = mx.array(2.0), mx.array(3.0)
    da_first = mx.grad(f, argnums=[1, 0])(a, b)
    ours = ad.grad(f, argnums=(1, 0))(a, b)
    assert float(ours[0]) == 12.0 and float(ours[1]) == 9.0
    assert float(da_first[0]) == 9.0  # MLX returns (d/da, d/db) regardless


def test_mlx_addmm_jvp_ignores_beta_ours_does_not():
    c, a, b = mx.array([[0.7]]), mx.array([[1.0, -2.0]]), mx.array([[0.5], [1.5]])
    t = mx.array([[1.0]])
    f = lambda c: anp.addmm(c, a, b, alpha=0.5, beta=2.0)
    assert float(ad.jvp(f, (c,), (t,))[1][0, 0]) == pytest.approx(2.0)
    assert float(mx.jvp(f, [c], [t])[1][0][0, 0]) == pytest.approx(1.0)  # MLX's bug

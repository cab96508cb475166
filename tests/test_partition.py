"""Focused tests for partition, argpartition, topk, median, searchsorted, unique: traced results
equal MLX's exactly (order included, ties included), derivatives consistent with the values at
ties and equal to JAX's where JAX has the op, mx.* spellings under transforms."""

import mlx.core as mx
import numpy as np
import pytest
from oracles import optional_jax

import autodiff as ad
import autodiff.numpy as anp

jax, jnp = optional_jax(jax_platforms="cpu")


def _tied(rng, shape):
    return mx.array(rng.integers(-2, 3, size=shape).astype(np.float32))


def _same(got, expected):
    for g, e in zip(ad.tree_leaves(got), ad.tree_leaves(expected)):
        assert g.shape == e.shape
        assert g.dtype == e.dtype or (e.dtype == mx.uint32 and g.dtype == mx.int32)
        assert np.array_equal(np.array(g), np.array(e), equal_nan=True), (g, e)


def test_order_equals_mlx_exactly_with_ties():
    # MLX's CPU partition and argpartition order tied values differently, so the values are
    # MLX's partition itself, not a gather at argpartition's indices.
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 12))
        x = _tied(rng, (2, n))
        for kth in {0, n // 2, n - 1, -1}:
            _same(ad.jit(lambda a: anp.partition(a, kth))(x), mx.partition(x, kth))
            _same(ad.jit(lambda a: anp.argpartition(a, kth))(x), mx.argpartition(x, kth))
            _same(ad.jit(lambda a: anp.partition(a, kth, axis=None))(x), mx.partition(x, kth, None))
        for k in {0, 1, n // 2, n}:
            _same(ad.jit(lambda a: anp.topk(a, k))(x), mx.topk(x, k))
            _same(ad.jit(lambda a: anp.topk(a, k, axis=None))(x), mx.topk(x, k, axis=None))
        _same(ad.vmap(lambda a: anp.partition(a, 0), in_axes=1)(x), mx.partition(x.T, 0))


def test_partition_jacobian_matches_each_output_with_an_equal_input():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 9))
        x = _tied(rng, (n,))
        for kth in range(n):
            vals = np.array(anp.partition(x, kth))
            for jac in (ad.jacfwd, ad.jacrev):
                J = np.array(jac(lambda a: anp.partition(a, kth))(x))
                assert (J.sum(0) == 1).all() and (J.sum(1) == 1).all()  # a permutation
                np.testing.assert_array_equal(J @ np.array(x), vals)


def test_partition_derivative_is_right_where_mlx_gathers_the_wrong_element():
    # On MLX's CPU backend, partition([2, 1, 1, 0, 0], 0) is [0, 0, 1, 2, 1] while its JVP
    # gathers at argpartition's [.., 1, 1, 2] order: position 3 (value 2) got the tangent of
    # a 1. Ours follows the values.
    x, t = mx.array([2.0, 1.0, 1.0, 0.0, 0.0]), mx.array([10.0, 20.0, 30.0, 40.0, 50.0])
    vals, tan = ad.jvp(lambda a: anp.partition(a, 0), (x,), (t,))
    _same(vals, mx.partition(x, 0))
    by_value = {v: set() for v in (0.0, 1.0, 2.0)}
    for v, d in zip(np.array(x), np.array(t)):
        by_value[v].add(d)
    for v, d in zip(np.array(vals), np.array(tan)):
        assert d in by_value[v]


def test_topk_selects_and_differentiates_like_jax():
    rng = np.random.default_rng(2)
    for _ in range(6):
        n = int(rng.integers(2, 8))
        x = _tied(rng, (n,))
        xj = jnp.asarray(np.array(x)) if jax is not None else None
        for k in range(1, n + 1):
            J = np.array(ad.jacfwd(lambda a: anp.topk(a, k))(x))
            if jax is not None:
                Jj = np.asarray(jax.jacfwd(lambda a: jax.lax.top_k(a, k)[0])(xj))
                # the same elements selected (ties cut by k: the lowest indices), each once
                np.testing.assert_array_equal(J.sum(0), Jj.sum(0))
            np.testing.assert_array_equal(J @ np.array(x), np.array(anp.topk(x, k)))
            np.testing.assert_array_equal(J, np.array(ad.jacrev(lambda a: anp.topk(a, k))(x)))
            g = ad.grad(lambda a: (anp.topk(a, k) ** 3).sum())(x)
            if jax is not None:
                gj = jax.grad(lambda a: (jax.lax.top_k(a, k)[0] ** 3).sum())(xj)
                np.testing.assert_allclose(np.array(g), np.asarray(gj), rtol=1e-6)


def test_topk_and_partition_second_order_and_vmap():
    x = mx.array([[0.3, -1.2, 2.0, 0.7, 1.5], [1.0, 2.0, -3.0, 0.5, 0.6]])
    f = lambda a: (anp.topk(a, 2, axis=-1) ** 3).sum() + (anp.partition(a, 1, axis=0) ** 2).sum()
    mf = lambda a: (mx.topk(a, 2, axis=-1) ** 3).sum() + (mx.partition(a, 1, axis=0) ** 2).sum()
    np.testing.assert_allclose(np.array(ad.grad(f)(x)), np.array(mx.grad(mf)(x)), rtol=1e-6)
    v = mx.ones_like(x)
    hvp = ad.jvp(ad.grad(f), (x,), (v,))[1]
    np.testing.assert_allclose(np.array(hvp), np.array(mx.jvp(mx.grad(mf), [x], [v])[1][0]))
    g = ad.vmap(ad.grad(lambda a: (anp.topk(a, 2) ** 3).sum()))(x)
    loop = mx.stack([ad.grad(lambda a: (anp.topk(a, 2) ** 3).sum())(r) for r in x])
    np.testing.assert_allclose(np.array(g), np.array(loop))
    assert ad.jit(lambda a: mx.topk(a, 2))(x).shape == (2, 2)  # the mx.* spelling traces


def test_median_matches_mlx_and_jax():
    rng = np.random.default_rng(3)
    for shape in [(5,), (4,), (3, 4), (2, 3, 2)]:
        x = _tied(rng, shape)
        for axis in [None, 0, -1] + ([(0, -1)] if len(shape) > 1 else []):
            _same(
                ad.jit(lambda a: anp.median(a, axis=axis, keepdims=True))(x),
                mx.median(x, axis, True),
            )
            g = ad.grad(lambda a: (anp.median(a, axis=axis) ** 2).sum())(x)
            if jax is not None:
                gj = jax.grad(lambda a: (jnp.median(a, axis=axis) ** 2).sum())(
                    jnp.asarray(np.array(x))
                )
                np.testing.assert_allclose(np.array(g), np.asarray(gj), rtol=1e-6, atol=1e-7)
    with_nan = mx.array([[1.0, np.nan, 0.0], [3.0, 2.0, 1.0]])
    _same(ad.jit(lambda a: anp.median(a, axis=1))(with_nan), mx.median(with_nan, axis=1))
    _same(ad.jit(lambda a: mx.median(a))(mx.array([3, 1, 2, 4])), mx.median(mx.array([3, 1, 2, 4])))
    with pytest.raises(ValueError, match="duplicate"):
        ad.jit(lambda a: anp.median(a, axis=(0, -2)))(mx.ones((2, 2)))


def test_searchsorted_sides_ties_and_batched_sequences():
    seq = mx.array([-1.0, 0.0, 0.0, 2.0])
    values = mx.array([[-2.0, 0.0, 1.0], [2.0, 3.0, -1.0]])
    for side in ("left", "right"):
        _same(
            ad.jit(lambda s, v: anp.searchsorted(s, v, side=side))(seq, values),
            mx.searchsorted(seq, values, side=side),
        )
        seqs = mx.array([[-1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 1.0, 1.0], [2.0, 2.0, 3.0, 4.0]])
        got = ad.vmap(lambda s: anp.searchsorted(s, values, side=side))(seqs)
        loop = mx.stack([mx.searchsorted(s, values, side=side) for s in seqs])
        _same(got, loop)
    grad = ad.grad(lambda v: (mx.searchsorted(seq, v) * v).sum())(values)
    _same(grad, mx.searchsorted(seq, values).astype(mx.float32))
    with pytest.raises(ValueError, match="side"):
        ad.jit(lambda v: anp.searchsorted(seq, v, side="middle"))(values)


def test_unique_traces_with_mlx_results():
    rng = np.random.default_rng(4)
    for _ in range(10):
        x = _tied(rng, (2, int(rng.integers(1, 5))))
        for size in (0, 1, 3, x.size + 2):
            for kw in (dict(), dict(fill_value=7.5), dict(fill_value=mx.array([-1.0]))):
                f = lambda a: anp.unique(a, size, True, True, True, **kw)
                _same(ad.jit(f)(x), mx.unique(x, size, True, True, True, **kw))
            _same(
                ad.jit(lambda a: anp.unique(a / a, size, True, True, True))(x),
                mx.unique(x / x, size, True, True, True),
            )
    x = mx.array([3.0, 1.0, 3.0, 2.0])
    f = lambda a: (mx.unique(a, 4) * mx.arange(4)).sum()  # padding differentiates x[1]
    _same(ad.grad(f)(x), mx.grad(f)(x))
    with pytest.raises(ValueError, match="fill value"):
        ad.jit(lambda a: anp.unique(a, 2))(mx.zeros((0,)))


def test_errors():
    x = mx.ones((2, 3))
    with pytest.raises(ValueError, match="kth"):
        ad.jit(lambda a: anp.partition(a, 3))(x)
    with pytest.raises(ValueError, match="k=4"):
        ad.jit(lambda a: anp.topk(a, 4))(x)
    with pytest.raises(ValueError, match="1-D"):
        ad.jit(lambda a: anp.searchsorted(a, a))(x)

"""Focused tests for the cumulative scans (autodiff/ops/cumulative.py): Jacobians and Hessians
against JAX at ties and zeros, exactness of cumprod at zeros, stability of logcumsumexp,
exclusive scans equal to MLX's for every dtype, mx.* spellings and methods under transforms."""

import mlx.core as mx
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff import lax

jax, jnp = optional_jax(jax_platforms="cpu")

# ours, and the name of JAX's in jax.lax
SCANS = {
    "cummax": (anp.cummax, "cummax"),
    "cummin": (anp.cummin, "cummin"),
    "cumprod": (anp.cumprod, "cumprod"),
    "logcumsumexp": (anp.logcumsumexp, "cumlogsumexp"),
}


def _close(ours, theirs, tol=1e-4):
    np.testing.assert_allclose(np.array(ours), np.asarray(theirs), rtol=tol, atol=tol)


@requires_jax
@pytest.mark.parametrize("name", SCANS)
@pytest.mark.parametrize("reverse", [False, True])
def test_jacobians_and_hessians_match_jax_at_ties_and_zeros(name, reverse):
    ours, theirs = SCANS[name]
    theirs = getattr(jax.lax, theirs)
    rng = np.random.default_rng(0)
    for n in (1, 5, 8):
        x = rng.integers(-2, 3, size=n).astype(np.float32)  # ties and zeros
        w = rng.standard_normal(n).astype(np.float32)
        f = lambda a: ours(a, axis=0, reverse=reverse)
        fj = lambda a: theirs(a, axis=0, reverse=reverse)
        xm, xj = mx.array(x), jnp.asarray(x)
        _close(ad.jacfwd(f)(xm), jax.jacfwd(fj)(xj))
        _close(ad.jacrev(f)(xm), jax.jacrev(fj)(xj))
        g = lambda a: (f(a) ** 3 * mx.array(w)).sum()
        gj = lambda a: (fj(a) ** 3 * w).sum()
        _close(ad.hessian(g)(xm), jax.hessian(gj)(xj), tol=1e-3)


@requires_jax
def test_cummax_ties_follow_jax_tree():
    # JAX splits a tie like max does, along its associative-scan tree; so do we.
    x = mx.array([2.0, 2.0, 2.0, 2.0, 1.0, 2.0])
    _close(ad.jacfwd(anp.cummax)(x), jax.jacfwd(jax.lax.cummax)(jnp.asarray(np.array(x))))


def test_cumprod_is_exact_at_zeros_without_division():
    x = mx.array([2.0, 0.0, 3.0, 0.0, 5.0, 4.0])
    jac = ad.jacfwd(lambda a: anp.cumprod(a))(x)
    assert np.isfinite(np.array(jac)).all()
    if jax is not None:
        _close(jac, jax.jacfwd(jax.lax.cumprod)(jnp.asarray(np.array(x))))
    # third order at all zeros: d3(x0 x1 x2) is 1 at the permutations of (0, 1, 2)
    d3 = ad.jacfwd(ad.hessian(lambda a: anp.cumprod(a)[2]))(mx.zeros(3))
    expected = np.zeros((3, 3, 3))
    for i, j, k in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        expected[i, j, k] = 1.0
    np.testing.assert_array_equal(np.array(d3), expected)
    closed = ad.make_jaxpr(ad.grad(lambda a: anp.cumprod(a).sum()))(x)
    assert "div" not in {e.prim.name for e in closed.eqns}


def test_cumprod_derivative_program_grows_logarithmically():
    def count(n):
        f = lambda a: ad.jvp(anp.cumprod, (a,), (a,))[1]
        return len(ad.make_jaxpr(f)(mx.ones(n)).eqns)

    assert count(1024) < 2.5 * count(32)


def test_logcumsumexp_is_stable_with_large_and_infinite_inputs():
    x = mx.array([1000.0, 1001.0, -np.inf, 999.0, 3000.0])
    out = anp.logcumsumexp(x)
    assert np.isfinite(np.array(out)).all()
    jac = np.array(ad.jacfwd(anp.logcumsumexp)(x))
    assert np.isfinite(jac).all()
    # rows sum to one (the weights are a softmax of the prefix), the -inf column is zero
    np.testing.assert_allclose(jac.sum(1), 1.0, rtol=1e-5)
    assert (jac[:, 2] == 0).all()
    xn = np.array([1000.0, 1001.0, 999.0, 3000.0], np.float32)
    xf = mx.array(xn)
    if jax is not None:
        xj = jnp.asarray(xn)
        _close(ad.jacfwd(anp.logcumsumexp)(xf), jax.jacfwd(jax.lax.cumlogsumexp)(xj))
    h = ad.hessian(lambda a: anp.logcumsumexp(a)[-1])(xf)
    assert np.isfinite(np.array(h)).all()
    # all -inf: the weights split equally (the limit of equal operands), nothing is nan
    jac = np.array(ad.jacfwd(anp.logcumsumexp)(mx.array([-np.inf, -np.inf, 0.0])))
    np.testing.assert_allclose(jac, [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1]])
    # higher orders stay finite next to -inf inputs (MLX's gradient is nan there)
    f = lambda a: (anp.logcumsumexp(a)[2:] ** 2).sum()
    x = mx.array([-np.inf, -np.inf, 2.0, 4.0])
    np.testing.assert_array_equal(np.array(ad.grad(f)(x))[:2], 0.0)
    if jax is not None:
        xj = jnp.asarray(np.array([-np.inf, -np.inf, 2.0, 4.0], np.float32))
        fj = lambda a: (jax.lax.cumlogsumexp(a)[2:] ** 2).sum()
        _close(ad.grad(f)(x)[2:], jax.grad(fj)(xj)[2:])
    h = np.array(ad.hessian(f)(x))
    assert np.isfinite(h).all() and (h[:2] == 0).all() and (h[:, :2] == 0).all()
    if jax is not None:
        # (JAX's Hessian is nan here: compare with the one of the finite inputs alone)
        gj = lambda b: (jax.lax.cumlogsumexp(b) ** 2).sum()
        _close(h[2:, 2:], jax.hessian(gj)(xj[2:]), tol=1e-3)
    assert np.isfinite(np.array(ad.jacfwd(ad.hessian(f))(x))).all()


@pytest.mark.parametrize(
    "dtype", [mx.float32, mx.float16, mx.bfloat16, mx.int32, mx.int8, mx.uint8, mx.bool_]
)
@pytest.mark.parametrize("name", ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"])
def test_exclusive_and_reverse_scans_equal_mlx(name, dtype):
    x = mx.array([[3, 1, 0, 2], [1, 1, 2, 0]]).astype(dtype)
    fn = getattr(anp, name)
    for kw in (
        dict(axis=1, inclusive=False),
        dict(axis=0, reverse=True, inclusive=False),
        dict(axis=-1, reverse=True),
        dict(inclusive=False),
    ):
        expected = getattr(mx, name)(x, **kw)
        got = ad.jit(lambda a: fn(a, **kw))(x)
        assert got.dtype == expected.dtype, (name, kw)
        assert mx.array_equal(got, expected, equal_nan=True).item(), (name, kw, got, expected)


def test_dtype_argument_and_aliases():
    x = mx.array([1, 2, 3], dtype=mx.int32)
    assert anp.cumulative_sum is anp.cumsum and anp.cumulative_prod is anp.cumprod
    for fn, kw in [(anp.cumsum, dict(dtype=mx.float16)), (anp.cumprod, dict(dtype=mx.float32))]:
        expected = getattr(mx, fn.__name__)(x, **kw)
        got = ad.jit(lambda a: fn(a, **kw))(x)
        assert got.dtype == expected.dtype and mx.array_equal(got, expected).item()
    # an exclusive sum after an infinity is finite (it used to subtract the input: inf - inf)
    y = mx.array([np.inf, 1.0, 2.0])
    np.testing.assert_array_equal(
        np.array(ad.jit(lambda a: anp.cumsum(a, inclusive=False))(y)), [0.0, np.inf, np.inf]
    )


def test_mx_spellings_and_methods_trace():
    x = mx.array([0.5, -1.0, 2.0, 0.0])
    f_mx = lambda a: (
        mx.cumprod(a).sum()
        + mx.cummax(a, reverse=True).sum()
        + mx.logcumsumexp(a, inclusive=False)[1:].sum()
        + mx.cumulative_sum(a).sum()
        + mx.cummin(a).sum()
    )
    f_methods = lambda a: (
        a.cumprod().sum()
        + a.cummax(reverse=True).sum()
        + a.logcumsumexp(inclusive=False)[1:].sum()
        + a.cumsum().sum()
        + a.cummin().sum()
    )
    _close(ad.grad(f_mx)(x), mx.grad(f_mx)(x))
    _close(ad.grad(f_methods)(x), mx.grad(f_mx)(x))
    # MLX has no JVP for cumprod/cummax/cummin; ours agrees with its VJP
    t = mx.array([1.0, 2.0, -1.0, 0.5])
    _close(ad.jvp(f_mx, (x,), (t,))[1], (mx.grad(f_mx)(x) * t).sum())


def test_vmap_of_derivatives_matches_a_loop():
    xs = mx.array(np.random.default_rng(1).integers(-2, 3, size=(3, 2, 5)).astype(np.float32))
    for name in SCANS:
        fn = getattr(anp, name)
        f = lambda a: (fn(a, axis=-1, reverse=True) ** 2).sum()
        g = ad.vmap(ad.grad(f), in_axes=1)(xs)
        loop = mx.stack([ad.grad(f)(xs[:, i]) for i in range(xs.shape[1])])
        _close(g, loop)


def test_shape_rule_errors():
    with pytest.raises(ValueError, match="out of range"):
        ad.make_jaxpr(lambda a: lax.cumprod(a, 1))(mx.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        ad.make_jaxpr(lambda a: lax.logcumsumexp(a, 0))(mx.ones(3, dtype=mx.int32))
    with pytest.raises(ValueError, match="out of bounds"):
        ad.jit(lambda a: anp.cummax(a, axis=2))(mx.ones(3))

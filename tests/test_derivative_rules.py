"""Table-driven derivative tests, one row per primitive or composite (tests/table.py):
JVP against float64 central differences and VJP by the inner-product identity, both to second
order (check_grads), and agreement with mx.grad / mx.jvp where MLX has the rule.

Complex values: MLX's gradient of a real function of complex ``z = x + iy`` is
``df/dx + i df/dy``, ours (JAX's) its conjugate, so ours is compared with ``conj(mx.grad)``;
JVPs agree as they are."""

import functools

import mlx.core as mx
import numpy as np
import pytest
from device import for_device
from hypothesis import given
from hypothesis import strategies as st
from table import DIFF_ROWS, FD_ROWS

import autodiff as ad
import autodiff.numpy as anp
from autodiff.testing import check_grads

MX_ROWS = [r for r in DIFF_ROWS if r.mx_grad]


def _partial(row, args):
    """The row's function of its differentiable arguments, the others held fixed."""

    def f(*diff_args):
        full = list(args)
        for i, a in zip(row.diff, diff_args):
            full[i] = a
        return row.fun(*full)

    f.__name__ = row.name
    return f, tuple(args[i] for i in row.diff)


def _real_sum(o):
    if o.dtype == mx.complex64:  # both parts, weighted apart
        return anp.sum(anp.real(o)) + 0.7 * anp.sum(anp.imag(o))
    return anp.sum(o)


def _scalar(f):
    @functools.wraps(f)
    def g(*a):
        return functools.reduce(lambda s, o: s + _real_sum(o), ad.tree_leaves(f(*a)), 0.0)

    return g


def _from_mlx(grads, args):
    """MLX's gradients in JAX's convention: conjugated for complex arguments."""
    grads = [grads] if isinstance(grads, mx.array) else grads
    return [mx.conj(g) if a.dtype == mx.complex64 else g for g, a in zip(grads, args)]


def _tangent(a):
    t = mx.random.normal(a.shape)
    return t + 1j * mx.random.normal(a.shape) if a.dtype == mx.complex64 else t


@pytest.mark.parametrize("row", FD_ROWS, ids=[r.name for r in FD_ROWS])
@given(data=st.data())
def test_check_grads_second_order(row, data):
    args = row.draw_args(data.draw)
    row = for_device(row, args)
    f, diff_args = _partial(row, args)
    check_grads(f, diff_args, order=row.order, modes=row.modes, atol=row.rtol, rtol=row.rtol)


def _close(a, b, rtol=2e-4, atol=2e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        x, y = (np.array(v.astype(mx.float32)) for v in (x, y))
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("row", MX_ROWS, ids=[r.name for r in MX_ROWS])
@given(data=st.data())
def test_matches_mlx_first_and_second_order(row, data):
    args = row.draw_args(data.draw)
    row = for_device(row, args)
    f, diff_args = _partial(row, args)
    g = _scalar(f)
    nums = tuple(range(len(diff_args)))
    rtol, atol = max(2e-4, row.mlx_rtol), max(2e-5, row.mlx_atol)
    close = lambda a, b, k=1: _close(a, b, rtol=k * rtol, atol=k * atol)
    theirs = _from_mlx(mx.grad(g, argnums=list(nums))(*diff_args), diff_args)
    close(ad.grad(g, argnums=nums)(*diff_args), theirs)
    tangents = [_tangent(a) for a in diff_args]
    if row.mx_jvp:
        ours = ad.jvp(f, diff_args, tangents)
        theirs = mx.jvp(lambda *a: ad.tree_leaves(f(*a)), list(diff_args), tangents)
        close(ad.tree_leaves(ours[1]), theirs[1])
    if row.mx_order < 2:
        return
    # second order: a Hessian-vector product, forward-over-reverse
    g0 = lambda x: g(x, *diff_args[1:])
    close(
        ad.jvp(ad.grad(g0), (diff_args[0],), (tangents[0],))[1],
        _from_mlx(mx.jvp(mx.grad(g0), [diff_args[0]], [tangents[0]])[1], diff_args[:1])[0],
        k=5,
    )

"""Batching rules, table-driven: every row of tests/table.py under vmap, against a Python loop
over the batch, for in_axes 0, a middle axis, the last axis and None on each operand; and
against mx.vmap where MLX supports the primitive. Plus the vmap API and its errors."""

import mlx.core as mx
import numpy as np
import pytest
from device import for_device
from hypothesis import given
from hypothesis import strategies as st
from table import ROW_IDS, ROWS

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError

B = 3


def _stack(xs, axis):
    return mx.stack(xs, axis=axis)


def _close(got, expected, tol=1e-5):
    g, e = ad.tree_leaves(got), ad.tree_leaves(expected)
    assert len(g) == len(e)
    for a, b in zip(g, e):
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(_np(a), _np(b), rtol=tol, atol=tol)


def _np(x):
    return np.array(x if x.dtype == mx.complex64 else x.astype(mx.float32))


def _axis_choices(ranks):
    """in_axes combinations: all 0, all middle, all last, then None on each operand in turn."""
    combos = [tuple(0 for _ in ranks), tuple((r + 1) // 2 for r in ranks), tuple(-1 for _ in ranks)]
    for i in range(len(ranks)):
        if len(ranks) > 1:
            combos.append(tuple(None if j == i else 0 for j in range(len(ranks))))
    return combos


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
@given(data=st.data())
def test_batching_rule_matches_loop(row, data):
    shape = data.draw(row.shapes)
    examples = [tuple(data.draw(a(shape)) for a in row.args) for _ in range(B)]
    row = for_device(row, examples[0])
    ranks = [x.ndim for x in examples[0]]
    for axes in _axis_choices(ranks):
        batched = [
            examples[0][i] if d is None else _stack([ex[i] for ex in examples], d)
            for i, d in enumerate(axes)
        ]
        got = ad.vmap(row.fun, in_axes=axes)(*batched)
        per_example = [
            row.fun(*[examples[0][i] if d is None else ex[i] for i, d in enumerate(axes)])
            for ex in examples
        ]
        expected = ad.tree_map(lambda *xs: mx.stack(xs), *per_example)
        tol = max(1e-5, row.mlx_rtol, row.mlx_atol)
        _close(got, expected, tol)
        if axes == tuple(0 for _ in ranks) and row.mx_vmap:
            _close(got, mx.vmap(row.fun, in_axes=axes)(*batched), tol)


def test_vmap_api_axes_and_pytrees():
    def f(params, x):
        return {"y": x @ params["w"] + params["b"], "n": anp.sum(x)}

    params = {"w": mx.random.normal((3, 2)), "b": mx.zeros(2)}
    xs = mx.random.normal((4, 3))
    out = ad.vmap(f, in_axes=(None, 0))(params, xs)
    assert out["y"].shape == (4, 2) and out["n"].shape == (4,)
    out2 = ad.vmap(f, in_axes=({"w": None, "b": None}, 1), out_axes={"y": 1, "n": 0})(params, xs.T)
    _close(out2["y"], out["y"].T)
    # negative axes, keyword arguments mapped over axis 0, axis_size with nothing mapped
    _close(ad.vmap(lambda x: x * 2, in_axes=-1, out_axes=-1)(xs), xs * 2)
    _close(ad.vmap(lambda x, *, k: x * k)(xs, k=mx.arange(4.0)), xs * mx.arange(4.0)[:, None])
    _close(ad.vmap(lambda: mx.ones(2), axis_size=5)(), mx.ones((5, 2)))
    _close(ad.vmap(lambda x: mx.array(1.0) + 0 * anp.sum(x))(xs), mx.ones(4))
    # nested vmap, vmap of jvp
    _close(
        ad.vmap(ad.vmap(lambda a, b: a * b, in_axes=(0, None)), in_axes=(None, 0))(
            mx.arange(3.0), mx.arange(2.0)
        ),
        mx.arange(2.0)[:, None] * mx.arange(3.0),
    )
    t = mx.ones_like(xs)
    _close(ad.vmap(lambda x, t: ad.jvp(anp.sin, (x,), (t,))[1])(xs, t), mx.cos(xs))


def test_vmap_errors():
    xs, ys = mx.ones((3, 2)), mx.ones((4, 2))
    with pytest.raises(TransformError, match=r"(?s)inconsistent sizes.*size 3.*size 4"):
        ad.vmap(lambda a, b: a + b)(xs, ys)
    with pytest.raises(TransformError, match="axis 2.*rank 2"):
        ad.vmap(lambda a: a, in_axes=2)(xs)
    with pytest.raises(TransformError, match="axis_size"):
        ad.vmap(lambda a: a, in_axes=None)(xs)
    with pytest.raises(ValueError, match="out_axes is None"):
        ad.vmap(lambda a: a * 2, out_axes=None)(xs)
    with pytest.raises(TransformError, match="in_axes has 1 entries"):
        ad.vmap(lambda a, b: a, in_axes=(0,))(xs, xs)
    assert ad.vmap(lambda a, b: b, in_axes=(0, None), out_axes=None)(xs, mx.ones(2)).shape == (2,)

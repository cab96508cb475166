"""Rows for autodiff/ops/scatter.py and the updates built on it: ``x[idx] = y`` (in place, as
MLX), the in-place operators, ``x.at[idx]``, ``put_along_axis``, boolean masks.

Each function updates a copy (``x * 1.0``) so that running it eagerly on the drawn arrays does
not change them. MLX has no JVP for any scatter (mx_jvp=False, mx_order=1) and no VJP for
``scatter_prod`` (multiply, divide: mx_grad=False); its VJP of ``x[idx] = y`` gives every
repeated index the cotangent, where only the update that was written should get it
(mx_grad=False where indices repeat).
"""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import A, Row, arrays_s

import autodiff.numpy as anp

ROWS_2D = st.tuples(st.integers(2, 4), st.integers(1, 3))
NO_MX_JVP = dict(mx_jvp=False, mx_order=1)


def idx(n, low=None, high=None, k=4):
    """k integer indices into an axis of the drawn shape's first side (negative ones too)."""
    return lambda s: arrays_s(
        (k,),
        dtype=mx.int32,
        low=-s[0] if low is None else low(s[0]),
        high=s[0] - 1 if high is None else high(s[0]),
    )


def rows(k=4):
    return lambda s: arrays_s((k,) + tuple(s[1:]))


def _setitem_slices(x, u):
    y = x * 1.0
    z = y  # an alias: sees every update below
    first = y[0]  # computed before: keeps the old value
    y[1:3] = u[:2] * 2.0
    y[0] += x[-1]
    y[-1, ...] = 0.5
    return z * first


def _setitem_array(x, i, u):
    y = x * 1.0
    y[i] = u * 3.0
    return y * x


def _setitem_two_arrays(x, i, j, u):
    y = x * 1.0
    y[i, j % x.shape[1]] = u
    y[:, mx.array([0, 0])] += x[:, :1]
    return y


def _inplace_operators(x, u):
    y = x * 1.0
    z = y
    y += u
    y *= x
    y -= 0.5
    y /= u * u + 1.0
    y **= 2
    return z + y


def _masked(x, u):
    y = x * 1.0
    y[x > 0.5] = 0.25
    y[mx.array([True, False] * (x.shape[0] // 2) + [True] * (x.shape[0] % 2))] = u
    return y * x


def _shift(x):
    out = mx.zeros_like(x)  # the usual MLX pattern, spelled with mlx.core
    out[1:] = x[:-1] * 2
    out[0] = x[-1]
    return out * x


ROWS = [
    Row(
        "setitem_slices",
        _setitem_slices,
        (A(), A()),
        shapes=st.tuples(st.integers(3, 4), st.integers(1, 3)),
        diff=(0, 1),
        mx_vmap=False,  # mx.vmap of `y[-1, ...] = 0.5` updates the first example only
        **NO_MX_JVP,
    ),
    Row(
        "setitem_array",
        _setitem_array,
        (A(), idx(4), rows(4)),
        shapes=ROWS_2D,
        diff=(0, 2),
        mx_grad=False,
        **NO_MX_JVP,
    ),
    Row(
        "setitem_two_arrays",
        _setitem_two_arrays,
        (
            A(),
            idx(3, k=3),
            lambda s: arrays_s((3,), dtype=mx.int32, low=0, high=5),
            lambda s: arrays_s((3,)),
        ),
        shapes=ROWS_2D,
        diff=(0, 3),
        mx_grad=False,
        **NO_MX_JVP,
    ),
    Row("inplace_operators", _inplace_operators, (A(), A()), diff=(0, 1)),
    Row(
        "setitem_mask",
        _masked,
        (A(away=(0.5,)), lambda s: arrays_s(tuple(s[1:]))),
        shapes=ROWS_2D,
        diff=(0, 1),
        mx_grad=False,  # MLX: "Cannot calculate VJP with respect to mask"
        **NO_MX_JVP,
    ),
    Row("shift_with_mx_zeros_like", _shift, (A(),), shapes=ROWS_2D, **NO_MX_JVP),
    Row(
        "at_add_traced_indices",
        lambda x, i, u: x.at[i].add(u) * x,
        (A(), idx(4), rows(4)),
        shapes=ROWS_2D,
        diff=(0, 2),
        **NO_MX_JVP,
    ),
    Row(
        "at_multiply_divide",
        lambda x, i, u: x.at[i].multiply(u) + x.at[i].divide(u),
        (A(), idx(4), lambda s: arrays_s((4,) + tuple(s[1:]), away_from=(0.0,), margin=0.3)),
        shapes=ROWS_2D,
        diff=(0, 2),
        mx_grad=False,
        **NO_MX_JVP,
    ),
    Row(
        "at_maximum_minimum",
        lambda x, i, u: x.at[i].maximum(u) * x.at[i].minimum(u * 0.5),
        (A(), idx(4), rows(4)),
        shapes=ROWS_2D,
        diff=(0, 2),
        **NO_MX_JVP,
    ),
    Row(
        "at_slices",
        lambda x, u: (
            x.at[1:].subtract(u[1:]) * x.at[::2].multiply(u[::2]) + x.at[:, 0].maximum(u[:, 0])
        ),
        (A(), A()),
        shapes=ROWS_2D,
        diff=(0, 1),
        mx_grad=False,
        **NO_MX_JVP,
    ),
    Row(
        "put_along_axis",
        lambda x, i, v: anp.put_along_axis(x, i, v, axis=1) * x,
        (
            A(),
            lambda s: arrays_s((s[0], 2), dtype=mx.int32, low=-s[1], high=s[1] - 1),
            lambda s: arrays_s((s[0], 2)),
        ),
        shapes=ROWS_2D,
        diff=(0, 2),
        mx_grad=False,
        **NO_MX_JVP,
    ),
    Row(
        "put_along_axis_flat",
        lambda x, i, v: (
            anp.put_along_axis(x, i, v) + anp.put_along_axis(x, i[:1], mx.array(2.0), axis=0)
        ),
        (
            A(),
            lambda s: arrays_s((3,), dtype=mx.int32, low=0, high=s[0] - 1),
            lambda s: arrays_s((3,)),
        ),
        shapes=st.tuples(st.integers(2, 5)),
        diff=(0, 2),
        mx_grad=False,
        **NO_MX_JVP,
    ),
]

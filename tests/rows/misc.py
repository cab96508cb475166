"""Rows for autodiff/ops/bitwise.py, autodiff/ops/bitcast.py and the composites of
autodiff/numpy's _compare, _layout, _einsum, _linalg (kron, vecdot) and the new elementwise
functions (trunc, degrees, radians, positive, divmod)."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import F16, S1, S2, A, Row, arrays_s

import autodiff.numpy as anp

_INTS = (mx.int8, mx.uint8, mx.int16, mx.int32, mx.uint32, mx.int64)
_BITS = {mx.int8: 8, mx.uint8: 8, mx.int16: 16, mx.int32: 32, mx.uint32: 32, mx.int64: 64}


def _bitwise(a, b, s):
    return (
        a & b,
        a | b,
        a ^ b,
        ~a,
        a << s,
        a >> s,
        anp.bitwise_and(a, 6),
        anp.bitwise_or(3, b),
        anp.bitwise_xor(a, b),
        anp.bitwise_invert(b),
        anp.left_shift(a, 1),
        anp.right_shift(b, s),
        anp.bitwise_left_shift(a, s),
        anp.bitwise_right_shift(a, 1),
    )


ROWS = [
    Row(
        f"bitwise_{str(d).split('.')[-1]}",
        _bitwise,
        (A(-100, 100, dtype=d), A(-100, 100, dtype=d), A(0, _BITS[d] - 1, dtype=d)),
        diff=None,
        mx_vmap=False,  # mx.vmap of mx.bitwise_or(3, a) loses the batch axis
    )
    for d in _INTS
]

ROWS += [
    Row(
        "bitwise_bool_and_mixed",
        lambda x, i: (
            (x > 0) & (x < 1),
            (x > 0) | (x < -1),
            (x > 0) ^ (x > 1),
            ~(x > 0),
            (x > 0) << (x > 1),
            (x > 0) >> (x > 1),
            anp.bitwise_invert(x > 0),
            (x > 0) & i,
            i.astype(mx.int8) | i,
            anp.logical_xor(x, i),
            anp.logical_xor(x > 0, True),
        ),
        (A(away=(-1.0, 0.0, 1.0)), A(-5, 5, dtype=mx.int32)),
        diff=None,
    ),
    Row(
        "bitwise_in_differentiable_program",
        lambda x, i: x * ((i & 3) + (i >> 1)).astype(mx.float32) + (~i | 1).astype(mx.float32),
        (A(), A(-5, 5, dtype=mx.int32)),
        diff=(0,),
    ),
    # view: the bits of floats and integers reinterpreted, widths changing the last axis
    Row(
        "view",
        lambda x: (
            anp.view(x, mx.int32),
            x.view(mx.uint16),
            x.view(mx.int8).view(mx.float32),
            x.astype(mx.float16).view(mx.int16),
            x.astype(mx.bfloat16).view(mx.uint16),
            x.astype(mx.bfloat16).view(mx.float16).astype(mx.float32),
            (x > 0).view(mx.uint8),
            x.view(mx.int32).view(mx.float32) * x,
        ),
        (A(),),
        shapes=S1,
        diff=(0,),
        fd=False,  # a convention (zero, as JAX's bitcast), not what differences measure
        mx_grad=False,  # MLX's View has no derivative
    ),
    Row(
        "view_widening",
        lambda x: (
            x.view(mx.float64),
            x.astype(mx.float16).view(mx.float32),
            x.astype(mx.int8).view(mx.int32),
        ),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.sampled_from([4, 8])),
        diff=None,
    ),
    Row(
        "fp8",
        lambda x: (
            anp.to_fp8(x),
            anp.from_fp8(anp.to_fp8(x * 100.0)),
            anp.from_fp8(anp.to_fp8(x.astype(mx.float16)), mx.float16),
            anp.from_fp8(anp.to_fp8((x * 1e-2).astype(mx.bfloat16)), mx.float32) + x,
        ),
        (A(),),
        diff=(0,),
        mx_grad=False,  # MLX has no derivative for its fp8 conversions
        mx_vmap=False,  # nor a batching rule
    ),
    # elementwise
    Row(
        "trunc_degrees_radians",
        lambda x: (anp.trunc(x), anp.degrees(x), anp.radians(x) * x, anp.positive(x)),
        (A(away=(-3, -2, -1, 0, 1, 2, 3)),),
    ),
    Row(
        "divmod",
        lambda a, b: anp.divmod(a, b),
        (A(0.1, 3.0), A(0.5, 2.0)),
        diff=(0, 1),
        mx_grad=False,  # MLX's divmod has a zero derivative for the remainder
        mx_vmap=False,  # and its batching rule fails on the remainder
    ),
    Row(
        "divmod_int",
        lambda a, b: anp.divmod(a, b),
        (A(-9, 9, dtype=mx.int32), A(1, 4, dtype=mx.int32)),
        diff=None,
        mx_vmap=False,  # MLX's batching rule for divmod fails on the remainder
    ),
    # infinities from a select, so no derivative multiplies a zero cotangent by them
    Row(
        "nan_to_num",
        lambda x: (
            anp.nan_to_num(anp.log(x)),
            anp.nan_to_num(anp.where(x > 1.0, float("inf"), anp.where(x < -1, -float("inf"), x))),
            anp.nan_to_num(anp.where(x > 1.0, float("inf"), x), posinf=5.0, neginf=-5.0),
            anp.nan_to_num(anp.log(x.astype(mx.float16)), nan=1.5),
            anp.nan_to_num(anp.where(x > 0, float("inf"), x.astype(mx.bfloat16))),
        ),
        (A(away=(-1.0, 0.0, 1.0)),),
        **F16,
    ),
    Row(
        "isclose_family",
        lambda a, b: (
            anp.isclose(a, b, rtol=0.5, atol=0.1),
            anp.isclose(a, a.astype(mx.float16), rtol=1e-2),  # the interpreter does not round
            anp.isclose(a.astype(mx.int32), b.astype(mx.int32)),
            anp.isclose(a > 0, b > 0),
            anp.isclose(anp.log(a), anp.log(b), equal_nan=True),
            anp.isclose(a * float("inf"), b * float("inf")),
            anp.allclose(a, b, rtol=2.0, atol=0.5),
            anp.array_equal(a, a),
            anp.array_equal(a, b, equal_nan=True),
            anp.array_equal(anp.log(a), anp.log(a), equal_nan=True),
            anp.array_equal(a, a[..., :1]),
            anp.isposinf(a * float("inf")),
            anp.isneginf(a * float("inf")),
            anp.isposinf(a.astype(mx.int32)),
        ),
        (A(away=(0.0,)), A(away=(0.0,))),
        shapes=S1,
        diff=None,
        mx_vmap=False,  # mx.vmap of array_equal drops equal_nan (NaNs compare unequal)
    ),
    # shape
    Row(
        "atleast",
        lambda x, y: (
            anp.atleast_2d(x),
            anp.atleast_3d(x),
            anp.atleast_2d(x, y),
            anp.atleast_3d(x, y * 2.0),
        ),
        (A(), A()),
        shapes=st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple),
        diff=(0, 1),
    ),
    Row(
        "broadcast_arrays",
        lambda x, y: anp.broadcast_arrays(x[..., :1], y, x[:1], (y > 0).astype(mx.int32)),
        (A(), A()),
        shapes=S1,
        diff=(0, 1),
    ),
    Row(
        "matrix_transpose",
        lambda x: anp.matrix_transpose(x) * 2.0 + x.mT * anp.swapaxes(x, -1, -2),
        (A(),),
        shapes=S2,
    ),
    Row(
        "meshgrid",
        lambda a, b: (
            anp.meshgrid(a, b),
            anp.meshgrid(a, b, a[:1], indexing="ij"),
            anp.meshgrid(a, b, sparse=True),
            anp.meshgrid(a),
        ),
        (A(), A()),
        shapes=S1,
        diff=(0, 1),
    ),
    Row(
        "unflatten_unstack",
        lambda x: (
            anp.unflatten(x, -1, (2, -1)),
            anp.unflatten(x, 0, (x.shape[0], 1)),
            anp.unstack(x),
            anp.unstack(x, axis=-1)[0] * 2.0,
            anp.contiguous(x) + anp.contiguous(x.T, allow_col_major=True).T,
        ),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.sampled_from([2, 4])),
    ),
    Row(
        "diff",
        lambda x: (anp.diff(x), anp.diff(x, n=2, axis=0), anp.diff(x, n=0), anp.diff(x, n=4)),
        (A(),),
        shapes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    ),
    Row(
        "depends",
        lambda x, y: (anp.depends(x * 2.0, y), anp.depends([x, y], [x * y])[1]),
        (A(), A()),
        diff=(0, 1),
        mx_jvp=False,  # MLX's Depends has no JVP
        mx_vmap=False,  # nor a batching rule
    ),
    # contraction
    Row(
        "kron",
        lambda a, b: (anp.kron(a, b), anp.kron(a[..., 0], b)),
        (lambda s: arrays_s((s[0], 2)), lambda s: arrays_s((s[1], 3, 2))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 2)),
        diff=(0, 1),
    ),
    Row(
        "vecdot",
        lambda a, b: (anp.vecdot(a, b), anp.vecdot(a[:, :1], b, axis=0)),
        (A(), A()),
        shapes=S2,
        diff=(0, 1),
    ),
    Row(
        "einsum_two",
        lambda a, b: (
            anp.einsum("ij,jk->ik", a, b),
            anp.einsum("ij,jk", a, b),
            anp.einsum("ij,kj->ki", a, b.T),
            anp.einsum("ij,j->i", a, b[:, 0]),
            anp.einsum("i,j->ij", a[:, 0], b[0]),
            anp.einsum("ij,ij->", a, a),
            anp.einsum("ij,jk->", a, b),
            anp.einsum("ij,i->ij", a, a[:, 0]),
        ),
        (lambda s: arrays_s((s[0], 3)), lambda s: arrays_s((3, s[1]))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1),
    ),
    Row(
        "einsum_diagonal",
        lambda a, c: (
            anp.einsum("ii", a),
            anp.einsum("ii->i", a),
            anp.einsum("ij->", a),
            anp.einsum("ji", a),
            anp.einsum("iij->ji", c),
            anp.einsum(
                "iii->i", c[..., : c.shape[0]] if c.shape[2] >= c.shape[0] else c[:1, :1, :1]
            ),
            anp.einsum("ii,ij->j", a, a),
            anp.einsum("iij,jk->ik", c, a[: c.shape[2]] if a.shape[0] >= c.shape[2] else a[:1]),
        ),
        (lambda s: arrays_s((s[0], s[0])), lambda s: arrays_s((s[0], s[0], s[1]))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1),
        mx_order=1,  # MLX takes diagonals with gather, whose VJP (scatter) has no JVP
    ),
    Row(
        "einsum_ellipsis_broadcast",
        lambda a, b: (
            anp.einsum("...ij,...jk->...ik", a, b),
            anp.einsum("bij,jk->bik", a, b[0]),
            anp.einsum("...ij,jk", a, b[0]),
            anp.einsum("i...->...", a),
            anp.einsum("...j,...j->...", a, a[:1]),
            anp.einsum("Aij,Bjk->ABik", a, b),
        ),
        (lambda s: arrays_s((s[0], 2, 3)), lambda s: arrays_s((s[1], 3, 2))),
        shapes=st.tuples(st.integers(1, 3), st.just(1)),
        diff=(0, 1),
    ),
    Row(
        "einsum_many_operands",
        lambda a, b, c: (
            anp.einsum("ij,jk,kl->il", a, b, c),
            anp.einsum("ij,jk,kl->", a, b, c),
            anp.einsum("ij,ij,ij->ij", a, a, a),
            anp.einsum("ij,jk,kl,li->", a, b, c, a[:, :2].T),
            anp.einsum(",ij,->ij", a[0, 0], a, b[0, 0]),
        ),
        (
            lambda s: arrays_s((s[0], 3)),
            lambda s: arrays_s((3, s[1])),
            lambda s: arrays_s((s[1], 2)),
        ),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1, 2),
    ),
]

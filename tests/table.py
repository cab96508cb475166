"""The table of primitives and composites the rule tests run over: one row each. The core
rows are here; each family's rows are in ``tests/rows/<family>.py`` and collected below."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import PIECEWISE, S1, S2, A, Row, arrays_s, binary, unary

import autodiff.numpy as anp

ROWS: list[Row] = [
    # unary float math
    unary("sqrt", anp.sqrt, 0.1, 3.0),
    unary("rsqrt", anp.rsqrt, 0.2, 3.0),
    unary("exp", anp.exp),
    unary("expm1", anp.expm1),
    unary("log", anp.log, 0.1, 3.0),
    unary("log1p", anp.log1p, -0.8, 3.0),
    unary("log2", anp.log2, 0.1, 3.0),
    unary("log10", anp.log10, 0.1, 3.0),
    unary("sin", anp.sin),
    unary("cos", anp.cos),
    unary("tan", anp.tan, -1.2, 1.2),
    unary("arcsin", anp.arcsin, -0.9, 0.9),
    unary("arccos", anp.arccos, -0.9, 0.9),
    unary("arctan", anp.arctan),
    unary("sinh", anp.sinh),
    unary("cosh", anp.cosh),
    unary("tanh", anp.tanh),
    unary("arcsinh", anp.arcsinh),
    unary("arccosh", anp.arccosh, 1.2, 3.0),
    unary("arctanh", anp.arctanh, -0.9, 0.9),
    unary("sigmoid", anp.sigmoid),
    unary("erf", anp.erf),
    unary("erfinv", anp.erfinv, -0.9, 0.9, mx_grad=False),
    unary("floor", anp.floor, away=(-3, -2, -1, 0, 1, 2, 3), **PIECEWISE),
    unary("ceil", anp.ceil, away=(-3, -2, -1, 0, 1, 2, 3), **PIECEWISE),
    unary("round", anp.round, away=(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5), **PIECEWISE),
    unary("negative", anp.negative),
    unary("neg_op", lambda x: -x),
    unary("abs", anp.abs, away=(0.0,)),
    unary("sign", anp.sign, away=(0.0,), **PIECEWISE),
    unary("square", anp.square),
    unary("reciprocal", anp.reciprocal, away=(0.0,)),
    unary("stop_gradient", lambda x: anp.stop_gradient(x) * x, fd=False),
    unary("relu", anp.relu, away=(0.0,)),
    unary("softplus", anp.softplus),
    unary("clip", lambda x: anp.clip(x, -1.0, 1.5), away=(-1.0, 1.5)),
    unary(
        "isnan_where", lambda x: anp.where(anp.isnan(x) | anp.isinf(x), 0.0, x) * anp.isfinite(x)
    ),
    unary("pow_int_literal", lambda x: x**3),
    unary("rpow_literal", lambda x: 2.0**x),
    unary("pow_half", lambda x: x**0.5, 0.1, 3.0),
    unary(
        "sin_f16",
        lambda x: anp.sin(x.astype(mx.float16)).astype(mx.float32) * x,
        mx_grad=False,
        interp_rtol=5e-3,
    ),
    # binary
    binary("add", anp.add),
    binary("add_op_scalar", lambda a, b: a + b + 1.5),
    binary("subtract", anp.subtract),
    binary("rsub_scalar", lambda a, b: 2.0 - a * b),
    binary("multiply", anp.multiply),
    binary("divide", anp.divide, b=A(away=(0.0,))),
    binary("rdivide_scalar", lambda a, b: 1.5 / b + a, b=A(away=(0.0,))),
    binary("power", anp.power, a=A(0.1, 3.0), b=A(-2.0, 2.0)),
    binary("maximum", anp.maximum),
    binary("minimum", anp.minimum),
    binary("arctan2", anp.arctan2, a=A(away=(0.0,)), b=A(away=(0.0,))),
    binary("remainder", anp.remainder, a=A(0.1, 3.0), b=A(0.5, 2.0), mx_grad=False),
    binary("floor_divide", anp.floor_divide, b=A(0.5, 2.0), **PIECEWISE),
    binary("logaddexp", anp.logaddexp),
    binary("broadcast_add", lambda a, b: a + b[..., :1] if b.ndim else a + b, shapes=S1),
    Row(
        "compare",
        lambda a, b: (
            anp.where(a < b, a, b)
            + anp.where(a >= b, 1.0, 0.0) * (a == b)
            + (a != b) * (a > b) * (a <= b)
        ),
        (A(), A()),
        diff=(0, 1),
    ),
    Row(
        "logical",
        lambda a, b: anp.where(
            anp.logical_and(a > 0, b > 0) | anp.logical_not(a < 1) & anp.logical_or(a > 2, b > 2),
            a,
            b,
        ),
        (A(), A()),
        diff=(0, 1),
    ),
    Row("where", lambda c, a, b: anp.where(c > 0, a, b), (A(away=(0.0,)), A(), A()), diff=(1, 2)),
    # MLX differentiates through casts to int as if they were the identity; JAX (and we) give 0.
    Row(
        "astype",
        lambda x: (
            x.astype(mx.int32).astype(mx.float32) + x.astype(mx.float64).astype(mx.float32) * x
        ),
        (A(away=(-2, -1, 0, 1, 2)),),
        mx_grad=False,
    ),
    Row(
        "int_ops",
        lambda i, x: (i * 2 + 1).astype(mx.float32) * x + (i // 2) * (i % 3),
        (A(-5, 5, dtype=mx.int32), A()),
        diff=(1,),
    ),
    # shape
    Row("broadcast_to", lambda x: anp.broadcast_to(x, (2,) + x.shape) * 2.0, (A(),)),
    Row("reshape", lambda x: anp.reshape(x, (-1,)) * anp.reshape(x, (x.size, 1)), (A(),)),
    Row("transpose", lambda x: anp.transpose(x) * 2.0 + x.T, (A(),)),
    Row(
        "swapaxes_moveaxis",
        lambda x: anp.swapaxes(x, 0, -1) + anp.moveaxis(x, -1, 0),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    ),
    Row("squeeze_expand", lambda x: anp.squeeze(anp.expand_dims(x, (0, -1)), 0) * 2.0, (A(),)),
    Row("flatten", lambda x: anp.flatten(x) ** 2, (A(),)),
    Row("slice", lambda x: x[..., 1:3] * x[..., ::2][..., :1], (A(),), shapes=S1),
    Row("slice_neg_step", lambda x: x[::-1] * x, (A(),), shapes=S1),
    Row("pad", lambda x: anp.pad(x, 1, constant_values=0.5) ** 2, (A(),), shapes=S1),
    Row(
        "concatenate",
        lambda a, b: anp.concatenate([a, b * 2.0, a], axis=-1),
        (A(), A()),
        shapes=S1,
        diff=(0, 1),
    ),
    Row("stack", lambda a, b: anp.stack([a, b], axis=0) * 1.5, (A(), A()), diff=(0, 1)),
    Row(
        "split",
        lambda x: anp.split(x, 2, axis=0)[0] * anp.split(x, [1], axis=0)[1][:1],
        (A(),),
        shapes=st.tuples(st.sampled_from([2, 4]), st.integers(1, 3)),
    ),
    Row(
        "tile_repeat",
        lambda x: anp.tile(x, (2, 1)) * anp.repeat(x, 2, axis=0),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    ),
    Row("tril_triu", lambda x: anp.tril(x) * 2.0 + anp.triu(x, 1), (A(),), shapes=S2),
    # indexing
    Row("getitem_int", lambda x: x[0] * x[-1], (A(),), shapes=S1, mx_order=1),
    Row(
        "getitem_array",
        lambda x: x[mx.array([0, 0, 1])] if x.shape[0] > 1 else x[mx.array([0, 0])],
        (A(),),
        shapes=S1,
    ),
    Row(
        "getitem_2arrays",
        lambda x: x[mx.array([0, 1, 1]), mx.array([1, 0, 1])],
        (A(),),
        shapes=st.tuples(st.integers(2, 3), st.integers(2, 3)),
    ),
    Row(
        "getitem_mixed",
        lambda x: x[:, None, mx.array([[0, 1], [1, 1]]), ...],
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(2, 3), st.integers(1, 2)),
    ),
    Row(
        "take",
        lambda x: anp.take(x, mx.array([[1, 0], [0, 1]]), axis=-1),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(2, 4)),
    ),
    Row(
        "take_traced_idx",
        lambda x, i: anp.take(x, i, axis=0),
        (A(), A(0, 1, dtype=mx.int32)),
        shapes=st.tuples(st.integers(2, 4)),
    ),
    Row(
        "take_along_axis",
        lambda x: (
            anp.take_along_axis(x, anp.argmax(x, axis=-1, keepdims=True), axis=-1)
            + anp.take_along_axis(x, mx.zeros(x.shape, dtype=mx.int32), axis=-1)
        ),
        (A(),),
        shapes=S2,
        mx_grad=False,
    ),
    Row(
        "at_add",
        lambda x: x.at[mx.array([0, 0, 1])].add(x[:3] * 2.0) if x.shape[0] >= 3 else x,
        (A(),),
        shapes=st.tuples(st.integers(3, 5), st.integers(1, 3)),
        mx_grad=False,
    ),
    Row(
        "argmax_argmin",
        lambda x: (
            (anp.argmax(x, axis=0) + anp.argmin(x, axis=-1, keepdims=True)).astype(mx.float32)
            + anp.argmax(x)
        ),
        (A(),),
        shapes=S2,
        diff=None,
    ),
    # reductions
    Row("sum", lambda x: anp.sum(x, axis=0) + x.sum(), (A(),), shapes=S1),
    Row("max", lambda x: anp.max(x, axis=-1), (A(),), shapes=S1),
    Row("min", lambda x: anp.min(x, axis=0) + x.min(), (A(),), shapes=S1),
    Row(
        "prod",
        lambda x: anp.prod(x, axis=-1),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 5)),
        mx_order=1,
    ),
    Row(
        "prod_with_zeros",
        lambda x: anp.prod(x * (anp.abs(x) > 1.0), axis=-1),
        (A(away=(-1.0, 1.0)),),
        shapes=st.tuples(st.integers(1, 5)),
        mx_grad=False,
    ),
    Row(
        "mean_var_std",
        lambda x: anp.mean(x, axis=0) + anp.var(x, axis=0) + anp.std(x, axis=0, ddof=0),
        (A(),),
        shapes=st.tuples(st.integers(2, 4), st.integers(1, 3)),
    ),
    Row("logsumexp", lambda x: anp.logsumexp(x, axis=-1), (A(),), shapes=S1),
    Row("softmax", lambda x: anp.softmax(x, axis=-1), (A(),), shapes=S1),
    Row(
        "cumsum",
        lambda x: anp.cumsum(x, axis=-1) + anp.cumsum(x, axis=0, reverse=True),
        (A(),),
        shapes=S1,
    ),
    Row(
        "all_any",
        lambda x: anp.where(anp.all(x > -2.0) | anp.any(x > 2.5, axis=-1, keepdims=True), x, -x),
        (A(away=(-2.0, 2.5)),),
        shapes=S1,
    ),
    Row(
        "minmax_count_nonzero",
        lambda x, y: (
            anp.minmax(x, axis=-1)[0] * 2.0
            + anp.minmax(x, axis=-1)[1]
            + anp.count_nonzero(y > 0.5, axis=-1) * x.min()
            + anp.count_nonzero(anp.round(y))
        ),
        (A(), A(away=(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5))),
        shapes=S1,
    ),
    # contraction
    Row(
        "matmul_2d",
        lambda a, b: a @ b,
        (lambda s: arrays_s((s[0], 3)), lambda s: arrays_s((3, s[1]))),
        shapes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        diff=(0, 1),
    ),
    Row(
        "matmul_batched",
        lambda a, b: anp.matmul(a, b),
        (lambda s: arrays_s((s[0], 2, 3)), lambda s: arrays_s((s[0], 3, s[1]))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1),
    ),
    Row(
        "matmul_vec",
        lambda a, b: a @ b + b @ a.T,
        (lambda s: arrays_s((s[0], 3)), lambda s: arrays_s((3,))),
        shapes=st.tuples(st.just(3)),
        diff=(0, 1),
    ),
    Row(
        "matmul_bcast",
        lambda a, b: a @ b,
        (lambda s: arrays_s((2, s[0], 3)), lambda s: arrays_s((3, s[1]))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1),
    ),
    Row(
        "inner_outer",
        lambda a, b: anp.inner(a, b) * anp.outer(a, b),
        (A(), A()),
        shapes=st.tuples(st.integers(1, 4)),
        diff=(0, 1),
    ),
    Row(
        "addmm",
        lambda c, a, b: anp.addmm(c, a, b, alpha=0.5, beta=2.0),
        (
            lambda s: arrays_s((s[0], s[1])),
            lambda s: arrays_s((s[0], 2)),
            lambda s: arrays_s((2, s[1])),
        ),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1, 2),
        mx_jvp=False,
    ),
    Row(
        "tensordot",
        lambda a, b: anp.tensordot(a, b, axes=([0, 2], [1, 0])),
        (lambda s: arrays_s((2, s[0], 3)), lambda s: arrays_s((3, 2, s[1]))),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        diff=(0, 1),
    ),
    # creation with traced values
    Row(
        "like",
        lambda x: (
            anp.zeros_like(x)
            + anp.ones_like(x) * x
            + anp.full(x.shape, 2.0)
            + anp.full_like(x, 0.5)
        ),
        (A(),),
    ),
]


def _family_rows() -> list[Row]:
    rows = []
    for path in sorted((Path(__file__).parent / "rows").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"rows_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows.extend(module.ROWS)
    return rows


ROWS += _family_rows()
ROW_IDS = [r.name for r in ROWS]
assert len(set(ROW_IDS)) == len(ROW_IDS), "duplicate row names"
DIFF_ROWS = [r for r in ROWS if r.diff is not None]
FD_ROWS = [r for r in DIFF_ROWS if r.fd]

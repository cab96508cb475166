"""Rows in float16 and bfloat16 (mixed-precision training), and with integer and boolean
inputs where MLX takes them, through the core rules: elementwise, reductions,
softmax/logsumexp, contractions, promotion with Python scalars and other dtypes.

The low-precision rows take float32 arguments and convert them inside, as a bfloat16 model
does with float32 data, so that check_grads (which perturbs in float64) differentiates the
low-precision program; their results stay low-precision, so lowering and mx.grad are compared
in that dtype. Tolerances: rowlib's F16/BF16.
"""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import BF16, F16, S1, S2, A, Row, arrays_s

import autodiff.numpy as anp

ROWS = []


def _spread(x):
    """``x`` plus 0, 2, 4, ... along the last axis: a variance of at least 1."""
    return x + 2.0 * mx.arange(x.shape[-1])


# the jumps of floor, ceil, round, trunc, sign and floor_divide by 0.7 on [-3, 3]
_PIECEWISE_KINKS = tuple(sorted({k / 2 for k in range(-6, 7)} | {k * 0.7 for k in range(-4, 5)}))

for _dt, _tol in ((mx.float16, F16), (mx.bfloat16, BF16)):
    _n = "f16" if _dt == mx.float16 else "bf16"

    def lp(x, dt=_dt):
        return x.astype(dt)

    ROWS += [
        Row(
            f"{_n}_exp_log",
            lambda x, lp=lp: (
                anp.sqrt(lp(x)),
                anp.rsqrt(lp(x)),
                anp.exp(lp(x)),
                anp.expm1(lp(x)),
                anp.log(lp(x)),
                anp.log1p(lp(x)),
                anp.log2(lp(x)),
                anp.log10(lp(x)),
                anp.reciprocal(lp(x)),
                lp(x) ** 1.5,
                anp.power(lp(x), lp(x)),
                2.0 ** lp(x),
            ),
            (A(0.3, 2.5),),
            **_tol,
        ),
        Row(
            f"{_n}_trig",
            lambda x, lp=lp: (
                anp.sin(lp(x)),
                anp.cos(lp(x)),
                anp.tan(lp(x)),
                anp.arcsin(lp(x)),
                anp.arccos(lp(x)),
                anp.arctan(lp(x)),
                anp.sinh(lp(x)),
                anp.cosh(lp(x)),
                anp.tanh(lp(x)),
                anp.arcsinh(lp(x)),
                anp.arctanh(lp(x)),
                anp.sigmoid(lp(x)),
                anp.erf(lp(x)),
                anp.arctan2(lp(x), lp(x) + 2.0),
            ),
            (A(-0.8, 0.8),),
            **_tol,
        ),
        # erfinv: mx.grad has no rule; arccosh: MLX's is fine, kept with it for row count
        Row(
            f"{_n}_erfinv_arccosh",
            lambda x, lp=lp: (anp.erfinv(lp(x) * 0.5), anp.arccosh(lp(x) + 2.0)),
            (A(-0.8, 0.8),),
            mx_grad=False,
            **_tol,
        ),
        Row(
            f"{_n}_kinks",
            # y = x + d with |d| >= 0.1: x and y never round to the same low-precision value,
            # where ties split the derivative (JAX's convention) and MLX's go to one side
            lambda x, d, lp=lp: (
                anp.abs(lp(x)),
                anp.maximum(lp(x), lp(x + d)),
                anp.minimum(lp(x), 0.5),
                anp.clip(lp(x), -1.0, 1.0),
                anp.relu(lp(x)),
                anp.softplus(lp(x)),
                anp.logaddexp(lp(x), lp(x + d)),
                anp.where(lp(x) > lp(x + d), lp(x) * 2.0, lp(x + d)),
                anp.square(lp(x)) - lp(x) / 3 + 1,
            ),
            (A(away=(-1.0, 0.0, 0.5, 1.0)), A(-1.0, 1.0, away=(0.0,))),
            diff=(0, 1),
            **_tol,
        ),
        # remainder's absolute error is the dividend's: a small dividend keeps it in tolerance
        Row(
            f"{_n}_remainder",
            lambda x, lp=lp: (anp.remainder(lp(x), 0.5), anp.divmod(lp(x), lp(x) * 0 - 0.5)[1]),
            (A(-1.4, 1.4, away=(-1.0, -0.5, 0.0, 0.5, 1.0)),),
            mx_grad=False,  # MLX's divmod has a zero derivative (see README)
            mx_vmap=False,  # and a broken batching rule (a garbage axis)
            **_tol,
        ),
        Row(
            f"{_n}_piecewise",
            lambda x, lp=lp: (
                anp.floor(lp(x)),
                anp.ceil(lp(x)),
                anp.round(lp(x)),
                anp.sign(lp(x)),
                anp.trunc(lp(x)),
                anp.floor_divide(lp(x), 0.7),
                (lp(x) > 0.5).astype(_dt),
            ),
            (A(away=_PIECEWISE_KINKS),),
            diff=None,
            **_tol,
        ),
        Row(
            f"{_n}_reduce",
            lambda x, lp=lp: (
                anp.sum(lp(x), axis=0),
                anp.mean(lp(x), axis=-1),
                anp.var(lp(x), axis=0),
                anp.std(lp(x), axis=-1, ddof=0),
                anp.max(lp(x), axis=-1),
                anp.min(lp(x)),
                anp.cumsum(lp(x), axis=-1),
            ),
            (A(),),
            shapes=st.tuples(st.integers(2, 3), st.integers(2, 4)),  # std'(0) is inf
            **_tol,
        ),
        Row(
            f"{_n}_prod",
            lambda x, lp=lp: anp.prod(lp(x), axis=-1),
            (A(0.5, 1.5),),
            shapes=st.tuples(st.integers(1, 3), st.integers(1, 4)),
            mx_order=1,
            **_tol,
        ),
        Row(
            f"{_n}_softmax_logsumexp",
            lambda x, lp=lp: (
                anp.softmax(lp(x), axis=-1),
                anp.logsumexp(lp(x), axis=-1),
                anp.logsumexp(lp(x), axis=0, keepdims=True),
                anp.softmax(lp(x), axis=-1, precise=True),
            ),
            (A(),),
            shapes=S2,
            **_tol,
        ),
        Row(
            f"{_n}_matmul",
            lambda a, b, lp=lp: (
                lp(a) @ lp(b),
                anp.matmul(lp(a)[None], lp(b)),
                anp.addmm(lp(a[:, :1]), lp(a), lp(b[:, :1]), alpha=0.5, beta=2.0),
                anp.inner(lp(a), lp(b.T)),
                anp.outer(lp(a[0]), lp(b[0])),
                anp.tensordot(lp(a), lp(b), axes=1),
                anp.einsum("ij,jk->ik", lp(a), lp(b)),
            ),
            (lambda s: arrays_s((s[0], 3)), lambda s: arrays_s((3, s[1]))),
            shapes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
            diff=(0, 1),
            mx_jvp=False,  # addmm's JVP ignores beta in MLX
            **_tol,
        ),
        # a layer norm of well-spread values: at a tiny variance the second derivative
        # (p**-2.5 for rsqrt(p)) leaves float16's range, in MLX's and in our formulation
        Row(
            f"{_n}_layernorm",
            lambda x, w, lp=lp: (
                (lp(_spread(x)) - anp.mean(lp(_spread(x)), axis=-1, keepdims=True))
                * anp.rsqrt(anp.var(lp(_spread(x)), axis=-1, keepdims=True) + 1e-5)
                * lp(w)
            ),
            (A(-0.5, 0.5), A()),
            shapes=st.tuples(st.integers(1, 3), st.integers(2, 4)),
            diff=(0, 1),
            **_tol,
        ),
    ]

ROWS += [
    # promotion: low precision with Python scalars (weak), integers (the float wins), the
    # other 16-bit float and float32 (both give float32)
    Row(
        "lowp_promotion",
        lambda x, i: (
            x.astype(mx.float16) * 2 + 1.5,
            x.astype(mx.bfloat16) / 3 - True,
            x.astype(mx.float16) + i,
            x.astype(mx.bfloat16) * i.astype(mx.int8),
            x.astype(mx.float16) + x.astype(mx.bfloat16),
            x.astype(mx.bfloat16) * x,
            anp.maximum(x.astype(mx.float16), i),
            anp.where(x > 0, x.astype(mx.bfloat16), 1),
        ),
        (A(), A(-3, 3, dtype=mx.int32)),
        diff=(0,),
        **BF16,
    ),
    # integer and boolean inputs, where mlx.core accepts them
    Row(
        "int_bool_inputs",
        lambda i, x: (
            anp.sin(i),
            anp.sqrt(anp.abs(i)),
            anp.exp(i > 0),
            anp.mean(i, axis=-1),
            anp.var(i, axis=0),
            anp.softmax(i, axis=-1),
            anp.logsumexp(i, axis=-1),
            anp.sigmoid(i),
            i / 2,
            x**i,
            i**2,
            x + (i > 0),
            anp.sum(i > 0, axis=-1),
            anp.prod(i, axis=0),
            anp.max(i, axis=-1),
            anp.cumsum(i > 0, axis=-1),
            anp.reciprocal(i + 10),
            anp.logaddexp(i, x),
            anp.remainder(i, x + 4),
            anp.where(i > 0, i, x),
            x @ anp.ones((x.shape[-1], 2)) * i[..., :1],
        ),
        (A(-3, 3, dtype=mx.int32), A(0.5, 2.0)),
        shapes=S2,
        diff=(1,),
        mx_grad=False,  # remainder: MLX's derivative in the divisor is wrong (see README)
    ),
    # booleans where MLX computes on them (its integer kernels on 0 and 1, cast back)
    Row(
        "bool_arithmetic",
        lambda x, y: (
            (x > 0) - (y > 0),
            anp.subtract(x > 0, y > 0),
            anp.power(x > 0, y > 0),
            anp.remainder(x > 0, y > 0),
            anp.floor_divide(x > 0, y > 0),
            anp.abs(x > 0),
            anp.sign(x > 0),
            anp.square(x > 0),
            anp.diff(x > 0, axis=0),
            anp.tril(x > 0),
            anp.triu(y > 0, 1),
            anp.outer(x > 0, y > 0),
            anp.outer(x.astype(mx.int32), y.astype(mx.int32)),
        ),
        (A(away=(0.0,)), A(away=(0.0,))),
        shapes=S2,
        diff=None,
    ),
    Row(
        "int_bool_inputs_mlx",
        lambda i, x: x * anp.sin(i) + anp.mean(i * x) + anp.softmax(i + x, axis=-1),
        (A(-3, 3, dtype=mx.int32), A()),
        shapes=S1,
        diff=(1,),
    ),
]

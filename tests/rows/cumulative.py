"""Rows for autodiff/ops/cumulative.py: cumprod, cummax, cummin, logcumsumexp (and cumsum's
exclusive and dtype forms). MLX has no JVP for cumprod/cummax/cummin (so no mx.jvp and no
forward-over-reverse comparison for them: mx_jvp=False, mx_order=1)."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import PIECEWISE, S1, S2, A, Row

import autodiff.numpy as anp

NO_MX_JVP = dict(mx_jvp=False, mx_order=1)

ROWS = [
    Row(
        "cumsum_exclusive",
        lambda x: (
            anp.cumsum(x, axis=0, inclusive=False)
            + anp.cumulative_sum(x, axis=-1, reverse=True, inclusive=False, dtype=mx.float32)
        ),
        (A(),),
        shapes=S1,
    ),
    Row(
        "cumprod",
        lambda x: anp.cumprod(x, axis=-1) + anp.cumprod(x, axis=0, reverse=True),
        (A(),),
        shapes=S1,
        **NO_MX_JVP,
    ),
    Row(
        "cumprod_exclusive",
        lambda x: (
            anp.cumulative_prod(x, axis=-1, inclusive=False)
            * x.cumprod(axis=0, reverse=True, inclusive=False)
        ),
        (A(),),
        shapes=S1,
        **NO_MX_JVP,
    ),
    Row(
        "cumprod_zeros",
        lambda x: anp.cumprod(x * (anp.abs(x) > 1.0), axis=-1, reverse=x.shape[-1] % 2 == 0),
        (A(away=(-1.0, 1.0)),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 6)),
        **NO_MX_JVP,
    ),
    Row(
        "cumprod_flat",
        lambda x: anp.cumprod(x * 0.7),
        (A(),),
        shapes=S2,
        **NO_MX_JVP,
    ),
    Row(
        "cummax_cummin",
        lambda x: anp.cummax(x, axis=-1) * 2.0 + anp.cummin(x, axis=0, reverse=True),
        (A(),),
        shapes=S1,
        **NO_MX_JVP,
    ),
    Row(
        "cummax_cummin_exclusive",
        lambda x: (
            x.cummax(axis=-1, inclusive=False)[..., 1:],
            x.cummin(axis=-1, reverse=True, inclusive=False)[..., :-1],
            anp.cummax(x),
        ),
        (A(),),
        shapes=S1,
        **NO_MX_JVP,
    ),
    Row(
        "logcumsumexp",
        lambda x: anp.logcumsumexp(x, axis=-1) + x.logcumsumexp(axis=0, reverse=True),
        (A(),),
        shapes=S1,
    ),
    Row(
        "logcumsumexp_exclusive_large",
        lambda x: (
            anp.logcumsumexp(x * 40.0, axis=-1, inclusive=False)[..., 1:],
            anp.logcumsumexp(x * 40.0 + 60.0, reverse=True, inclusive=False)[:-1],
        ),
        (A(),),
        shapes=S1,
        # MLX's log-space VJP leaves float32 rounding noise in the second order at this
        # scale (6e-4 where the exact Hessian is 0); ours is exact.
        mx_order=1,
    ),
    Row(
        "cumulative_ints",
        lambda i, b: (
            anp.cumprod(i, axis=-1).astype(mx.float32)
            + anp.cummax(i, axis=0, reverse=True) * anp.cummin(i, axis=-1)
            + anp.cumsum(b > 0, axis=-1)
            + anp.cumprod(b > 0, axis=-1, inclusive=False)
            + anp.cummax(b > 0, axis=0)
            + anp.logcumsumexp(i, axis=-1)
        ),
        (A(-3, 3, dtype=mx.int32), A()),
        shapes=S1,
        **PIECEWISE,
    ),
]

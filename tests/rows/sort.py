"""Rows for autodiff/ops/sort.py: sort and what is built on it (median, unique)."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, S2, A, Row

import autodiff.numpy as anp

ROWS = [
    Row("sort", lambda x: anp.sort(x) * anp.sort(x, axis=0)[..., :1], (A(),), shapes=S2),
    Row("sort_flat", lambda x: anp.sort(x, axis=None), (A(),), shapes=S1),
    Row(
        "argsort",
        lambda x: anp.argsort(x, axis=0).astype(mx.float32) + x,
        (A(),),
        shapes=S1,
    ),
    Row(
        "median",
        lambda x: (anp.median(x, axis=-1), anp.median(x, axis=0, keepdims=True) + anp.median(x)),
        (A(),),
        shapes=S2,
    ),
    Row(
        "median_axes_int",
        lambda x, i: anp.median(x, axis=(0, 2)) * anp.median(i, axis=[-1, 0]),
        (A(), A(-3, 3, dtype=mx.int32)),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    ),
    Row(
        "unique_values",
        lambda x: anp.unique(x, 3) * anp.unique(x * 2.0, 2 * x.size, fill_value=0.5)[:3],
        (A(),),
        shapes=st.tuples(st.integers(3, 6)),
        mx_jvp=False,  # MLX: "[scatter] JVP not yet implemented" (mx.unique builds on scatter)
        mx_order=1,
    ),
    Row(
        "unique_ties",
        lambda i: tuple(
            o.astype(mx.float32)
            for o in anp.unique(i, 4, True, True, True, fill_value=-7)
            + anp.unique(i, 2, True, True, True)
        ),
        (A(-2, 2, dtype=mx.int32),),
        diff=None,
    ),
]

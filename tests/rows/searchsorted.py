"""Rows for autodiff/ops/searchsorted.py (integer results: no derivative). Integer-valued
inputs make values equal sequence elements often, where left and right differ."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import A, Row, arrays_s

import autodiff.numpy as anp


def _both_sides(s, v):
    s = anp.sort(s)
    return anp.searchsorted(s, v).astype(mx.float32) * 10.0 + anp.searchsorted(
        s, v, side="right"
    ).astype(mx.float32)


ROWS = [
    Row(
        "searchsorted",
        _both_sides,
        (lambda s: arrays_s((s[-1],)), A()),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 5)),
        diff=None,
        mx_vmap=False,  # mx.vmap: "Cannot vmap over the sorted sequence"
    ),
    Row(
        "searchsorted_ties",
        lambda s, v: _both_sides(s, v.astype(mx.float32)),
        (lambda s: A(-3, 3, dtype=mx.int32)((s[0],)), A(-3, 3, dtype=mx.int32)),
        shapes=st.tuples(st.integers(1, 6)),
        diff=None,
        mx_vmap=False,  # mx.vmap: "Cannot vmap over the sorted sequence"
    ),
]

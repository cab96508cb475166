"""Rows for autodiff/ops/slicing.py: ``slice``/``slice_update`` with traced starts
(``dynamic_slice``, ``dynamic_update_slice``), ``flip`` and negative-step slices (``rev``).

Starts are drawn in range: out of range, MLX reads and writes outside the array (we clamp).
MLX cannot vmap over start indices (mx_vmap=False).
"""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, A, Row, arrays_s

import autodiff.numpy as anp

ROWS_2D = st.tuples(st.integers(2, 4), st.integers(2, 4))


def start(k=1, side=0, size=2):
    """Starts that keep a window of ``size`` inside the drawn shape's ``side``."""
    return lambda s: arrays_s((k,), dtype=mx.int32, low=0, high=s[side] - size)


ROWS = [
    Row(
        "slice_traced_start",
        lambda x, i: anp.slice(x, i, (0,), (2, x.shape[1])) * 2.0,
        (A(), start()),
        shapes=ROWS_2D,
        mx_vmap=False,
    ),
    Row(
        "slice_two_axes",
        lambda x, i: anp.slice(x, i, (1, 0), (2, 2)) ** 2,
        (A(), lambda s: arrays_s((2,), dtype=mx.int32, low=0, high=min(s) - 2)),
        shapes=ROWS_2D,
        mx_vmap=False,
    ),
    Row(
        "slice_static_start",
        lambda x: anp.slice(x, mx.array(1), (1,), (x.shape[0], 1)) * x,
        (A(),),
        shapes=ROWS_2D,
    ),
    Row(
        "slice_update_traced_start",
        lambda x, u, i: anp.slice_update(x, u[:2] * 3.0, i, (0,)) * x,
        (A(), A(), start()),
        shapes=ROWS_2D,
        diff=(0, 1),
        mx_vmap=False,
    ),
    Row(
        "slice_update_static",
        lambda x, u: anp.slice_update(x, u[:1, :1], mx.array([1, 1]), (0, 1)) * x,
        (A(), A()),
        shapes=ROWS_2D,
        diff=(0, 1),
    ),
    Row("flip", lambda x: anp.flip(x) * 2.0 + anp.flip(x, -1) * x, (A(),), shapes=S1),
    Row(
        "slice_neg_steps",
        lambda x: (x[::-2] * 2.0).sum() + x[:, -2::-1] * x[:, :-1] + x[2:0:-1, 3:0:-2].sum(),
        (A(),),
        shapes=ROWS_2D,
    ),
]

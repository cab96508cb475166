"""Rows for autodiff/ops/sort.py: sort and what is built on it."""

import mlx.core as mx
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
]

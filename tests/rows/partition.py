"""Rows for autodiff/ops/partition.py: partition, argpartition, topk. MLX's order within each
side of the pivot is its own (the interpreter's NumPy partition orders differently), so the
rows sort each side; tests/test_partition.py checks the exact order against MLX."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import A, Row

import autodiff.numpy as anp

WIDE = st.tuples(st.integers(1, 3), st.integers(3, 6))


def _sides(p, kth):
    """The sides of a partition, each sorted, and the pivot."""
    return anp.sort(p[..., :kth], axis=-1), p[..., kth], anp.sort(p[..., kth + 1 :], axis=-1)


ROWS = [
    Row("partition", lambda x: _sides(anp.partition(x, 1) * 1.5, 1), (A(),), shapes=WIDE),
    Row(
        "partition_neg_kth_axis0",
        lambda x: _sides(anp.moveaxis(anp.partition(x, -2, axis=0), 0, -1), x.shape[0] - 2),
        (A(),),
        shapes=st.tuples(st.integers(2, 5), st.integers(1, 3)),
    ),
    Row(
        "partition_flat",
        lambda x: _sides(anp.partition(x, x.size // 2, axis=None), x.size // 2),
        (A(),),
        shapes=WIDE,
    ),
    Row(
        "argpartition",
        lambda x: _sides(anp.take_along_axis(x, anp.argpartition(x, 2, axis=-1), -1), 2),
        (A(),),
        shapes=WIDE,
        mx_grad=False,  # mx.grad: "[gather_axis] Cannot calculate VJP with respect to indices"
    ),
    Row(
        "argpartition_indices",
        lambda x: anp.sort(anp.argpartition(x, 1)[..., :2], axis=-1).astype(mx.float32),
        (A(),),
        shapes=WIDE,
        diff=None,
    ),
    Row(
        "topk",
        lambda x: (anp.sort(anp.topk(x, 2), axis=-1) ** 2, anp.sort(anp.topk(x, 3, axis=-1))),
        (A(),),
        shapes=WIDE,
    ),
    Row(
        "topk_axis0_flat",
        lambda x: (anp.sort(anp.topk(x, 1, axis=0) * x[:1], axis=-1), anp.topk(x, 1, axis=None)),
        (A(),),
        shapes=WIDE,
    ),
]

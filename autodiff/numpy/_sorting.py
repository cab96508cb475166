"""Sorting and order statistics: sort, argsort (and, built on the ``sort`` primitive of
``autodiff/ops/sort.py``, the rest of the family)."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.numpy._core import canonical_axis, mirror
from autodiff.tracing import aval_of


def _flat_or_axis(a, axis):
    """``(a, axis)`` with ``axis=None`` meaning the flattened array, as MLX does."""
    if axis is None:
        return lax.reshape(a, (aval_of(a).size,)), 0
    return a, canonical_axis(axis, len(aval_of(a).shape), "sort")


@mirror(mx.sort)
def sort(a, /, axis: int | None = -1):
    """Sorted copy along ``axis`` (flattened if None), as ``mx.sort``; differentiable to any
    order (the derivative permutes the tangent).

    Example:
        >>> ad.grad(lambda x: anp.sort(x)[-1])(mx.array([3.0, 1.0, 2.0]))  # [1, 0, 0]
    """
    a, ax = _flat_or_axis(a, axis)
    return lax.sort(a, ax)[0]


@mirror(mx.argsort)
def argsort(a, /, axis: int | None = -1):
    """The indices that sort ``a`` along ``axis``, as ``mx.argsort`` (int32 here; MLX
    gives uint32)."""
    a, ax = _flat_or_axis(a, axis)
    return lax.sort(a, ax)[1]

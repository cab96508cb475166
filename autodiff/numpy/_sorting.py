"""Sorting and order statistics: sort, argsort, median and unique (built on the ``sort``
primitive of ``autodiff/ops/sort.py``), partition, argpartition and topk (MLX's kernels, in
``autodiff/ops/partition.py``), searchsorted (``autodiff/ops/searchsorted.py``)."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_bool, is_float
from autodiff.numpy._core import (
    astype,
    canonical_axes,
    canonical_axis,
    mirror,
    result_type,
)
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


def _kth(kth: int, n: int, fn: str) -> int:
    k = kth + n if kth < 0 else kth
    if not 0 <= k < n:
        raise ValueError(f"{fn}: kth={kth} is out of range for an axis of size {n}")
    return k


@mirror(mx.partition)
def partition(a, /, kth: int, axis: int | None = -1):
    """A copy of ``a`` with its ``kth`` smallest element along ``axis`` (flattened if None) in
    sorted position, the smaller ones before it and the larger after, exactly as
    ``mx.partition`` orders them. The derivative moves each tangent with its element.

    Example:
        >>> anp.partition(mx.array([3.0, 1.0, 2.0, 0.0]), 1)[:2]  # the two smallest
    """
    a, ax = _flat_or_axis(a, axis)
    return lax.partition(a, _kth(kth, aval_of(a).shape[ax], "partition"), ax)


@mirror(mx.argpartition)
def argpartition(a, /, kth: int, axis: int | None = -1):
    """The indices that partition ``a`` around ``kth`` along ``axis``, as ``mx.argpartition``
    (int32 here; MLX gives uint32)."""
    a, ax = _flat_or_axis(a, axis)
    return lax.argpartition(a, _kth(kth, aval_of(a).shape[ax], "argpartition"), ax)


@mirror(mx.topk)
def topk(a, /, k: int, axis: int | None = -1):
    """The ``k`` largest elements along ``axis`` (flattened if None), in ``mx.topk``'s order
    (not sorted). The derivative goes to the elements selected; among equal elements cut by
    the k-th place, to those of lowest index, as ``jax.lax.top_k``.

    Example:
        >>> ad.grad(lambda x: anp.topk(x, 2).sum())(mx.array([3.0, 1.0, 2.0]))  # [1, 0, 1]
    """
    a, ax = _flat_or_axis(a, axis)
    n = aval_of(a).shape[ax]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for an axis of size {n}")
    return a if k == n else lax.topk(a, k, ax)


@mirror(mx.median)
def median(a, /, axis=None, keepdims: bool = False):
    """The median over ``axis`` (all axes by default), as ``mx.median``: the middle of the
    sorted values, the mean of the two middle ones for an even count, NaN if any is NaN;
    integers give float32. The derivative goes to the middle element(s) through the sort.

    Example:
        >>> ad.grad(anp.median)(mx.array([4.0, 1.0, 3.0, 2.0]))  # [0, 0, 0.5, 0.5]
    """
    shape = aval_of(a).shape
    axes = canonical_axes(axis, len(shape), "median")
    if len(set(axes)) != len(axes):
        raise ValueError("median: duplicate axis")
    kept = [i for i in range(len(shape)) if i not in axes]
    n = 1
    for i in axes:
        n *= shape[i]
    if n == 0:
        raise ValueError("median: cannot take the median along an empty axis")
    dtype = aval_of(a).dtype if is_float(aval_of(a).dtype) else "float32"
    flat = lax.reshape(lax.transpose(a, kept + list(axes)), [shape[i] for i in kept] + [n])
    key = astype(flat, "int32") if is_bool(aval_of(flat).dtype) else flat
    s = lax.sort(key, len(kept))[0]
    mid = astype(lax.slice_in_dim(s, n // 2, n // 2 + 1, axis=len(kept)), dtype)
    if n % 2 == 0:
        low = astype(lax.slice_in_dim(s, n // 2 - 1, n // 2, axis=len(kept)), dtype)
        mid = lax.mul(lax.add(mid, low), 0.5)
    if is_float(aval_of(a).dtype):
        has_nan = lax.reduce_max(lax.ne(flat, flat), (len(kept),))
        nan = lax.full(aval_of(has_nan).shape, float("nan"), dtype)
        mid = lax.select(has_nan, nan, lax.squeeze(mid, (len(kept),)))
    else:
        mid = lax.squeeze(mid, (len(kept),))
    return lax.expand_dims(mid, axes) if keepdims else mid


@mirror(mx.searchsorted)
def searchsorted(sorted_sequence, values, /, side: str = "left"):
    """Indices that keep the 1-D ascending ``sorted_sequence`` sorted when ``values`` are
    inserted, as ``mx.searchsorted`` (int32 here; MLX gives uint32): ``side="left"`` counts
    the elements ``<`` each value, ``"right"`` those ``<=``. Piecewise constant: zero
    derivative.
    """
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if len(aval_of(sorted_sequence).shape) != 1:
        raise ValueError(
            f"searchsorted: the sorted sequence must be 1-D, got shape "
            f"{aval_of(sorted_sequence).shape}"
        )
    dtype = result_type(sorted_sequence, values)
    if is_bool(dtype):
        dtype = "int32"
    seq, vals = astype(sorted_sequence, dtype), astype(values, dtype)
    return lax.searchsorted(seq, vals, side == "right")


@mirror(mx.unique)
def unique(
    a,
    /,
    size: int,
    return_index: bool = False,
    return_inverse: bool = False,
    return_counts: bool = False,
    fill_value=None,
):
    """The sorted unique elements of the flattened ``a``, ``size`` of them, as ``mx.unique``:
    the output shape depends on ``size`` only, so this traces. Past the last unique element
    the values are ``fill_value`` (by default the smallest unique element) with count 0; a
    ``size`` below the number of unique elements keeps the smallest (``inverse`` then clamps
    to the last entry). ``index`` (first occurrence in the flattened ``a``) and ``inverse``
    are int32 here (MLX gives uint32). The values are gathered from ``a``, so the derivative
    goes to each unique value's first occurrence (the padding's to the smallest one's, unless
    ``fill_value`` is given), as MLX's.

    Example:
        >>> anp.unique(mx.array([2, 1, 2, 3, 1]), 4, fill_value=0)  # [1, 2, 3, 0]
    """
    shape = aval_of(a).shape
    n = aval_of(a).size
    if size < 0:
        raise ValueError(f"unique: size must be non-negative, got {size}")
    if n == 0 and size > 0 and fill_value is None:
        raise ValueError("unique: a fill value is required for an empty input with a size > 0")
    dtype = aval_of(a).dtype
    if fill_value is not None:
        fill = (
            lax.full((size,), fill_value, dtype)
            if type(fill_value) in (bool, int, float)
            else lax.broadcast_to(astype(fill_value, dtype), (size,))
        )
    zeros = lax.full((size,), 0, "int32")
    if n == 0:
        values, index, inverse, counts = fill, zeros, lax.full(shape, 0, "int32"), zeros
    else:
        values, index, inverse, counts = _unique(lax.reshape(a, (n,)), size, n)
        inverse = lax.reshape(inverse, shape)
        if fill_value is not None:
            values = lax.select(lax.gt(counts, 0), values, fill)
    outs = [values]
    outs += [index] if return_index else []
    outs += [inverse] if return_inverse else []
    outs += [counts] if return_counts else []
    return outs[0] if len(outs) == 1 else tuple(outs)


def _unique(flat, size: int, n: int):
    """values, index, inverse (flat) and counts of :func:`unique` for a non-empty ``flat``."""
    key = astype(flat, "int32") if is_bool(aval_of(flat).dtype) else flat
    s, perm = lax.sort(key, 0)
    # new[p]: sorted position p starts a group of equal elements (NaN never equals, so each
    # NaN is its own group, as in MLX); gid: the group of each sorted position.
    head = lax.full((1,), True, "bool")
    new = lax.concatenate([head, lax.ne(s[1:], s[:-1])], 0) if n > 1 else head
    new_i = astype(new, "int32")
    gid = lax.sub(lax.cumsum(new_i, 0), 1)
    n_unique = lax.broadcast_to(lax.reduce_sum(new_i, (0,)), (size,))
    # The group starts in order, then the other positions: a stable sort of "not new".
    starts = lax.pad(lax.sort(lax.sub(1, new_i), 0)[1], 0, [(0, max(0, size + 1 - n), 0)])
    start, nxt = lax.slice_in_dim(starts, 0, size), lax.slice_in_dim(starts, 1, size + 1)
    j = lax.iota("int32", (size,), 0)
    valid = lax.lt(j, n_unique)
    index = lax.select(valid, lax.take(perm, start, 0), lax.broadcast_to(perm[:1], (size,)))
    values = lax.take(flat, index, 0)
    clamped = lax.max_(lax.min_(gid, size - 1), 0)
    inverse = lax.take(clamped, lax.sort(perm, 0)[1], 0)
    ends = lax.select(lax.lt(lax.add(j, 1), n_unique), nxt, lax.full((size,), n, "int32"))
    counts = lax.select(valid, lax.sub(ends, start), lax.full((size,), 0, "int32"))
    return values, index, inverse, counts

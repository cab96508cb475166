"""Functions that move elements to static places: ``flip``, ``roll``, ``diagonal``, ``diag``,
``trace`` and ``as_strided``. Each is linear, written with slices, pads, concatenation, ``rev``
and ``take`` at static positions, so it needs no rule of its own: its transpose is the
transpose of those (a diagonal transposes to an interior pad, a roll to the opposite roll).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.numpy._core import astype, canonical_axes, canonical_axis, dtype_name, mirror
from autodiff.tracing import as_tracer, aval_of


@mirror(mx.flip)
def flip(a, /, axis: int | Sequence[int] | None = None):
    """Reverse ``a`` along ``axis`` (all axes if None), as ``mx.flip``.

    Example:
        >>> anp.flip(x, axis=0)
    """
    return lax.rev(a, canonical_axes(axis, len(aval_of(a).shape), "flip"))


def _roll_axis(x, shift: int, axis: int):
    d = aval_of(x).shape[axis]
    if d == 0 or shift % d == 0:
        return x
    s = shift % d
    return lax.concatenate(
        [lax.slice_in_dim(x, d - s, d, 1, axis), lax.slice_in_dim(x, 0, d - s, 1, axis)], axis
    )


@mirror(mx.roll)
def roll(a, shift: int | tuple[int, ...], axis: int | tuple[int, ...] | None = None, /):
    """Shift elements along ``axis`` (of the flattened array if None), wrapping around, as
    ``mx.roll``: shifts and axes broadcast against each other, and the shifts of a repeated
    axis add up.

    Example:
        >>> anp.roll(x, 1, axis=-1)
    """
    shape = aval_of(a).shape
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    if axis is None:
        flat = _roll_axis(lax.reshape(a, (aval_of(a).size,)), sum(shifts), 0)
        return as_tracer(lax.reshape(flat, shape))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(shifts) != len(axes):
        if len(axes) == 1:
            axes = axes * len(shifts)
        elif len(shifts) == 1:
            shifts = shifts * len(axes)
        else:
            raise ValueError(f"[roll] {len(shifts)} shifts for {len(axes)} axes")
    total = {}
    for s, ax in zip(shifts, axes):
        ax = canonical_axis(ax, len(shape), "roll")
        total[ax] = total.get(ax, 0) + s
    for ax, s in total.items():
        a = _roll_axis(a, s, ax)
    return as_tracer(a)


def _check_axes(ndim: int, axis1: int, axis2: int, fn: str) -> tuple[int, int]:
    if ndim < 2:
        raise ValueError(f"[{fn}] the array must have at least two dimensions, got {ndim}")
    ax1, ax2 = canonical_axis(axis1, ndim, fn), canonical_axis(axis2, ndim, fn)
    if ax1 == ax2:
        raise ValueError(f"[{fn}] axis1 and axis2 cannot be the same axis")
    return ax1, ax2


# MLX 0.32's CPU reductions can loop forever on an empty strided view (the stride of an empty
# diagonal is left as it comes): mx.sum(mx.diagonal(x, -1, 1, 0)) of a (4, 1, 4) array hangs in
# some runs. The eager paths below return such views made contiguous (traced, a diagonal is a
# slice, which MLX keeps contiguous when empty).
def _no_empty_view(x):
    return mx.contiguous(x) if x.size == 0 else x


def _mx_diagonal(a, offset=0, axis1=0, axis2=1, stream=None):
    return _no_empty_view(mx.diagonal(a, offset, axis1, axis2, stream=stream))


def _mx_diag(a, /, k=0, stream=None):
    return _no_empty_view(mx.diag(a, k, stream=stream))


def _mx_trace(a, /, offset=0, axis1=0, axis2=1, dtype=None, stream=None):
    out = mx.trace(a, offset, axis1, axis2, dtype, stream=stream)  # (MLX's checks and messages)
    n, m = a.shape[axis1], a.shape[axis2]
    length = min(n, m - offset) if offset >= 0 else min(n + offset, m)
    if length > 0:
        return out
    return mx.zeros(out.shape, out.dtype)  # the sum of an empty diagonal, without MLX's loop


@mirror(_mx_diagonal)
def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1):
    """The diagonal at ``offset`` of the 2-D subarrays on ``axis1``, ``axis2``, as
    ``mx.diagonal``: those axes are removed and the diagonal is the last axis. A strided
    slice of the flattened pair of axes (its transpose is an interior pad).

    Example:
        >>> anp.diagonal(x, offset=1)
    """
    shape = aval_of(a).shape
    ax1, ax2 = _check_axes(len(shape), axis1, axis2, "diagonal")
    rest = [k for k in range(len(shape)) if k not in (ax1, ax2)]
    n, m = shape[ax1], shape[ax2]
    length = max(0, min(n, m - offset)) if offset >= 0 else max(0, min(n + offset, m))
    batch = tuple(shape[k] for k in rest)
    x = lax.reshape(lax.transpose(a, rest + [ax1, ax2]), batch + (n * m,))
    start, stop = 0, 0
    if length:
        start = offset if offset >= 0 else -offset * m
        stop = start + (length - 1) * (m + 1) + 1
    return as_tracer(lax.slice_in_dim(x, start, stop, m + 1, len(batch)))


@mirror(_mx_diag)
def diag(a, /, k: int = 0):
    """The ``k``-th diagonal of a 2-D ``a``, or the square matrix with the 1-D ``a`` on its
    ``k``-th diagonal, as ``mx.diag``.

    Example:
        >>> anp.diag(mx.array([1.0, 2.0]), k=1)
    """
    shape, dtype = aval_of(a).shape, aval_of(a).dtype
    if len(shape) == 2:
        return diagonal(a, k, 0, 1)
    if len(shape) != 1:
        raise ValueError(
            f"[diag] array must be 1-D or 2-D, got array with {len(shape)} dimensions."
        )
    length = shape[0]
    n = length + abs(k)
    if length == 0:
        return as_tracer(lax.full((n, n), 0, dtype))
    start = k if k >= 0 else -k * n
    hi = n * n - (start + (length - 1) * (n + 1) + 1)
    return as_tracer(lax.reshape(lax.pad(a, 0, [(start, hi, n)]), (n, n)))


@mirror(_mx_trace)
def trace(a, /, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None):
    """The sum of the diagonal at ``offset`` on ``axis1``, ``axis2``, as ``mx.trace`` (in
    ``dtype`` if given; booleans sum to int32).

    Example:
        >>> ad.grad(anp.trace)(x)  # the identity
    """
    from autodiff.numpy._reductions import sum as sum_

    _check_axes(len(aval_of(a).shape), axis1, axis2, "trace")
    d = diagonal(a, offset, axis1, axis2)
    if dtype is not None:
        d = astype(d, dtype_name(dtype))
    return sum_(d, axis=-1)


def _strided_layout(aval, shape, strides, offset):
    """``as_strided``'s shape and strides, checked to read inside the array."""
    size = aval.size
    shape = aval.shape if shape is None else tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError("[as_strided] Negative dimensions not allowed.")
    if strides is None:
        strides = [int(np.prod(shape[k + 1 :])) for k in range(len(shape))]
    strides = tuple(int(s) for s in strides)
    if len(strides) != len(shape):
        raise ValueError(f"[as_strided] {len(strides)} strides for a shape of rank {len(shape)}")
    if all(shape):
        lo = int(offset) + sum(min(0, (d - 1) * s) for d, s in zip(shape, strides))
        hi = int(offset) + sum(max(0, (d - 1) * s) for d, s in zip(shape, strides))
        if lo < 0 or hi >= size:
            raise ValueError(
                f"[as_strided] shape {shape}, strides {strides} and offset {offset} reach "
                f"position {hi if hi >= size else lo}, outside the {size} elements of the array"
            )
    return shape, strides


def _mx_as_strided(a, /, shape=None, strides=None, offset=0, stream=None):
    _strided_layout(aval_of(a), shape, strides, offset)  # MLX would read invalid memory
    return _no_empty_view(mx.as_strided(a, shape, strides, offset, stream=stream))


@mirror(_mx_as_strided)
def as_strided(
    a, /, shape: Sequence[int] | None = None, strides: Sequence[int] | None = None, offset: int = 0
):
    """A strided view of ``a`` made row-contiguous, as ``mx.as_strided``:
    ``out[i, j, ...] = a.flatten()[offset + i * strides[0] + j * strides[1] + ...]``
    (contiguous strides of ``shape`` by default). Traced, it is a ``take`` at those static
    positions, so it is linear and transposes to a scatter-add (overlapping windows add
    up). Positions outside ``a`` raise ValueError, eager too (MLX would read invalid memory).

    Example:
        >>> anp.as_strided(x, (3, 2), (1, 1))  # sliding windows of 2 over a 1-D x
    """
    size = aval_of(a).size
    shape, strides = _strided_layout(aval_of(a), shape, strides, offset)
    pos = np.full(shape, int(offset), np.int64)
    for k, (d, s) in enumerate(zip(shape, strides)):
        pos = pos + np.arange(d).reshape([-1 if j == k else 1 for j in range(len(shape))]) * s
    flat = lax.reshape(a, (size,))
    return as_tracer(lax.take(flat, mx.array(pos.astype(np.int32)), 0))

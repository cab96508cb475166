"""Indexing: ``x[...]`` with ints, slices, None, Ellipsis and integer arrays; take.

Advanced (integer-array) indexing follows NumPy: index arrays broadcast together, and their
dimensions replace the indexed axes in place when those axes are adjacent, or go first when not.
It lowers to one ``take`` on the indexed axes flattened into one.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_bool, is_int
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis, mirror, promote
from autodiff.tracing import Tracer, aval_of


def _is_array_index(i) -> bool:
    return type(i) is Tracer or isinstance(i, (mx.array, np.ndarray, list))


def _concrete_index(i, dim: int, axis: int):
    """Check a concrete integer index array and make it non-negative."""
    a = np.asarray(i)
    if a.dtype.kind not in "iu":
        raise IndexError(f"arrays used as indices must be integers or booleans, got {a.dtype}")
    if a.size and (a.max() >= dim or a.min() < -dim):
        raise IndexError(
            f"index {a.max() if a.max() >= dim else a.min()} is out of bounds for axis {axis} with size {dim}"
        )
    return mx.array(np.where(a < 0, a + dim, a).astype(np.int32))


def _traced_index(i, dim: int):
    if not is_int(aval_of(i).dtype):
        raise IndexError(f"arrays used as indices must be integers, got {aval_of(i).str_short()}")
    return lax.select(lax.lt(i, 0), lax.add(i, dim), i)


def _expand_bool_masks(idx):
    out = []
    for i in idx:
        if type(i) is Tracer and is_bool(aval_of(i).dtype):
            raise IndexError(
                "boolean mask indexing of a traced array has a data-dependent shape; use "
                "`anp.where(mask, x, 0)` (or a sum with the mask) instead"
            )
        if isinstance(i, (mx.array, np.ndarray, list)) and np.asarray(i).dtype == np.bool_:
            out.extend(np.nonzero(np.asarray(i)))
        else:
            out.append(i)
    return out


def getitem(x, idx):
    """``x[idx]`` for a traced ``x`` (or traced index arrays), with NumPy semantics."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    idx = _expand_bool_masks(idx)
    shape = aval_of(x).shape
    consuming = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if consuming > len(shape):
        raise IndexError(f"too many indices for array of dimension {len(shape)}")
    if sum(1 for i in idx if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    full = []
    for i in idx:
        full.extend([slice(None)] * (len(shape) - consuming) if i is Ellipsis else [i])
    full.extend([slice(None)] * (len(shape) + sum(1 for i in full if i is None) - len(full)))
    # None: insert the new axes first, then index them with full slices.
    new_axes = [k for k, i in enumerate(full) if i is None]
    x = lax.expand_dims(x, new_axes)
    full = [slice(None) if i is None else i for i in full]
    shape = aval_of(x).shape
    advanced = any(_is_array_index(i) for i in full)

    # Basic indices: slices, and ints when no array is present.
    squeeze = []
    for ax, (i, dim) in enumerate(zip(full, shape)):
        if isinstance(i, slice):
            start, stop, step = i.indices(dim)
            if step > 0:
                x = lax.slice_in_dim(x, start, max(start, stop), step, ax)
            else:  # the same elements, counted from the end of the reversed axis
                first, last = dim - 1 - start, dim - 1 - stop
                x = lax.slice_in_dim(lax.rev(x, (ax,)), first, max(first, last), -step, ax)
        elif not _is_array_index(i):
            k = int(i)  # a tracer here raises ConcretizationError via __index__
            if not -dim <= k < dim:
                raise IndexError(f"index {k} is out of bounds for axis {ax} with size {dim}")
            if advanced:
                full[ax] = mx.array(k % dim, dtype=mx.int32)
            else:
                x = lax.slice_in_dim(x, k % dim, k % dim + 1, 1, ax)
                squeeze.append(ax)
    x = lax.squeeze(x, squeeze)
    if not advanced:
        return x
    return _advanced(x, full)


def _advanced(x, full):
    shape = aval_of(x).shape
    axes = [ax for ax, i in enumerate(full) if _is_array_index(i)]
    indices = [
        _traced_index(full[ax], shape[ax])
        if type(full[ax]) is Tracer
        else _concrete_index(full[ax], shape[ax], ax)
        for ax in axes
    ]
    bshape = broadcast_shapes(*[aval_of(i).shape for i in indices])
    if len(axes) == 1:
        return lax.take(x, indices[0], axes[0])
    # Move the indexed axes to the front and flatten them into one.
    rest = [ax for ax in range(len(shape)) if ax not in axes]
    x = lax.transpose(x, axes + rest)
    sizes = [shape[ax] for ax in axes]
    x = lax.reshape(x, (int(np.prod(sizes)),) + tuple(shape[ax] for ax in rest))
    lin = None
    stride = 1
    for i, n in zip(reversed(indices), reversed(sizes)):
        if isinstance(i, mx.array):
            i = mx.broadcast_to(i, bshape)
        else:
            (i,) = promote(i, dtype="int32", shape=bshape)
        term = i if stride == 1 else _mul(i, stride)
        lin = term if lin is None else _add(lin, term)
        stride *= n
    out = lax.take(x, lin, 0)
    if axes == list(range(axes[0], axes[0] + len(axes))) and axes[0] > 0:
        nb, first = len(bshape), axes[0]
        perm = (
            list(range(nb, nb + first)) + list(range(nb)) + list(range(nb + first, nb + len(rest)))
        )
        out = lax.transpose(out, perm)
    return out


def _mul(i, k):
    return i * k if isinstance(i, mx.array) else lax.mul(i, k)


def _add(a, b):
    if isinstance(a, mx.array) and isinstance(b, mx.array):
        return a + b
    return lax.add(*promote(a, b, dtype="int32"))


@mirror(mx.take)
def take(a, /, indices, axis: int | None = None):
    """Elements of ``a`` at integer ``indices`` along ``axis`` (flattened if None), as ``mx.take``."""
    if axis is None:
        a, axis = lax.reshape(a, (aval_of(a).size,)), 0
    ax = canonical_axis(axis, len(aval_of(a).shape), "take")
    return getitem(
        a, (slice(None),) * ax + (indices if _is_array_index(indices) else mx.array(indices),)
    )


@mirror(mx.take_along_axis)
def take_along_axis(a, /, indices, axis: int | None = -1):
    """Pick ``a``'s elements along ``axis`` at ``indices`` (same rank), as ``mx.take_along_axis``."""
    if axis is None:
        a, indices, axis = (
            lax.reshape(a, (aval_of(a).size,)),
            lax.reshape(indices, (aval_of(indices).size,)),
            0,
        )
    shape, ishape = aval_of(a).shape, aval_of(indices).shape
    ax = canonical_axis(axis, len(shape), "take_along_axis")
    if len(ishape) != len(shape):
        raise ValueError(
            f"take_along_axis: indices of rank {len(ishape)} for an array of rank {len(shape)}"
        )
    target = broadcast_shapes(
        shape[:ax] + (1,) + shape[ax + 1 :], ishape[:ax] + (1,) + ishape[ax + 1 :]
    )
    a_shape = target[:ax] + (shape[ax],) + target[ax + 1 :]
    i_shape = target[:ax] + (ishape[ax],) + target[ax + 1 :]
    if shape != a_shape:
        a = lax.broadcast_to(a, a_shape)
    indices = (
        astype(indices, "int32")
        if type(indices) is Tracer
        else _concrete_index(indices, shape[ax], ax)
    )
    if type(indices) is Tracer:
        indices = _traced_index(indices, shape[ax])
    if aval_of(indices).shape != i_shape:
        indices = lax.broadcast_to(indices, i_shape)
    return lax.take_along_axis(a, indices, ax)

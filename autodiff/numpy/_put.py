"""Updates at positions that data gives: boolean masks (``x[mask] = y``, MLX's
``masked_scatter``) and ``put_along_axis``, on the scatters of ``_updates.py``."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_bool
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis, mirror
from autodiff.numpy._updates import _fit, _scatter_flat
from autodiff.tracing import Tracer, as_tracer, aval_of


def _mask(idx):
    """``idx`` as a boolean mask (mx.array or tracer), or None if it is not one."""
    if type(idx) is bool:
        return mx.array(idx)
    if type(idx) is Tracer:
        return idx if is_bool(idx.aval.dtype) else None
    if isinstance(idx, mx.array):
        return idx if idx.dtype == mx.bool_ else None
    if isinstance(idx, (np.ndarray, list)):
        a = np.asarray(idx)
        return mx.array(a) if a.dtype == np.bool_ else None
    return None


def _masked_set(x, mask, v):
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    mshape = aval_of(mask).shape
    if len(mshape) > len(shape) or tuple(shape[: len(mshape)]) != mshape:
        raise ValueError(
            f"a boolean mask must have the shape of the leading axes of the array, but the "
            f"mask has shape {mshape} and the array {shape}"
        )
    rest = shape[len(mshape) :]
    v = astype(v, dtype)
    vs = aval_of(v).shape
    if len(vs) > len(rest) + 1:
        raise ValueError(
            f"the value of a masked update must broadcast to the last {len(rest)} axes of the "
            f"array, plus one leading axis of rows; got shape {vs}"
        )
    selected = lax.broadcast_in_dim(mask, shape, tuple(range(len(mshape))))
    if len(vs) < len(rest) + 1:  # one value for every selected position
        return lax.select(selected, _fit(v, shape, dtype), x)
    rows = vs[0]
    v = lax.broadcast_to(v, (rows,) + rest)
    m = int(np.prod(mshape))
    if type(mask) is Tracer:
        count = lax.cumsum(lax.convert(lax.reshape(mask, (m,)), "int32"), 0)
        rank = lax.max_(lax.min_(lax.sub(count, 1), rows - 1), 0)
    else:
        flags = np.asarray(mask).reshape(-1)
        if flags.sum() > rows:
            raise ValueError(
                f"a masked update selects {int(flags.sum())} positions, but its value has only "
                f"{rows} rows"
            )
        rank = mx.array(np.maximum(np.cumsum(flags) - 1, 0).astype(np.int32))
    return lax.select(selected, lax.reshape(lax.take(v, rank, 0), shape), x)


@mirror(mx.put_along_axis)
def put_along_axis(a, /, indices, values, axis: int | None = None):
    """Write ``values`` into ``a`` at ``indices`` along ``axis`` (of the flattened ``a`` if
    None), as ``mx.put_along_axis``: the inverse of ``take_along_axis``. Indices, values and
    ``a`` broadcast off ``axis``; a repeated index keeps the last value; out-of-bounds indices
    are dropped (MLX writes to another position); values take ``a``'s dtype.

    Example:
        >>> ad.grad(lambda v: anp.put_along_axis(x, idx, v, axis=1).sum())(v)
    """
    shape, dtype = aval_of(a).shape, aval_of(a).dtype
    if axis is None:
        flat = put_along_axis(lax.reshape(a, (aval_of(a).size,)), indices, values, 0)
        return as_tracer(lax.reshape(flat, shape))
    ax = canonical_axis(axis, len(shape), "put_along_axis")
    ishape = aval_of(indices).shape
    if len(ishape) != len(shape):
        raise ValueError(
            f"put_along_axis: indices of rank {len(ishape)} for an array of rank {len(shape)}"
        )
    values = astype(values, dtype)
    vshape = aval_of(values).shape
    if len(vshape) > len(ishape):
        values = lax.reshape(values, vshape[len(vshape) - len(ishape) :])
    common = broadcast_shapes(ishape, aval_of(values).shape)
    off = broadcast_shapes(
        shape[:ax] + (1,) + shape[ax + 1 :], common[:ax] + (1,) + common[ax + 1 :]
    )
    a_shape = off[:ax] + (shape[ax],) + off[ax + 1 :]
    i_shape = off[:ax] + (common[ax],) + off[ax + 1 :]
    a = lax.broadcast_to(a, a_shape) if a_shape != shape else a
    d = shape[ax]
    strides = [int(np.prod(a_shape[k + 1 :])) for k in range(len(a_shape))]
    n = int(np.prod(a_shape))
    coords = sum(  # the flat offsets of the positions off `axis`
        np.arange(m).reshape([-1 if j == k else 1 for j in range(len(i_shape))]) * strides[k]
        for k, m in enumerate(i_shape)
        if k != ax
    ) + np.zeros(i_shape, np.int64)
    if type(indices) is Tracer:
        i = lax.broadcast_to(lax.convert(indices, "int32"), i_shape)
        i = lax.select(lax.lt(i, 0), lax.add(i, d), i)
        pos = lax.add(lax.mul(i, strides[ax]), mx.array(coords.astype(np.int32)))
        pos = lax.select(lax.logical_and(lax.ge(i, 0), lax.lt(i, d)), pos, n)
        dump = True
    else:
        i = np.asarray(indices)
        if i.dtype.kind not in "iu":
            raise ValueError(f"put_along_axis: indices must be integers, got {i.dtype}")
        i = np.broadcast_to(i, i_shape).astype(np.int64)
        i = np.where(i < 0, i + d, i)
        valid = (i >= 0) & (i < d)
        pos = np.where(valid, i * strides[ax] + coords, n).astype(np.int32)
        dump = not valid.all()
    v = lax.broadcast_to(values, i_shape) if aval_of(values).shape != i_shape else values
    if n == 0 or int(np.prod(i_shape)) == 0:
        return as_tracer(a)
    return as_tracer(_scatter_flat(a, pos, v, "set", dump))

"""Shape manipulation: reshape, transpose, squeeze, concatenate, pad, tile, ..."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import mlx.core as mx

from autodiff import lax
from autodiff.numpy._core import (
    canonical_axes,
    canonical_axis,
    dtype_name,
    mirror,
    promote,
    result_type,
)
from autodiff.tracing import aval_of


def _shape(a):
    return aval_of(a).shape


@mirror(mx.reshape)
def reshape(a, /, shape: Sequence[int]):
    """Reshape, with one ``-1`` inferred, as ``mx.reshape``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = aval_of(a).size
    if shape.count(-1) > 1:
        raise ValueError("reshape: can only infer one dimension (-1)")
    if -1 in shape:
        known = 1
        for d in shape:
            known *= d if d != -1 else 1
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape array of size {size} into shape {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    return lax.reshape(a, shape)


@mirror(mx.transpose)
def transpose(a, /, axes: Sequence[int] | None = None):
    """Permute axes (reverse them by default), as ``mx.transpose``."""
    nd = len(_shape(a))
    perm = (
        tuple(reversed(range(nd)))
        if axes is None
        else tuple(canonical_axis(x, nd, "transpose") for x in axes)
    )
    return lax.transpose(a, perm)


permute_dims = transpose  # mlx.core's alias (its own binding there; one object here)


@mirror(mx.swapaxes)
def swapaxes(a, /, axis1: int, axis2: int):
    """Swap two axes, as ``mx.swapaxes``."""
    nd = len(_shape(a))
    perm = list(range(nd))
    i, j = canonical_axis(axis1, nd, "swapaxes"), canonical_axis(axis2, nd, "swapaxes")
    perm[i], perm[j] = perm[j], perm[i]
    return lax.transpose(a, perm)


@mirror(mx.moveaxis)
def moveaxis(a, /, source: int, destination: int):
    """Move one axis to a new position, as ``mx.moveaxis``."""
    nd = len(_shape(a))
    s, d = canonical_axis(source, nd, "moveaxis"), canonical_axis(destination, nd, "moveaxis")
    perm = [i for i in range(nd) if i != s]
    perm.insert(d, s)
    return lax.transpose(a, perm)


@mirror(mx.squeeze)
def squeeze(a, /, axis=None):
    """Remove size-1 axes (all of them by default), as ``mx.squeeze``."""
    shape = _shape(a)
    if axis is None:
        axes = tuple(i for i, d in enumerate(shape) if d == 1)
    else:
        axes = canonical_axes(axis, len(shape), "squeeze")
        if builtins.any(shape[i] != 1 for i in axes):
            raise ValueError(f"squeeze: cannot squeeze axis {axis} of shape {shape}: size is not 1")
    return lax.squeeze(a, axes)


@mirror(mx.expand_dims)
def expand_dims(a, /, axis):
    """Insert size-1 axes, as ``mx.expand_dims``."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(_shape(a)) + len(axes)
    return lax.expand_dims(a, [canonical_axis(x, nd, "expand_dims") for x in axes])


@mirror(mx.flatten)
def flatten(a, /, start_axis: int = 0, end_axis: int = -1):
    """Merge axes ``start_axis..end_axis`` into one, as ``mx.flatten``."""
    shape = _shape(a)
    if not shape:
        return lax.reshape(a, (1,))
    s, e = (
        canonical_axis(start_axis, len(shape), "flatten"),
        canonical_axis(end_axis, len(shape), "flatten"),
    )
    n = 1
    for d in shape[s : e + 1]:
        n *= d
    return lax.reshape(a, shape[:s] + (n,) + shape[e + 1 :])


@mirror(mx.broadcast_to)
def broadcast_to(a, /, shape: Sequence[int]):
    """NumPy-style broadcast to ``shape``, as ``mx.broadcast_to``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    (out,) = promote(a, shape=shape, dtype=result_type(a))
    return out if aval_of(out).shape == shape else lax.broadcast_to(out, shape)


def _list(arrays, dtype=None):
    dtype = dtype or result_type(*arrays)
    return [promote(x, dtype=dtype, shape=_shape(x))[0] for x in arrays]


@mirror(mx.concatenate)
def concatenate(arrays, axis: int | None = 0):
    """Join arrays along an axis (flattened if ``axis`` is None), as ``mx.concatenate``."""
    arrays = _list(arrays)
    if axis is None:
        arrays, axis = [reshape(x, (-1,)) for x in arrays], 0
    nd = len(_shape(arrays[0]))
    return lax.concatenate(arrays, canonical_axis(axis, nd, "concatenate"))


concat = concatenate  # mlx.core's alias (its own binding there; one object here)


@mirror(mx.stack)
def stack(arrays, axis: int = 0):
    """Join arrays along a new axis, as ``mx.stack``."""
    arrays = _list(arrays)
    nd = len(_shape(arrays[0])) + 1
    ax = canonical_axis(axis, nd, "stack")
    return lax.concatenate([lax.expand_dims(x, (ax,)) for x in arrays], ax)


@mirror(mx.split)
def split(a, /, indices_or_sections, axis: int = 0):
    """Split into sections or at indices, as ``mx.split``; returns a list."""
    shape = _shape(a)
    ax = canonical_axis(axis, len(shape), "split")
    n = shape[ax]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(
                f"split: array of size {n} on axis {ax} does not divide into {indices_or_sections} equal sections"
            )
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step)) if step else [0] * (indices_or_sections + 1)
    else:
        bounds = (
            [0]
            + [
                builtins.min(builtins.max(i if i >= 0 else i + n, 0), n)
                for i in indices_or_sections
            ]
            + [n]
        )
    return [
        lax.slice_in_dim(a, s, builtins.max(s, e), 1, ax) for s, e in zip(bounds[:-1], bounds[1:])
    ]


@mirror(mx.pad)
def pad(a, pad_width, mode: str = "constant", constant_values=0):
    """Constant padding, as ``mx.pad`` (other modes are not supported under tracing)."""
    if mode != "constant":
        raise NotImplementedError(
            f"pad: mode={mode!r} is not supported on traced arrays; use mode='constant'"
        )
    nd = len(_shape(a))
    if isinstance(pad_width, int):
        widths = [(pad_width, pad_width)] * nd
    else:
        pw = list(pad_width)
        if len(pw) == 2 and all(isinstance(p, int) for p in pw):
            widths = [tuple(pw)] * nd
        elif len(pw) == 1:
            widths = [tuple(pw[0]) if not isinstance(pw[0], int) else (pw[0], pw[0])] * nd
        else:
            widths = [tuple(p) if not isinstance(p, int) else (p, p) for p in pw]
    dtype = aval_of(a).dtype
    (value,) = promote(constant_values, dtype=dtype, shape=())
    return lax.pad(a, value, [(lo, hi, 0) for lo, hi in widths])


@mirror(mx.tile)
def tile(a, reps):
    """Repeat the whole array along each axis, as ``mx.tile``."""
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    shape = _shape(a)
    nd = builtins.max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + shape
    reps = (1,) * (nd - len(reps)) + tuple(reps)
    x = lax.reshape(a, shape)
    # broadcast to (r0, d0, r1, d1, ...) then merge pairs
    big = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    x = lax.broadcast_in_dim(x, big, tuple(range(1, 2 * nd, 2)))
    return lax.reshape(x, tuple(r * d for r, d in zip(reps, shape)))


@mirror(mx.repeat)
def repeat(array, repeats: int, axis: int | None = None):
    """Repeat each element ``repeats`` times, as ``mx.repeat``."""
    x = array
    if axis is None:
        x, axis = lax.reshape(x, (aval_of(x).size,)), 0
    shape = _shape(x)
    ax = canonical_axis(axis, len(shape), "repeat")
    big = shape[: ax + 1] + (repeats,) + shape[ax + 1 :]
    x = lax.broadcast_in_dim(x, big, tuple(i for i in range(len(big)) if i != ax + 1))
    return lax.reshape(x, shape[:ax] + (shape[ax] * repeats,) + shape[ax + 1 :])


def _tri_mask(shape, k, lower):
    n, m = shape[-2], shape[-1]
    mask = (
        mx.tri(n, m, k=k, dtype=mx.bool_)
        if lower
        else mx.logical_not(mx.tri(n, m, k=k - 1, dtype=mx.bool_))
    )
    return mask


@mirror(mx.tril)
def tril(x, k: int = 0):
    """Zero the elements above the k-th diagonal, as ``mx.tril``."""
    from autodiff.numpy._elementwise import where

    return where(_tri_mask(_shape(x), k, True), x, lax.full((), 0, aval_of(x).dtype))


@mirror(mx.triu)
def triu(x, k: int = 0):
    """Zero the elements below the k-th diagonal, as ``mx.triu``."""
    from autodiff.numpy._elementwise import where

    return where(_tri_mask(_shape(x), k, False), x, lax.full((), 0, aval_of(x).dtype))


@mirror(mx.atleast_1d)
def atleast_1d(*arys):
    """View inputs as arrays of at least one dimension, as ``mx.atleast_1d``."""
    out = [lax.reshape(a, (1,)) if not _shape(a) else a for a in arys]
    return out[0] if len(out) == 1 else out


@mirror(mx.astype)
def astype(a, dtype):
    """Convert to ``dtype``, as ``mx.astype``/``array.astype``."""
    return lax.convert(a, dtype_name(dtype))

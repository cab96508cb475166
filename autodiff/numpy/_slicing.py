"""``slice`` and ``slice_update``: windows at a start given as an array, which may be traced
(``dynamic_slice`` and ``dynamic_update_slice`` of ``autodiff/ops/slicing.py``).

Starts are clamped so that the window lies inside the array, as in ``jax.lax.dynamic_slice``:
eager MLX does not check them (an out-of-range start reads or writes outside the array, and a
negative one can crash), so in-range starts are the ones to rely on.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_int
from autodiff.numpy._core import astype, canonical_axis, mirror
from autodiff.tracing import Tracer, as_tracer, aval_of


def _starts(start_indices, axes, ndim: int, fn: str) -> list:
    """One start per axis of the array: the given ones on ``axes``, 0 elsewhere."""
    axes = [canonical_axis(a, ndim, fn) for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"[{fn}] repeated axis in {tuple(axes)}")
    if type(start_indices) is Tracer:
        sa = start_indices.aval
        if not is_int(sa.dtype) or sa.ndim > 1:
            raise ValueError(
                f"[{fn}] start indices must be a rank-0 or rank-1 integer array, got "
                f"{sa.str_short()}"
            )
        s = lax.reshape(lax.convert(start_indices, "int32"), (sa.size,))
        _check_count(sa.size, len(axes), fn)
        given = [lax.reshape(lax.slice_in_dim(s, k, k + 1, 1, 0), ()) for k in range(len(axes))]
    else:
        a = np.asarray(start_indices)
        if a.dtype.kind not in "iu" or a.ndim > 1:
            raise ValueError(
                f"[{fn}] start indices must be a rank-0 or rank-1 integer array, got "
                f"{a.dtype} of rank {a.ndim}"
            )
        _check_count(a.size, len(axes), fn)
        given = [int(v) for v in a.reshape(-1)]
    out = [0] * ndim
    for ax, s in zip(axes, given):
        out[ax] = s
    return out


def _check_count(n: int, n_axes: int, fn: str):
    if n != n_axes:
        raise ValueError(
            f"[{fn}] Number of starting indices {n} does not match number of axes {n_axes}."
        )


@mirror(mx.slice)
def slice(a, start_indices, axes: Sequence[int], slice_size: Sequence[int]):  # noqa: A001
    """The window of ``a`` of shape ``slice_size`` that starts at ``start_indices`` on
    ``axes`` (and at 0 on the other axes), as ``mx.slice``; the start may be traced.

    Out-of-range starts are clamped (MLX reads outside the array). Linear in ``a``: its
    derivative is a ``slice_update`` of the cotangent into zeros.

    Example:
        >>> ad.grad(lambda x, i: anp.slice(x, i, (0,), (2,)).sum())(x, mx.array([1]))
    """
    shape = aval_of(a).shape
    sizes = tuple(int(n) for n in slice_size)
    if len(sizes) != len(shape) or any(not 0 <= n <= d for n, d in zip(sizes, shape)):
        raise ValueError(f"[slice] Invalid slice size {sizes} for array with shape {shape}.")
    starts = _starts(start_indices, axes, len(shape), "slice")
    if all(type(s) is int for s in starts):
        st = [min(max(s, 0), d - n) for s, d, n in zip(starts, shape, sizes)]
        return as_tracer(lax.slice_(a, st, [s + n for s, n in zip(st, sizes)]))
    return lax.dynamic_slice(a, starts, sizes)


@mirror(mx.slice_update)
def slice_update(a, update, start_indices, axes: Sequence[int]):
    """``a`` with the window at ``start_indices`` on ``axes`` (0 on the other axes) replaced
    by ``update``, as ``mx.slice_update``: the update takes ``a``'s dtype, and leading unit
    axes are added to it up to ``a``'s rank. The start may be traced; out-of-range starts are
    clamped (MLX writes outside the array). Linear in ``a`` and ``update``.

    Example:
        >>> ad.grad(lambda u: anp.slice_update(x, u, i, (0,)).sum())(u)
    """
    shape, dtype = aval_of(a).shape, aval_of(a).dtype
    update = astype(update, dtype)
    ushape = aval_of(update).shape
    if len(ushape) > len(shape):
        lead = len(ushape) - len(shape)
        if any(d != 1 for d in ushape[:lead]):
            raise ValueError(f"[slice_update] update of shape {ushape} for an array {shape}")
        ushape = ushape[lead:]
    ushape = (1,) * (len(shape) - len(ushape)) + tuple(ushape)
    if any(n > d for n, d in zip(ushape, shape)):
        raise ValueError(f"[slice_update] update of shape {ushape} larger than the array {shape}")
    starts = _starts(start_indices, axes, len(shape), "slice_update")
    if not shape:
        return as_tracer(update)
    return lax.dynamic_update_slice(a, lax.reshape(update, ushape), starts)

"""More shape functions, all composites of the shape primitives: atleast_2d/3d,
broadcast_arrays, matrix_transpose, meshgrid, unflatten, unstack, diff, contiguous, depends."""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from autodiff import lax
from autodiff.numpy._core import broadcast_shapes, canonical_axis, mirror
from autodiff.numpy._elementwise import subtract
from autodiff.tracing import aval_of


def _shape(a):
    return aval_of(a).shape


def _atleast(mx_fn, fill):
    @mirror(mx_fn)
    def f(*arys):
        out = [lax.reshape(a, fill(_shape(a))) for a in arys]
        return out[0] if len(out) == 1 else out

    f.__name__ = f.__qualname__ = mx_fn.__name__
    return f


atleast_2d = _atleast(mx.atleast_2d, lambda s: s if len(s) >= 2 else (1,) * (2 - len(s)) + s)
atleast_2d.__doc__ = "Views of the inputs with at least two axes, as ``mx.atleast_2d``."
atleast_3d = _atleast(
    mx.atleast_3d,
    lambda s: s if len(s) >= 3 else ((1, 1, 1), (1,) + s + (1,), s + (1,))[len(s)],
)
atleast_3d.__doc__ = "Views of the inputs with at least three axes, as ``mx.atleast_3d``."


@mirror(mx.broadcast_arrays)
def broadcast_arrays(*arrays):
    """The inputs broadcast against each other (dtypes unchanged), as ``mx.broadcast_arrays``;
    returns a list."""
    shape = broadcast_shapes(*[_shape(a) for a in arrays])
    return [a if _shape(a) == shape else lax.broadcast_to(a, shape) for a in arrays]


@mirror(mx.matrix_transpose)
def matrix_transpose(a, /):
    """Swap the last two axes, as ``mx.matrix_transpose`` (and ``x.mT``)."""
    nd = len(_shape(a))
    if nd < 2:
        raise ValueError("[matrix_transpose] Input array must have at least 2 dimensions.")
    return lax.transpose(a, list(range(nd - 2)) + [nd - 1, nd - 2])


@mirror(mx.meshgrid)
def meshgrid(*arrays, sparse: bool | None = False, indexing: str | None = "xy"):
    """Coordinate grids from 1-D coordinate arrays (flattened if not), as ``mx.meshgrid``;
    ``indexing`` is ``"xy"`` (Cartesian: the first two axes swapped) or ``"ij"``. Returns a
    tuple; ``sparse=True`` leaves them unbroadcast."""
    if indexing not in ("xy", "ij"):
        raise ValueError("[meshgrid] Invalid indexing value. Valid values are 'xy' and 'ij'.")
    n = len(arrays)
    sizes = [aval_of(a).size for a in arrays]
    shapes = [tuple(sizes[i] if j == i else 1 for j in range(n)) for i in range(n)]
    if indexing == "xy" and n > 1:
        shapes[0] = tuple(sizes[0] if j == 1 else 1 for j in range(n))
        shapes[1] = tuple(sizes[1] if j == 0 else 1 for j in range(n))
    out = [lax.reshape(a, s) for a, s in zip(arrays, shapes)]
    return tuple(out if sparse else broadcast_arrays(*out))


@mirror(mx.unflatten)
def unflatten(a, /, axis: int, shape: Sequence[int]):
    """Split axis ``axis`` into ``shape`` (one entry may be -1), as ``mx.unflatten``."""
    old = _shape(a)
    shape = tuple(shape)
    if not shape:
        raise ValueError("[unflatten] Shape to unflatten to cannot be empty.")
    ax = canonical_axis(axis, len(old), "unflatten")
    if shape.count(-1) > 1:
        raise ValueError("[unflatten] Can only infer one dimension.")
    known = 1
    for d in shape:
        known *= d if d != -1 else 1
    if -1 in shape:
        shape = tuple(old[ax] // known if known and d == -1 else d for d in shape)
    size = 1
    for d in shape:
        size *= d
    if size != old[ax]:
        raise ValueError(
            f"[unflatten] Cannot unflatten axis {axis} with size {old[ax]} into shape {shape}."
        )
    return lax.reshape(a, old[:ax] + shape + old[ax + 1 :])


@mirror(mx.unstack)
def unstack(x, /, *, axis: int = 0):
    """The slices of ``x`` along ``axis``, that axis removed, as ``mx.unstack``; a tuple."""
    shape = _shape(x)
    ax = canonical_axis(axis, len(shape), "unstack")
    return tuple(lax.squeeze(lax.slice_in_dim(x, i, i + 1, 1, ax), (ax,)) for i in range(shape[ax]))


@mirror(mx.diff)
def diff(a, /, n: int = 1, axis: int = -1):
    """The ``n``-th discrete difference along ``axis``, as ``mx.diff``."""
    shape = _shape(a)
    if not -len(shape) <= axis < len(shape):
        raise ValueError("[diff] Axis is out of bounds for the array.")
    if n < 0:
        raise ValueError("[diff] Order `n` must be non-negative.")
    ax = axis % len(shape)
    for _ in range(n):
        size = _shape(a)[ax]
        upper = lax.slice_in_dim(a, min(1, size), size, 1, ax)
        lower = lax.slice_in_dim(a, 0, max(size - 1, 0), 1, ax)
        a = subtract(upper, lower)
    return a


@mirror(mx.contiguous)
def contiguous(a, /, allow_col_major: bool = False):
    """``a`` itself: a traced program's memory layout is the lowering's business (MLX's
    ``contiguous`` copies into row-major order; values are unchanged)."""
    return a


@mirror(mx.depends)
def depends(inputs, dependencies):
    """``inputs`` unchanged, as ``mx.depends``, whose outputs equal its inputs and only order
    evaluation after ``dependencies``. A traced program has no side effects to order, so the
    dependencies are dropped; derivatives flow to ``inputs`` only (as ``mx.grad``'s)."""
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return inputs

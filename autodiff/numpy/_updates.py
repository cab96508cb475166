"""Updates by index, with MLX's semantics: the value of ``x[idx] = y`` (which
``autodiff/numpy/_inplace.py`` makes in place) and ``x.at[idx].set/add/subtract/multiply/
divide/maximum/minimum(y)``; boolean masks and ``put_along_axis`` are in ``_put.py``.

- The value ``y`` is cast to ``x``'s dtype, its leading unit axes are dropped and it is
  broadcast to the shape of ``x[idx]``, as MLX does.
- Ints and step-1 slices (with None and Ellipsis) update one window: a static slice, the
  operation, and ``dynamic_update_slice``. One integer array (static or traced) on one axis,
  the other axes whole (``x[i] = y``, ``x[:, i] = y``), is one scatter along that axis.
  Anything else (several arrays, strided slices) scatters into the flattened array at the
  positions ``x[idx]`` reads, so any NumPy index works and ``y`` is laid out as ``x[idx]``.
- Repeated indices: ``set`` keeps the last value, ``add``/``multiply`` apply every update,
  ``maximum``/``minimum`` take the extreme (MLX's semantics; see ``autodiff/ops/scatter.py``).
- Negative indices count from the end. Out-of-bounds updates are dropped, static or traced
  (as with JAX's ``.at``): a traced index that falls outside goes to a slot past the end,
  which is cut off. MLX does not check them (out of bounds it writes outside the array, and
  the process may crash later), so eager MLX agrees only for indices in bounds.
- A boolean mask (``x[mask] = y``, MLX's ``masked_scatter``): the mask covers the leading axes
  of ``x``; a ``y`` of the trailing shape is written to every selected position, otherwise the
  rows of ``y`` are written in order to the selected positions (``y[k]`` to the k-th). The
  mask may be traced (the k-th is found with a cumulative sum); then, unlike in MLX, too few
  rows is not an error: the last row repeats. ``.at`` takes no masks, as in MLX.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_int
from autodiff.numpy._core import astype, broadcast_shapes
from autodiff.numpy._indexing import getitem
from autodiff.tracing import Tracer, as_tracer, aval_of

_SCATTER = {
    "set": lax.scatter,
    "add": lax.scatter_add,
    "mul": lax.scatter_mul,
    "max": lax.scatter_max,
    "min": lax.scatter_min,
}
_COMBINE = {"add": lax.add, "mul": lax.mul, "max": lax.max_, "min": lax.min_}


def _is_int(i) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _expand(ndim: int, idx) -> list:
    """``idx`` as a list: Ellipsis expanded, full slices appended, None kept."""
    parts = list(idx) if isinstance(idx, tuple) else [idx]
    consuming = sum(1 for i in parts if i is not None and i is not Ellipsis)
    if consuming > ndim:
        raise IndexError(f"too many indices for an array of dimension {ndim}")
    if sum(1 for i in parts if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    out = []
    for i in parts:
        out.extend([slice(None)] * (ndim - consuming) if i is Ellipsis else [i])
    return out + [slice(None)] * (ndim - sum(1 for i in out if i is not None))


def _fit(v, shape, dtype):
    """``v`` in ``x``'s dtype, its leading unit axes dropped, broadcast to ``shape``."""
    v = astype(v, dtype)
    vs = aval_of(v).shape
    lead = 0
    while lead < len(vs) and vs[lead] == 1:
        lead += 1
    if lead:
        v = lax.reshape(v, vs[lead:])
    try:
        broadcast_shapes(aval_of(v).shape, shape)
    except ValueError:
        raise ValueError(
            f"cannot broadcast an update of shape {vs} to the shape {tuple(shape)}"
        ) from None
    return lax.broadcast_to(v, tuple(shape)) if aval_of(v).shape != tuple(shape) else v


def update(x, idx, v, mode: str):
    """``x`` with ``x[idx]`` set to (``mode="set"``) or combined with (``"add"``, ``"mul"``,
    ``"max"``, ``"min"``) ``v``; a new value, ``x`` is not changed."""
    from autodiff.numpy._put import _mask, _masked_set

    mask = _mask(idx)
    if mask is not None:
        if mode != "set":
            raise IndexError(
                "x.at[...] takes no boolean masks (neither does MLX's); use "
                "`anp.where(mask, new, x)` or `x[mask] = value`"
            )
        return _masked_set(x, mask, v)
    comps = _expand(len(aval_of(x).shape), idx)
    if all(c is None or _is_int(c) or (type(c) is slice and c.step in (None, 1)) for c in comps):
        out = _update_window(x, comps, v, mode)
    elif _one_array_index(comps):
        out = _update_along_axis(x, comps, v, mode)
    else:
        out = _update_scattered(x, comps, v, mode)
    return as_tracer(out)


def _one_array_index(comps) -> bool:
    """One integer array indexes one axis, the others are taken whole: ``x[:, i] = y``."""
    arrays = [c for c in comps if c is not None and type(c) is not slice and not _is_int(c)]
    return len(arrays) == 1 and all(
        c is arrays[0] or (type(c) is slice and c == slice(None)) for c in comps
    )


def _wrap_index(i, d: int):
    """An integer index array of an axis of length ``d``: negatives counted from the end, and
    those out of bounds set to ``d`` (one past the end, where the caller drops them); an int32
    tracer for a traced index, else an int32 NumPy array."""
    if type(i) is Tracer:
        if not is_int(i.aval.dtype):
            raise IndexError(f"arrays used as indices must be integers, got {i.aval.str_short()}")
        i = lax.convert(i, "int32")
        i = lax.select(lax.lt(i, 0), lax.add(i, d), i)
        return lax.select(lax.logical_and(lax.ge(i, 0), lax.lt(i, d)), i, d)
    a = np.asarray(i)
    if a.dtype.kind not in "iu":
        raise IndexError(
            f"arrays used as indices of an update must be integers, got {a.dtype} "
            "(a boolean mask works only alone: `x[mask] = value`)"
        )
    a = np.where(a < 0, a + d, a)
    return np.where((a < 0) | (a >= d), d, a).astype(np.int32)


def _update_along_axis(x, comps, v, mode):
    """``x[:, i] = y`` as one scatter along that axis (no flattening, no table of positions);
    out-of-bounds indices go to one more slab along the axis, cut off after."""
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    ax = next(k for k, c in enumerate(comps) if type(c) is not slice)
    d = shape[ax]
    i = _wrap_index(comps[ax], d)
    if type(i) is Tracer:
        dump = True
    else:
        dump = bool((i == d).any())
        i = mx.array(i)
    ishape = aval_of(i).shape
    v = _fit(v, shape[:ax] + ishape + shape[ax + 1 :], dtype)
    if 0 in aval_of(v).shape:
        return x
    if dump:
        slab = lax.full(shape[:ax] + (1,) + shape[ax + 1 :], 0, dtype)
        x = lax.concatenate([x, slab], ax)
    out = _SCATTER[mode](x, i, v, ax)
    return lax.slice_in_dim(out, 0, d, 1, ax) if dump else out


def _update_window(x, comps, v, mode):
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    starts, sizes, view, ax = [], [], [], 0
    for c in comps:
        if c is None:
            view.append(1)
            continue
        d = shape[ax]
        ax += 1
        if type(c) is slice:
            s, e, _ = c.indices(d)
            starts.append(s)
            sizes.append(max(0, e - s))
            view.append(sizes[-1])
        else:
            k = int(c)
            if not -d <= k < d:
                return x  # out of bounds: the update is dropped
            starts.append(k % d)
            sizes.append(1)
    v = _fit(v, view, dtype)
    if 0 in sizes:
        return x
    v = lax.reshape(v, sizes)
    if mode != "set":
        old = lax.slice_(x, starts, [s + n for s, n in zip(starts, sizes)])
        v = _COMBINE[mode](old, v)
    if tuple(sizes) == shape:
        return v
    return lax.dynamic_update_slice(x, v, starts)


def _update_scattered(x, comps, v, mode):
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    pos, dump = _positions(shape, comps)
    pshape = aval_of(pos).shape
    v = _fit(v, pshape, dtype)
    if int(np.prod(pshape)) == 0:
        return x
    return _scatter_flat(x, pos, v, mode, dump)


def _scatter_flat(x, pos, v, mode, dump):
    """Scatter ``v`` into the flattened ``x`` at the flat positions ``pos`` (same shape as
    ``v``; ``x.size`` where an update is dropped if ``dump``)."""
    shape, dtype, n = aval_of(x).shape, aval_of(x).dtype, aval_of(x).size
    k = int(np.prod(aval_of(pos).shape))
    flat = lax.reshape(x, (n,))
    if dump:  # one more slot, for the updates of out-of-bounds indices; cut off below
        flat = lax.concatenate([flat, lax.full((1,), 0, dtype)], 0)
    pos = mx.array(pos.reshape(-1)) if isinstance(pos, np.ndarray) else lax.reshape(pos, (k,))
    out = _SCATTER[mode](flat, pos, lax.reshape(v, (k,)), 0)
    if dump:
        out = lax.slice_in_dim(out, 0, n, 1, 0)
    return lax.reshape(out, shape)


def _positions(shape, comps):
    """The flat positions ``arange(size).reshape(shape)[idx]``: a NumPy array where the index
    is concrete, a tracer where it is traced; and whether an index may be out of bounds, its
    positions then being ``size`` (the axes indexed by arrays get one more row, holding
    ``size``, which an out-of-range index is redirected to)."""
    n = int(np.prod(shape))
    ext, mapped, ax, traced, dump = list(shape), [], 0, False, False
    for c in comps:
        if c is None or type(c) is slice:
            mapped.append(c)
            ax += c is not None
            continue
        d = shape[ax]
        if _is_int(c):
            k = int(c)
            c = k % d if -d <= k < d else np.array(d, np.int32)
        else:
            c = _wrap_index(c, d)
            traced = traced or type(c) is Tracer
        if type(c) is Tracer or (isinstance(c, np.ndarray) and (c == d).any()):
            ext[ax] = d + 1
            dump = True
        mapped.append(c)
        ax += 1
    base = np.full(ext, n, np.int32)
    base[tuple(slice(0, d) for d in shape)] = np.arange(n, dtype=np.int32).reshape(shape)
    if traced:
        conv = tuple(mx.array(m) if isinstance(m, np.ndarray) else m for m in mapped)
        return getitem(mx.array(base), conv), dump
    return base[tuple(mapped)], dump


# ---------------------------------------------------------------------------------------------
# x.at[idx]


class _AtIndexer:
    """``x.at[idx].add(y)`` and the rest: functional updates, as ``mx.array.at``.

    ``add``, ``subtract``, ``multiply``, ``divide`` apply every repeated index; ``maximum`` and
    ``minimum`` take the extreme; ``set`` (JAX's name: MLX's ``.at`` has no ``set``; use
    ``x[idx] = y`` there) keeps the last value. Updates at out-of-bounds indices are dropped.
    Differentiable to any order, in ``x`` and in the updates.

    Example:
        >>> ad.grad(lambda x: x.at[mx.array([0, 0])].multiply(x[1]).sum())(mx.array([2.0, 3.0]))
    """

    __slots__ = ("x", "idx")

    def __init__(self, x, idx=None):
        self.x, self.idx = x, idx

    def __getitem__(self, idx):
        return _AtIndexer(self.x, idx)

    def set(self, y):
        return update(self.x, self.idx, y, "set")

    def add(self, y):
        return update(self.x, self.idx, y, "add")

    def subtract(self, y):
        from autodiff.numpy._elementwise import negative

        return self.add(negative(self._cast_scalar(y)))

    def multiply(self, y):
        return update(self.x, self.idx, y, "mul")

    def divide(self, y):
        from autodiff.numpy._elementwise import reciprocal

        return self.multiply(reciprocal(self._cast_scalar(y)))

    def maximum(self, y):
        return update(self.x, self.idx, y, "max")

    def minimum(self, y):
        return update(self.x, self.idx, y, "min")

    def _cast_scalar(self, y):
        """A Python scalar takes ``x``'s dtype first, as in MLX (``to_array(v, x.dtype)``)."""
        return as_tracer(astype(y, aval_of(self.x).dtype)) if type(y) in (bool, int, float) else y

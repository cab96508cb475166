"""``searchsorted``: insertion indices of values into a sorted 1-D sequence (MLX's kernel).

The result is integer, so its derivative is zero. MLX's kernel takes one 1-D sequence; under
``vmap`` with a batched sequence the batching rule ranks values and sequence together with
stable sorts, one row per example (JAX's ``method="sort"``).
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.extend import batch_rules, bind, def_primitive, defzero, impls, lowerings, moveaxis
from autodiff.ir import ShapedArray
from autodiff.tracing import aval_of


def _searchsorted_rule(seq, values, *, right):
    if seq.ndim != 1:
        raise TypeError(f"searchsorted: the sorted sequence must be 1-D, got {seq.str_short()}")
    if seq.dtype != values.dtype:
        raise TypeError(f"searchsorted: dtypes differ: {seq.str_short()}, {values.str_short()}")
    return [ShapedArray(values.shape, "int32")]


searchsorted_p = def_primitive("searchsorted", "searchsorted", _searchsorted_rule)


def searchsorted(sorted_sequence, values, right: bool = False):
    """int32 indices where ``values`` would be inserted into the 1-D ascending
    ``sorted_sequence``: the count of elements ``<`` each value (``<=`` if ``right``)."""
    return bind(searchsorted_p, sorted_sequence, values, right=right)


defzero(searchsorted_p)


def _rank(x):
    """The position of each element of ``x`` (B, m) in its row's stable sort."""
    return L.sort(L.sort(x, 1)[1], 1)[1]


def _searchsorted_batch(size, args, dims, right):
    (seq, values), (ds, dv) = args, dims
    if ds is None:
        return searchsorted(seq, values, right), dv
    seq = moveaxis(seq, ds, 0)
    vshape = aval_of(values).shape
    if dv is None:
        values = L.broadcast_in_dim(values, (size,) + vshape, range(1, len(vshape) + 1))
    else:
        values = moveaxis(values, dv, 0)
    out_shape = aval_of(values).shape
    q = L.reshape(values, (size, int(np.prod(out_shape[1:], dtype=int))))
    n, m = aval_of(seq).shape[1], aval_of(q).shape[1]
    # Stable ranks: equal elements keep their order, so with the values first (left) a
    # value's rank counts the sequence elements < it, with the sequence first those <= it.
    if right:
        idx = L.slice_in_dim(_rank(L.concatenate([seq, q], 1)), n, n + m, axis=1)
    else:
        idx = L.slice_in_dim(_rank(L.concatenate([q, seq], 1)), 0, m, axis=1)
    return L.reshape(L.sub(idx, _rank(q)), out_shape), 0


batch_rules[searchsorted_p] = _searchsorted_batch
lowerings[searchsorted_p] = lambda a, ins, outs, right: (
    f"mx.searchsorted({a[0]}, {a[1]}, side={'right' if right else 'left'!r}).astype(mx.int32)"
)
impls[searchsorted_p] = lambda seq, values, right: np.searchsorted(
    seq, values, side="right" if right else "left"
).astype(np.int32)

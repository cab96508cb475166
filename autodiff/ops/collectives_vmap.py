"""Batching of the collectives (``collectives.py``), as JAX's.

Over an axis name that the vmap does not bind (``batch_rules``), a collective applies to the
whole batched array, the batch axis first: each instance of that other axis communicates its
batch of values. Over the vmapped axis itself (``named_batch_rules``, see
``transforms/vmap.py``) it becomes array operations over the batch axis: ``psum`` a sum over
it (``size * x`` for an unbatched ``x``, the same on every instance), ``pmax``/``pmin`` a
max/min, ``all_gather`` the batch moved to ``axis`` (unbatched result), ``psum_scatter`` the
sum with instance ``i`` holding block ``i`` (batched along ``scatter_dimension``), and
``axis_index`` an iota.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.extend import NO_BATCH_RULE, batch_rules, bind, moveaxis
from autodiff.ops.collectives import (
    all_gather_p,
    axis_index_p,
    pmax_p,
    pmin_p,
    psum_p,
    psum_scatter_p,
)
from autodiff.tracing import aval_of
from autodiff.transforms.vmap import named_batch_rules


def _foreign_elementwise(prim):
    def rule(size, args, dims, **params):
        return bind(prim, *args, **params), dims[0]

    return rule


def _foreign_all_gather(size, args, dims, axis, tiled, **params):
    x = moveaxis(args[0], dims[0], 0)
    return bind(all_gather_p, x, axis=axis + 1, tiled=tiled, **params), 0


def _foreign_psum_scatter(size, args, dims, scatter_dimension, tiled, **params):
    x = moveaxis(args[0], dims[0], 0)
    return bind(
        psum_scatter_p, x, scatter_dimension=scatter_dimension + 1, tiled=tiled, **params
    ), 0


for _p in (psum_p, pmax_p, pmin_p):
    batch_rules[_p] = _foreign_elementwise(_p)
batch_rules[all_gather_p] = _foreign_all_gather
batch_rules[psum_scatter_p] = _foreign_psum_scatter
NO_BATCH_RULE[axis_index_p] = (
    "has no operands, so the generic path never batches it; under vmap with its axis name, "
    "named_batch_rules gives the position in the batch"
)


def _summed(x, d, size):
    """The sum over the instances: over the batch axis, or ``size`` copies of an unbatched x."""
    return L.mul(x, size) if d is None else L.reduce_sum(x, (d,))


def _named_psum(size, args, dims, **params):
    return _summed(args[0], dims[0], size), None


def _named_extremum(reduce):
    def rule(size, args, dims, **params):
        (x,), (d,) = args, dims
        return (x if d is None else reduce(x, (d,))), None

    return rule


def _split_axis(x, axis, n):
    shape = aval_of(x).shape
    return L.reshape(x, shape[:axis] + (n, shape[axis] // n) + shape[axis + 1 :])


def _named_all_gather(size, args, dims, axis, tiled, **params):
    (x,), (d,) = args, dims
    if d is None:
        shape = aval_of(x).shape
        dims_x = [i for i in range(len(shape) + 1) if i != axis]
        stacked = L.broadcast_in_dim(x, shape[:axis] + (size,) + shape[axis:], dims_x)
    else:
        stacked = moveaxis(x, d, axis)
    if tiled:  # (.., n, k, ..) -> (.., n * k, ..): instance i's block is rows i*k:(i+1)*k
        shape = aval_of(stacked).shape
        stacked = L.reshape(stacked, shape[:axis] + (size * shape[axis + 1],) + shape[axis + 2 :])
    return stacked, None


def _named_psum_scatter(size, args, dims, scatter_dimension, tiled, **params):
    total = _summed(args[0], dims[0], size)
    if tiled:
        total = _split_axis(total, scatter_dimension, size)
    return total, scatter_dimension  # instance i holds block i of the summed array


named_batch_rules[psum_p] = _named_psum
named_batch_rules[pmax_p] = _named_extremum(L.reduce_max)
named_batch_rules[pmin_p] = _named_extremum(L.reduce_min)
named_batch_rules[all_gather_p] = _named_all_gather
named_batch_rules[psum_scatter_p] = _named_psum_scatter
named_batch_rules[axis_index_p] = lambda size, args, dims, **p: (L.iota("int32", (size,), 0), 0)

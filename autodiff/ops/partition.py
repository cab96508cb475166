"""Partial sorting: ``partition`` and ``topk`` (values), ``argpartition`` (indices).

Each lowers to MLX's own kernel, so traced results equal ``mx.partition``/``mx.topk``/
``mx.argpartition`` exactly, in MLX's order (unspecified within each side of the pivot, and
on MLX's CPU backend not the order ``take_along_axis(x, argpartition(x))`` gives when values
tie). The derivative gathers the tangent at indices matched to those values: the r-th
smallest output takes the tangent of the r-th smallest input (stable sorts), so every output
takes the tangent of an input equal to it, each input at most once, at ties too. For
``topk`` the k largest are matched with the k largest inputs, ties taking the lower indices
first, which is the element set ``jax.lax.top_k`` differentiates. The matching costs sorts
(O(n log n)) in derivative programs only; MLX's own rules gather at ``argpartition``'s
indices, which on its CPU backend can disagree with the partitioned values at ties.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.extend import (
    Zero,
    batch_rules,
    bind,
    def_primitive,
    defzero,
    impls,
    jvp_rules,
    lowerings,
    moveaxis,
)
from autodiff.ir import ShapedArray
from autodiff.ops.cumulative import rev
from autodiff.tracing import aval_of


def _check_axis(name, x, axis):
    if not 0 <= axis < x.ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for an array of rank {x.ndim}")


def _partition_rule(x, *, kth, axis):
    _check_axis("partition", x, axis)
    if not 0 <= kth < x.shape[axis]:
        raise ValueError(f"partition: kth={kth} is out of range for axis {axis} of {x.shape}")
    return [x]


def _argpartition_rule(x, *, kth, axis):
    _partition_rule(x, kth=kth, axis=axis)
    return [ShapedArray(x.shape, "int32")]


def _topk_rule(x, *, k, axis):
    _check_axis("topk", x, axis)
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"topk: k={k} is out of range for axis {axis} of {x.shape}")
    return [x.update(shape=x.shape[:axis] + (k,) + x.shape[axis + 1 :])]


partition_p = def_primitive("partition", "partition", _partition_rule)
argpartition_p = def_primitive("argpartition", "partition", _argpartition_rule)
topk_p = def_primitive("topk", "partition", _topk_rule)


def partition(x, kth: int, axis: int):
    """``x`` along ``axis`` with the kth smallest at ``kth``, the smaller ones before it and
    the larger after (MLX's order); ``kth`` and ``axis`` non-negative."""
    return bind(partition_p, x, kth=kth, axis=axis)


def argpartition(x, kth: int, axis: int):
    """The int32 indices that partition ``x`` (``mx.argpartition``'s, which gives uint32)."""
    return bind(argpartition_p, x, kth=kth, axis=axis)


def topk(x, k: int, axis: int):
    """The ``k`` largest elements of ``x`` along ``axis``, in ``mx.topk``'s order."""
    return bind(topk_p, x, k=k, axis=axis)


# ---------------------------------------------------------------------------------------------
# JVP: the tangent at matched indices


def _inverse(perm, axis):
    return L.sort(perm, axis)[1]


def _matched(x, vals, axis):
    """Indices ``idx`` with ``x[idx] == vals`` along ``axis`` (a bijection: ``vals`` is a
    permutation of ``x``), the r-th smallest of ``vals`` matched with the r-th of ``x``."""
    p, q = L.sort(x, axis)[1], L.sort(vals, axis)[1]
    return L.take_along_axis(p, _inverse(q, axis), axis)


def _matched_top(x, vals, axis):
    """Indices into ``x`` of the ``k`` values ``vals`` (its k largest), ties taking the lowest
    indices (as ``jax.lax.top_k``)."""
    n, k = aval_of(x).shape[axis], aval_of(vals).shape[axis]
    # A stable ascending sort of x reversed orders ties by decreasing index, so its last k
    # are the k largest with the lowest indices among a tie cut at the boundary.
    order = L.sub(n - 1, L.sort(rev(x, axis), axis)[1])
    top = L.slice_in_dim(order, n - k, n, axis=axis)
    return L.take_along_axis(top, _inverse(L.sort(vals, axis)[1], axis), axis)


def _gather_jvp(prim, match):
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        out = bind(prim, x, **params)
        if type(t) is Zero or aval_of(out).size == 0:
            return out, Zero(aval_of(out))
        return out, L.take_along_axis(t, match(x, out, params["axis"]), params["axis"])

    jvp_rules[prim] = rule


_gather_jvp(partition_p, _matched)
_gather_jvp(topk_p, _matched_top)
defzero(argpartition_p)


def _front(prim):
    def rule(size, args, dims, axis, **params):
        (x,), (d,) = args, dims
        return bind(prim, moveaxis(x, d, 0), axis=axis + 1, **params), 0

    batch_rules[prim] = rule


for _p in (partition_p, argpartition_p, topk_p):
    _front(_p)

lowerings[partition_p] = lambda a, ins, outs, kth, axis: f"mx.partition({a[0]}, {kth}, axis={axis})"
lowerings[argpartition_p] = lambda a, ins, outs, kth, axis: (
    f"mx.argpartition({a[0]}, {kth}, axis={axis}).astype(mx.int32)"
)
lowerings[topk_p] = lambda a, ins, outs, k, axis: f"mx.topk({a[0]}, {k}, axis={axis})"


def _topk_np(x, k, axis):
    n = x.shape[axis]
    if k == n:  # MLX returns the input unchanged
        return x
    part = np.partition(x, n - k, axis=axis) if k else x
    return np.take(part, np.arange(n - k, n), axis=axis)


impls[partition_p] = lambda x, kth, axis: np.partition(x, kth, axis=axis)
impls[argpartition_p] = lambda x, kth, axis: np.argpartition(x, kth, axis=axis).astype(np.int32)
impls[topk_p] = _topk_np

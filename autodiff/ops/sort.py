"""Sorting: ``sort`` (values and the permutation, two results), from which ``argsort`` and the
other order statistics in ``autodiff.numpy`` are built.

The derivative of sorting is the permutation applied to the tangent, so it is exact to any
order (the permutation is piecewise constant). At ties the permutation MLX's sort returns
decides which tied element the derivative goes to, as in JAX.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_bool
from autodiff.extend import (
    Zero,
    batch_rules,
    bind,
    def_primitive,
    impls,
    jvp_rules,
    lowerings,
    moveaxis,
)
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import helpers


def _sort_rule(x, *, axis):
    if not 0 <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of rank {x.ndim}")
    if is_bool(x.dtype):
        raise TypeError(f"cannot sort booleans ({x.str_short()}); convert them to int32 first")
    return [x, ShapedArray(x.shape, "int32")]


sort_p = def_primitive("sort", "sort", _sort_rule, multiple_results=True)


def sort(x, axis: int):
    """``[values sorted ascending along axis, the int32 permutation that sorts them]``."""
    return bind(sort_p, x, axis=axis)


def _sort_jvp(primals, tangents, axis):
    (x,), (t,) = primals, tangents
    values, perm = sort(x, axis)
    t_values = Zero(values.aval) if type(t) is Zero else L.take_along_axis(t, perm, axis)
    return [values, perm], [t_values, Zero(perm.aval)]


jvp_rules[sort_p] = _sort_jvp


def _sort_batch(size, args, dims, axis):
    (x,), (d,) = args, dims
    return sort(moveaxis(x, d, 0), axis + 1), [0, 0]


batch_rules[sort_p] = _sort_batch


def _sort_mlx(x, axis):
    perm = mx.argsort(x, axis=axis)
    return mx.take_along_axis(x, perm, axis=axis), perm.astype(mx.int32)


helpers["_sort"] = _sort_mlx
lowerings[sort_p] = lambda a, ins, outs, axis: f"_sort({a[0]}, {axis})"


def _sort_np(x, axis):
    perm = np.argsort(x, axis=axis, kind="stable")
    return np.take_along_axis(x, perm, axis=axis), perm.astype(np.int32)


impls[sort_p] = _sort_np

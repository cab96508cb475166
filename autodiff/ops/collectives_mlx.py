"""The MLX side of the collectives (``collectives.py``): their lowering to ``mx.distributed``
on the group bound to the axis name, the same calls made eagerly (``spmd(f)`` called outside
any trace), and the float64 interpreter, which runs them on float64 CPU arrays so each
process interprets its own program while the processes communicate.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff.extend import impls, lowerings
from autodiff.lower_mlx import helpers, ref
from autodiff.named_axes import group_of
from autodiff.ops.collectives import (
    all_gather_p,
    axis_index_p,
    eager,
    pmax_p,
    pmin_p,
    psum_p,
    psum_scatter_p,
)


def _all_gather_mlx(x, group, axis, tiled):
    if not tiled:
        return mx.moveaxis(mx.distributed.all_gather(mx.expand_dims(x, 0), group=group), 0, axis)
    return mx.moveaxis(mx.distributed.all_gather(mx.moveaxis(x, axis, 0), group=group), 0, axis)


def _psum_scatter_mlx(x, group, scatter_dimension, tiled):
    total, rank, s = mx.distributed.all_sum(x, group=group), group.rank(), scatter_dimension
    if not tiled:
        return mx.take(total, rank, axis=s)
    k = x.shape[s] // group.size()
    return mx.take(total, mx.arange(rank * k, (rank + 1) * k), axis=s)


eager.update(
    {
        psum_p: lambda x, group: mx.distributed.all_sum(x, group=group),
        pmax_p: lambda x, group: mx.distributed.all_max(x, group=group),
        pmin_p: lambda x, group: mx.distributed.all_min(x, group=group),
        all_gather_p: _all_gather_mlx,
        psum_scatter_p: _psum_scatter_mlx,
        axis_index_p: lambda group: mx.array(group.rank(), dtype=mx.int32),
    }
)
helpers["_all_gather"] = _all_gather_mlx
helpers["_psum_scatter"] = _psum_scatter_mlx


def _group(axis_name):
    return ref(group_of(axis_name, "lower_mlx"), "group")


def _lower_reduce(mx_name):
    return lambda a, ins, outs, axis_name, axis_size: (
        f"mx.distributed.{mx_name}({a[0]}, group={_group(axis_name)})"
    )


lowerings[psum_p] = _lower_reduce("all_sum")
lowerings[pmax_p] = _lower_reduce("all_max")
lowerings[pmin_p] = _lower_reduce("all_min")
lowerings[all_gather_p] = lambda a, ins, outs, axis_name, axis_size, axis, tiled: (
    f"_all_gather({a[0]}, {_group(axis_name)}, {axis}, {tiled})"
)
lowerings[psum_scatter_p] = lambda a, ins, outs, axis_name, axis_size, scatter_dimension, tiled: (
    f"_psum_scatter({a[0]}, {_group(axis_name)}, {scatter_dimension}, {tiled})"
)
lowerings[axis_index_p] = lambda a, ins, outs, axis_name, axis_size: (
    f"mx.array({group_of(axis_name, 'lower_mlx').rank()}, dtype=mx.int32)"
)


def _one_instance(prim, x=None, **params):
    """A collective over an axis of size 1, in NumPy."""
    if prim is axis_index_p:
        return np.zeros((), np.int32)
    if prim is all_gather_p:
        return x if params["tiled"] else np.expand_dims(x, params["axis"])
    if prim is psum_scatter_p:
        return x if params["tiled"] else np.squeeze(x, params["scatter_dimension"])
    return x


def _mx64(a):
    """An mx.array keeping a float64 NumPy array's precision (mx.array would give float32)."""
    a = np.asarray(a)
    return mx.array(a, dtype=mx.float64) if a.dtype == np.float64 else mx.array(a)


def _interpret(prim):
    def impl(*args, axis_name, axis_size, **params):
        if axis_size == 1:
            return _one_instance(prim, *args, **params)
        group = group_of(axis_name, "interpret")
        if args and np.iscomplexobj(args[0]):  # MLX has no complex128: real and imaginary parts
            re = impl(args[0].real, axis_name=axis_name, axis_size=axis_size, **params)
            im = impl(args[0].imag, axis_name=axis_name, axis_size=axis_size, **params)
            return re + 1j * im
        out = eager[prim](*[_mx64(a) for a in args], group, **params)
        return np.asarray(out)

    return impl


for _p in eager:
    impls[_p] = _interpret(_p)

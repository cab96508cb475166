"""Batching: ``vmap``, as ``jax.vmap``.

``axis_name`` names the mapped axis, as in JAX: while ``fun`` is traced the name is bound
(``autodiff/named_axes.py``), so collectives over it (``ad.lax.psum(x, name)``...) record
equations with the axis size, and ``vmap_jaxpr`` batches them over the mapped axis
(``transforms/vmap.py``): ``psum`` is a sum over the batch, ``axis_index`` the position in it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from autodiff.api_util import broadcast_prefix, fun_name, trace_fun
from autodiff.errors import TransformError
from autodiff.named_axes import axis_frame
from autodiff.program import Program, cached
from autodiff.tracing import aval_of
from autodiff.transforms.vmap import vmap_jaxpr
from autodiff.tree import tree_flatten, tree_unflatten


def vmap(
    fun: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
    axis_name: Any = None,
) -> Callable:
    """Vectorise ``fun`` over an axis of its inputs, as ``jax.vmap``.

    Args:
        fun: a function of arrays or pytrees of arrays.
        in_axes: an int, None (not mapped), or a tuple with one entry per positional argument,
            each an int, None or a pytree prefix of that argument. Negative axes count from
            the end. Keyword arguments are mapped over axis 0.
        out_axes: where the mapped axis goes in each output (int, or a pytree prefix of the
            output); None only for outputs that do not depend on mapped inputs.
        axis_size: the size of the mapped axis, needed only when no input is mapped.
        axis_name: a name (any hashable, e.g. ``"batch"``) for the mapped axis, over which
            collectives in ``fun`` then act: ``ad.lax.psum(x, "batch")`` sums over the batch,
            ``ad.lax.axis_index("batch")`` is the position in it. The same ``fun`` run under
            ``ad.spmd(fun, axis_name="batch")`` on as many processes gives the same numbers.

    Example:
        >>> per_example_grads = ad.vmap(ad.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
        >>> normalise = ad.vmap(lambda x: x / ad.lax.psum(x, "i"), axis_name="i")
        >>> normalise(mx.array([1.0, 3.0]))
        array([0.25, 0.75], dtype=float32)
    """

    @functools.wraps(fun, updated=())
    def vmap_f(*args, **kwargs):
        name = fun_name(fun)
        if isinstance(in_axes, list):
            raise TransformError(
                "[vmap] in_axes must be an int, None or a tuple, not a list (a list would be read as a pytree)"
            )
        axes_tuple = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        if len(axes_tuple) != len(args):
            raise TransformError(
                f"[vmap] in_axes has {len(axes_tuple)} entries but `{name}` was called with "
                f"{len(args)} positional arguments"
            )
        axes = broadcast_prefix(list(axes_tuple), list(args), "in_axes", "vmap")
        axes += [0] * len(tree_flatten(kwargs)[0])
        leaves, in_tree = tree_flatten([*args, kwargs])
        size, canon = _axis_size(leaves, axes, axis_size, name)
        # Trace one example: a mapped leaf stands for one slice along its axis.
        avals = [_unbatched(aval_of(x), d) for x, d in zip(leaves, canon)]
        nums = tuple(range(len(args)))
        if axis_name is None:
            traced = trace_fun(
                fun, args, {}, nums, "vmap", leaves=leaves, in_tree=in_tree, avals=avals
            )
        else:
            with axis_frame(axis_name, size):
                traced = trace_fun(
                    fun, args, {}, nums, "vmap", leaves=leaves, in_tree=in_tree, avals=avals
                )
        out_shapes = traced.closed.out_avals
        out_tree = traced.out_tree
        outs_axes = broadcast_prefix(
            out_axes, tree_unflatten(out_tree, list(range(len(out_shapes)))), "out_axes", "vmap"
        )
        outs_axes = [_out_axis(d, a, name) for d, a in zip(outs_axes, out_shapes)]
        in_dims = [None] * traced.n_consts + canon
        key = ("vmap", tuple(in_dims), tuple(outs_axes), size, axis_name, traced.key)

        def build():
            closed, _ = vmap_jaxpr(traced.closed, in_dims, size, outs_axes, axis_name)
            return Program(closed, f"vmap_{name}")

        program = cached(key, build)
        return tree_unflatten(out_tree, program(*traced.run_args))

    return vmap_f


def _out_axis(d, aval, name):
    if d is None:
        return None
    if not -(aval.ndim + 1) <= d <= aval.ndim:
        raise TransformError(
            f"[vmap] out_axes={d} is out of range for an output of `{name}` of type "
            f"{aval.str_short()} per example: with the mapped axis it has rank {aval.ndim + 1}, "
            f"so out_axes must be in [{-(aval.ndim + 1)}, {aval.ndim}]"
        )
    return d % (aval.ndim + 1)


def _unbatched(aval, d):
    return aval if d is None else aval.update(shape=aval.shape[:d] + aval.shape[d + 1 :])


def _axis_size(leaves, axes, axis_size, name):
    sizes, canon = [], []
    for i, (x, d) in enumerate(zip(leaves, axes)):
        if d is None:
            canon.append(None)
            continue
        shape = aval_of(x).shape
        if not -len(shape) <= d < max(len(shape), 1) or not shape:
            raise TransformError(
                f"[vmap] `{name}`: in_axes specifies axis {d} for an argument of shape "
                f"{tuple(shape)} (leaf {i}), which has rank {len(shape)}; use None for "
                "arguments that are not mapped"
            )
        d %= len(shape)
        canon.append(d)
        sizes.append((shape[d], i, d, shape))
    if not sizes:
        if axis_size is None:
            raise TransformError(
                f"[vmap] `{name}`: no argument is mapped (all in_axes are None); pass axis_size"
            )
        return axis_size, canon
    size = sizes[0][0]
    if any(s != size for s, *_ in sizes) or (axis_size is not None and axis_size != size):
        lines = "\n".join(
            f"  * axis {d} of leaf {i} (shape {tuple(sh)}) has size {s}" for s, i, d, sh in sizes
        )
        raise TransformError(
            f"[vmap] `{name}` got inconsistent sizes for the mapped axes:\n{lines}"
            + (f"\n  * axis_size={axis_size}" if axis_size is not None else "")
        )
    return size, canon

"""``vmap`` and what it enables: ``jacfwd``, ``jacrev``, ``hessian``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx

from autodiff.api import jvp, vjp
from autodiff.api_util import broadcast_prefix, check_argnums, fun_name, trace_fun
from autodiff.errors import TransformError
from autodiff.ir import is_float
from autodiff.lower_mlx import MX_DTYPES
from autodiff.program import Program, cached
from autodiff.tracing import aval_of
from autodiff.tree import tree_flatten, tree_unflatten
from autodiff.transforms.vmap import vmap_jaxpr


def vmap(
    fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None
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

    Example:
        >>> per_example_grads = ad.vmap(ad.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    """

    @functools.wraps(fun)
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
        axes = broadcast_prefix(list(axes_tuple), list(args), "in_axes")
        axes += [0] * len(tree_flatten(kwargs)[0])
        leaves, in_tree = tree_flatten((list(args), kwargs))
        size, canon = _axis_size(leaves, axes, axis_size, name)
        # Trace one example: a mapped leaf stands for one slice along its axis.
        avals = [_unbatched(aval_of(x), d) for x, d in zip(leaves, canon)]

        def call(*flat):
            a, kw = tree_unflatten(in_tree, flat)
            return fun(*a, **kw)

        nums = tuple(range(len(leaves)))
        flat_tree = tree_flatten(tuple(nums))[1]
        traced = trace_fun(call, nums, {}, nums, "vmap", leaves=leaves, in_tree=flat_tree, avals=avals)  # fmt: skip
        out_shapes = traced.closed.out_avals
        out_tree = traced.out_tree
        outs_axes = broadcast_prefix(
            out_axes, tree_unflatten(out_tree, list(range(len(out_shapes)))), "out_axes"
        )
        outs_axes = [None if d is None else d % (a.ndim + 1) for d, a in zip(outs_axes, out_shapes)]
        in_dims = [None] * traced.n_consts + canon
        key = ("vmap", tuple(in_dims), tuple(outs_axes), size, traced.key)

        def build():
            closed, _ = vmap_jaxpr(traced.closed, in_dims, size, outs_axes)
            return Program(closed, f"vmap_{name}")

        program = cached(key, build)
        return tree_unflatten(out_tree, program(*traced.run_args))

    return vmap_f


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


# ---------------------------------------------------------------------------------------------
# Jacobians


def _std_basis(leaves) -> list:
    """Rows of the identity over all leaves' elements, split per leaf: (N, *leaf.shape)."""
    sizes = [aval_of(x).size for x in leaves]
    n = sum(sizes)
    eye = mx.eye(n)
    out, start = [], 0
    for x, s in zip(leaves, sizes):
        a = aval_of(x)
        out.append(eye[:, start : start + s].reshape((n,) + a.shape).astype(MX_DTYPES[a.dtype]))
        start += s
    return out


def _check_float_inputs(leaves, transform, fun):
    for x in leaves:
        if not is_float(aval_of(x).dtype):
            raise TypeError(
                f"[{transform}] `{fun_name(fun)}` is differentiated with respect to an input of "
                f"type {aval_of(x).str_short()}; {transform} requires floating-point inputs"
            )


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by forward mode (one ``jvp`` per input element, vectorised by ``vmap``).

    Each output leaf gets shape ``out.shape + in.shape``, in the output's tree, each holding the
    input's tree (a tuple of them for tuple ``argnums``), as in ``jax.jacfwd``.

    Example:
        >>> J = ad.jacfwd(lambda x: anp.sin(x) * x)(mx.arange(3.0))  # 3 x 3 diagonal
    """

    @functools.wraps(fun)
    def jacfwd_f(*args, **kwargs):
        leaves, in_tree, f_leaves = _of_leaves(fun, args, kwargs, argnums, "jacfwd")

        def push(*basis):
            out = jvp(f_leaves, leaves, list(basis), has_aux=has_aux)
            return (out[1], out[2]) if has_aux else out[1]

        basis = _std_basis(leaves)
        jac = vmap(push, out_axes=-1)(*basis)
        if has_aux:
            jac, aux = jac
            aux = _first(aux)
        out_leaves, out_tree = tree_flatten(jac)
        per_out = [_split_last(o, leaves) for o in out_leaves]
        result = tree_unflatten(out_tree, [_by_argnums(p, in_tree, argnums) for p in per_out])
        return (result, aux) if has_aux else result

    return jacfwd_f


def _of_leaves(fun, args, kwargs, argnums, transform):
    """The differentiated arguments' leaves, their tree, and ``fun`` as a function of them."""
    nums = check_argnums(argnums, len(args), transform, fun)
    leaves, in_tree = tree_flatten([args[i] for i in nums])
    _check_float_inputs(leaves, transform, fun)

    def f_leaves(*ls):
        full = list(args)
        for i, a in zip(nums, tree_unflatten(in_tree, ls)):
            full[i] = a
        return fun(*full, **kwargs)

    return leaves, in_tree, f_leaves


def _first(aux):
    """vmap broadcast aux along the basis axis (out_axes=-1); keep one copy."""
    from autodiff.tree import tree_map

    return tree_map(lambda a: a[..., 0], aux)


def _split_last(o, in_leaves):
    """(out.shape..., N) -> one (out.shape + in.shape) block per input leaf."""
    shape = aval_of(o).shape[:-1]
    res, start = [], 0
    for x in in_leaves:
        a = aval_of(x)
        block = o[..., start : start + a.size]
        res.append(block.reshape(shape + a.shape))
        start += a.size
    return res


def _by_argnums(blocks, in_tree, argnums):
    trees = tree_unflatten(in_tree, blocks)
    return trees[0] if isinstance(argnums, int) else tuple(trees)


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by reverse mode (one ``vjp`` per output element, vectorised by ``vmap``).

    Same output layout as :func:`jacfwd`; cheaper when outputs are fewer than inputs.

    Example:
        >>> J = ad.jacrev(lambda x: anp.sin(x) * x)(mx.arange(3.0))
    """

    @functools.wraps(fun)
    def jacrev_f(*args, **kwargs):
        leaves, in_tree, f_leaves = _of_leaves(fun, args, kwargs, argnums, "jacrev")

        res = vjp(f_leaves, *leaves, has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        out_leaves, out_tree = tree_flatten(out)
        basis = _std_basis(out_leaves)
        # one cotangent per output element: per input leaf, shape (M, *in.shape)
        cts = vmap(lambda *b: vjp_fn(tree_unflatten(out_tree, list(b))))(*basis)
        m_blocks = []
        for ct, x in zip(cts, leaves):
            # (M, *in.shape) -> per output leaf (out.shape + in.shape)
            blocks, start = [], 0
            for o in out_leaves:
                oa = aval_of(o)
                blocks.append(ct[start : start + oa.size].reshape(oa.shape + aval_of(x).shape))
                start += oa.size
            m_blocks.append(blocks)
        per_out = [[m_blocks[j][i] for j in range(len(leaves))] for i in range(len(out_leaves))]
        result = tree_unflatten(out_tree, [_by_argnums(p, in_tree, argnums) for p in per_out])
        return (result, res[2]) if has_aux else result

    return jacrev_f


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(fun))``, shape ``in.shape * 2``.

    Example:
        >>> H = ad.hessian(lambda x: anp.sum(x ** 3))(mx.array([1.0, 2.0]))  # diag(6x)
    """
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux)

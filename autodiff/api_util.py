"""What every transform's API function does first: check argnums, flatten pytrees, trace the
user's function with its consts opened into inputs (so the structural cache key holds no array
values), and report bad arguments in JAX's words."""

from __future__ import annotations

from typing import Any, NamedTuple

import mlx.core as mx

from autodiff.errors import TransformError
from autodiff.ir import ClosedJaxpr, Jaxpr, ShapedArray
from autodiff.lower_mlx import MX_DTYPES
from autodiff.program import structural_key
from autodiff.tracing import Tracer, aval_of, trace_flat
from autodiff.tree import tree_flatten, tree_unflatten
from autodiff.transforms.dce import dce


def fun_name(fun) -> str:
    f = getattr(fun, "func", fun)  # functools.partial
    return getattr(f, "__name__", None) or type(f).__name__


def check_argnums(argnums, nargs: int, transform: str, fun) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not all(isinstance(n, int) for n in nums):
        raise TransformError(
            f"[{transform}] argnums must be an int or a tuple of ints, got {argnums!r}"
        )
    for n in nums:
        if not -nargs <= n < nargs:
            raise TransformError(
                f"[{transform}] argnums={argnums!r} is out of range: `{fun_name(fun)}` was "
                f"called with {nargs} positional argument(s). Pass the differentiated values "
                "positionally, or change argnums."
            )
    canon = tuple(n % nargs for n in nums)
    if len(set(canon)) != len(canon):
        raise TransformError(f"[{transform}] argnums={argnums!r} contains duplicates")
    return canon


class Traced(NamedTuple):
    """A user function traced with some arguments as inputs, its consts opened into inputs."""

    closed: ClosedJaxpr  # no consts: invars are (consts..., leaves...)
    run_args: list  # const values then leaf values
    n_consts: int
    in_tree: Any
    out_tree: Any
    aux_tree: Any
    n_out: int  # flat outputs before the aux ones
    key: Any


_ONE_LEAF_LIST = tree_flatten([0])[1]


def trace_fun(
    fun, args, kwargs, argnums, transform, has_aux=False, leaves=None, in_tree=None, avals=None
):
    """Trace ``fun`` with the pytree leaves of ``args[argnums]`` as inputs; the rest are
    closed over (concrete values stay concrete, as in JAX).

    ``leaves``/``in_tree`` may be given (already flattened); ``avals`` overrides the traced
    input types (vmap traces one example of batched leaves).
    """
    name = fun_name(fun)
    if leaves is None:
        if len(argnums) == 1 and type(args[argnums[0]]) is mx.array:
            leaves, in_tree = [args[argnums[0]]], _ONE_LEAF_LIST
        else:
            leaves, in_tree = tree_flatten([args[i] for i in argnums])

    def flat_fun(*tracers):
        full = list(args)
        for i, a in zip(argnums, tree_unflatten(in_tree, tracers)):
            full[i] = a
        out = fun(*full, **kwargs)
        aux_leaves, aux_tree = [], None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TransformError(
                    f"[{transform}] has_aux=True requires `{name}` to return a pair (output, "
                    f"aux), but it returned {type(out).__name__}"
                )
            out, aux = out
            aux_leaves, aux_tree = tree_flatten(aux)
        out_leaves, out_tree = tree_flatten(out)
        for o in out_leaves + aux_leaves:
            check_output(o, name, transform)
        return out_leaves + aux_leaves, (out_tree, aux_tree, len(out_leaves))

    if avals is None:
        avals = [leaf_aval(x, name, transform) for x in leaves]
    closed, (out_tree, aux_tree, n_out) = trace_flat(flat_fun, avals, name, transform)
    jaxpr = closed.jaxpr
    opened = ClosedJaxpr(Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars), [])
    key = structural_key(opened)
    run_args = list(closed.consts) + [leaf_value(x) for x in leaves]
    return Traced(opened, run_args, len(closed.consts), in_tree, out_tree, aux_tree, n_out, key)


def leaf_aval(x, name, transform) -> ShapedArray:
    try:
        return aval_of(x)
    except TypeError:
        raise TypeError(
            f"[{transform}] arguments of `{name}` must be arrays, scalars, or pytrees of them; "
            f"got a leaf of type {type(x).__name__}. Mark non-array arguments static or close "
            "over them."
        ) from None


def check_output(o, name, transform):
    if not (
        type(o) is Tracer or isinstance(o, (mx.array, int, float, bool)) or hasattr(o, "dtype")
    ):
        raise TypeError(
            f"[{transform}] `{name}` returned a leaf of type {type(o).__name__}; outputs must "
            "be arrays or pytrees of arrays"
        )


def leaf_value(x):
    return mx.array(x) if isinstance(x, (int, float, bool)) else x


def zeros(aval: ShapedArray):
    return mx.zeros(aval.shape, dtype=MX_DTYPES[aval.dtype])


def keep_outputs(closed: ClosedJaxpr, n: int) -> ClosedJaxpr:
    j = closed.jaxpr
    return ClosedJaxpr(dce(Jaxpr(j.constvars, j.invars, j.eqns, j.outvars[:n])), closed.consts)


def broadcast_prefix(prefix, tree, what: str) -> list:
    """One entry of ``prefix`` per leaf of ``tree``; ``prefix`` is a tree prefix of ``tree``
    whose leaves are ints or None (an int or None applies to a whole subtree)."""
    if prefix is None or isinstance(prefix, int):
        return [prefix] * len(tree_flatten(tree)[0])
    if (
        isinstance(prefix, (tuple, list))
        and isinstance(tree, (tuple, list))
        and len(prefix) == len(tree)
    ):
        return [x for p, t in zip(prefix, tree) for x in broadcast_prefix(p, t, what)]
    if isinstance(prefix, dict) and isinstance(tree, dict) and set(prefix) == set(tree):
        return [x for k in sorted(tree) for x in broadcast_prefix(prefix[k], tree[k], what)]
    raise TransformError(
        f"[vmap] {what} must be an int, None, or a tree prefix of the {what.split()[0]} "
        f"structure; got {prefix!r} for a value of type {type(tree).__name__}"
    )

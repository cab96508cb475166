"""What every transform's API function does first: check argnums, flatten pytrees, trace the
user's function with its consts opened into inputs (so the structural cache key holds no array
values), and report bad arguments in JAX's words. Done here once for all transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import mlx.core as mx

from autodiff import modules
from autodiff.dtypes import dtype_name, is_complex, is_float, is_inexact
from autodiff.errors import TransformError
from autodiff.ir import ClosedJaxpr, Jaxpr, ShapedArray
from autodiff.lower_mlx import MX_DTYPES
from autodiff.program import structural_key
from autodiff.tracing import Tracer, aval_of, snapshot, trace_flat
from autodiff.transforms.dce import dce
from autodiff.tree import tree_flatten, tree_unflatten


def fun_name(fun) -> str:
    f = getattr(fun, "func", fun)  # functools.partial
    return getattr(f, "__name__", None) or type(f).__name__


def check_argnums(argnums, nargs: int, transform: str, fun) -> tuple[int, ...]:
    """``argnums`` as a tuple of non-negative ints, checked against the call's arguments."""
    ok = isinstance(argnums, int) or (
        isinstance(argnums, Sequence)
        and not isinstance(argnums, str)
        and all(isinstance(n, int) for n in argnums)
    )
    if not ok or isinstance(argnums, bool):
        raise TransformError(
            f"[{transform}] argnums must be an int or a tuple of ints, got {argnums!r} "
            f"(of type {type(argnums).__name__})"
        )
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
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


def substitute(fun: Callable, args, kwargs: dict, argnums: Sequence[int], in_tree) -> Callable:
    """``fun`` as a function of flat leaves, which replace the arguments ``argnums``.

    ``in_tree`` is the tree of ``[args[i] for i in argnums]``, optionally followed by a dict
    of keyword arguments that replace (or add to) ``kwargs``. Every transform puts its tracers
    back into the user's call through this one function.
    """
    n = len(argnums)

    def with_leaves(*leaves):
        trees = tree_unflatten(in_tree, leaves)
        full = list(args)
        for i, a in zip(argnums, trees):
            full[i] = a
        kw = kwargs if len(trees) == n else {**kwargs, **trees[n]}
        return fun(*full, **kw)

    return with_leaves


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
    has_modules: bool = True  # whether mlx.nn modules are among the inputs


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
    has_modules = True  # (unknown when given the leaves)
    if leaves is None:
        if len(argnums) == 1 and type(args[argnums[0]]) is mx.array:
            leaves, in_tree = [args[argnums[0]]], _ONE_LEAF_LIST
            has_modules = False
        else:
            before = modules.flattened
            leaves, in_tree = tree_flatten([args[i] for i in argnums])
            has_modules = modules.flattened != before
    call = substitute(fun, args, kwargs, argnums, in_tree)
    # The values the program runs on, taken now: `fun` may update an outer tracer in place.
    values = [snapshot(x) if type(x) is Tracer else x for x in leaves]

    def flat_fun(*tracers):
        out = call(*tracers)
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
    run_args = list(closed.consts) + [leaf_value(x) for x in values]
    return Traced(
        opened, run_args, len(closed.consts), in_tree, out_tree, aux_tree, n_out, key, has_modules
    )


def leaf_aval(x, name, transform) -> ShapedArray:
    try:
        return aval_of(x)
    except TypeError as e:
        dtype = getattr(x, "dtype", None)
        if dtype is not None:  # an array of a dtype autodiff does not support
            raise TypeError(f"[{transform}] an argument of `{name}`: {e}") from None
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
    """An argument as the program receives it: tracers stay, everything else becomes an
    mx.array of the dtype it was traced with (``mx.array`` alone would turn float64 NumPy
    arrays into float32)."""
    t = type(x)
    if t is mx.array or t is Tracer:
        return x
    return mx.array(x, dtype=MX_DTYPES[dtype_name(aval_of(x).dtype)])


def check_float_inputs(
    avals: Sequence[ShapedArray],
    transform: str,
    fun,
    allow_int=False,
    holomorphic=False,
    allow_complex=True,
):
    """Which inputs are differentiated: float and complex ones; ints only with ``allow_int``
    (their gradient is then zero). With ``holomorphic`` every input must be complex;
    ``allow_complex=False`` (jacfwd) rejects complex inputs unless ``holomorphic``. Raises a
    TypeError naming the input otherwise, in JAX's terms."""
    name = fun_name(fun)
    mask = []
    for a in avals:
        if holomorphic and not is_complex(a.dtype):
            raise TypeError(
                f"[{transform}] {transform} with holomorphic=True requires inputs with complex "
                f"dtype, but `{name}` is differentiated with respect to an input of type "
                f"{a.str_short()}. Convert it with .astype(mx.complex64), or drop "
                "holomorphic=True."
            )
        if is_complex(a.dtype) and not (allow_complex or holomorphic):
            raise TypeError(
                f"[{transform}] {transform} requires real-valued inputs, but `{name}` is "
                f"differentiated with respect to an input of type {a.str_short()}. For "
                f"holomorphic differentiation, pass holomorphic=True. For differentiation of "
                "non-holomorphic functions involving complex inputs, use ad.jvp directly."
            )
        if not is_inexact(a.dtype) and not allow_int:
            hint = (
                ", or pass allow_int=True (its gradient is then zero)"
                if transform in ("grad", "vjp")
                else ""
            )
            raise TypeError(
                f"[{transform}] `{name}` is differentiated with respect to an input of "
                f"type {a.str_short()}; {transform} requires floating-point (or complex) inputs. "
                f"Pass a float (e.g. 3.0 rather than 3, or x.astype(mx.float32)), exclude it "
                f"with argnums{hint}."
            )
        mask.append(is_inexact(a.dtype))
    return mask


def check_output_dtype(aval: ShapedArray, transform: str, fun, holomorphic: bool, scalar: bool):
    """Reverse mode (and jacfwd with ``holomorphic``) needs real floating-point outputs, or
    complex ones with ``holomorphic=True``, as in JAX."""
    name = fun_name(fun)
    noun = "a {} scalar" if scalar else "{} outputs"
    if holomorphic and not is_complex(aval.dtype):
        raise TypeError(
            f"[{transform}] {transform} with holomorphic=True requires `{name}` to return "
            f"{noun.format('complex')}, but it returned {aval.str_short()}."
        )
    if not holomorphic and not is_float(aval.dtype):
        extra = (
            " For holomorphic differentiation, pass holomorphic=True. For differentiation of "
            "non-holomorphic functions involving complex outputs, use ad.vjp directly."
            if is_complex(aval.dtype)
            else ""
        )
        raise TypeError(
            f"[{transform}] {transform} requires `{name}` to return "
            f"{noun.format('real floating-point')}, but it returned {aval.str_short()}.{extra}"
        )


def zeros(aval: ShapedArray):
    return mx.zeros(aval.shape, dtype=MX_DTYPES[aval.dtype])


def keep_outputs(closed: ClosedJaxpr, n: int) -> ClosedJaxpr:
    j = closed.jaxpr
    return ClosedJaxpr(dce(Jaxpr(j.constvars, j.invars, j.eqns, j.outvars[:n])), closed.consts)


def broadcast_prefix(prefix, tree, what: str, transform: str) -> list:
    """One entry of ``prefix`` per leaf of ``tree``; ``prefix`` is a tree prefix of ``tree``
    whose leaves are ints or None (an int or None applies to a whole subtree)."""
    if prefix is None or (isinstance(prefix, int) and not isinstance(prefix, bool)):
        return [prefix] * len(tree_flatten(tree)[0])
    if (
        isinstance(prefix, (tuple, list))
        and isinstance(tree, (tuple, list))
        and len(prefix) == len(tree)
    ):
        return [x for p, t in zip(prefix, tree) for x in broadcast_prefix(p, t, what, transform)]
    if isinstance(prefix, dict) and isinstance(tree, dict) and set(prefix) == set(tree):
        return [
            x for k in sorted(tree) for x in broadcast_prefix(prefix[k], tree[k], what, transform)
        ]
    raise TransformError(
        f"[{transform}] {what} must be an int, None, or a tree prefix of the "
        f"{what.split('_')[0]}put structure; got {prefix!r} for a value of type "
        f"{type(tree).__name__}"
    )

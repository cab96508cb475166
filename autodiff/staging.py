"""Staging: ``make_jaxpr`` shows the IR a function traces to; ``eval_jaxpr`` runs one."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from autodiff.api_util import fun_name, leaf_aval, substitute
from autodiff.errors import TransformError
from autodiff.ir import ClosedJaxpr
from autodiff.program import Program
from autodiff.tracing import aval_of, trace_flat
from autodiff.tree import tree_flatten


def make_jaxpr(
    fun: Callable, static_argnums: int | Sequence[int] = ()
) -> Callable[..., ClosedJaxpr]:
    """Trace ``fun`` and return its jaxpr, as ``jax.make_jaxpr``.

    Array leaves of the positional arguments become inputs; arguments listed in
    ``static_argnums`` (and keyword arguments) are passed through as Python values.

    Example:
        >>> print(ad.make_jaxpr(lambda x: anp.sin(x) * 2.0)(mx.ones(3)))
        { lambda ; a:f32[3]. let
            b:f32[3] = sin a
            c:f32[3] = mul b 2.0
          in (c,) }
    """

    @functools.wraps(fun, updated=())
    def make_jaxpr_f(*args, **kwargs) -> ClosedJaxpr:
        n = len(args)
        given = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        for i in given:
            if not -n <= i < n:
                raise TransformError(
                    f"[make_jaxpr] static_argnums={static_argnums!r} is out of range for "
                    f"`{fun_name(fun)}` called with {n} positional arguments"
                )
        static = {i % n for i in given}
        nums = tuple(i for i in range(n) if i not in static)
        leaves, in_tree = tree_flatten([args[i] for i in nums])
        name = fun_name(fun)
        call = substitute(fun, args, kwargs, nums, in_tree)

        def flat_fun(*tracers):
            return tree_flatten(call(*tracers))

        avals = [leaf_aval(x, name, "make_jaxpr") for x in leaves]
        closed, _ = trace_flat(flat_fun, avals, name, "make_jaxpr")
        return closed

    return make_jaxpr_f


def eval_jaxpr(closed: ClosedJaxpr, *args) -> list:
    """Evaluate a jaxpr (from :func:`make_jaxpr`) on arguments; returns the list of outputs.

    On concrete arrays it is lowered to MLX and run; on traced values it is inlined, so it can
    be differentiated, batched and jitted like any other code.

    Example:
        >>> closed = ad.make_jaxpr(f)(x)
        >>> ad.grad(lambda x: ad.eval_jaxpr(closed, x)[0])(x)
    """
    if len(args) != len(closed.jaxpr.invars):
        raise TypeError(
            f"eval_jaxpr: the jaxpr takes {len(closed.jaxpr.invars)} arguments, got {len(args)}"
        )
    for a, v in zip(args, closed.jaxpr.invars):
        if aval_of(a) != v.aval:
            raise TypeError(
                f"eval_jaxpr: argument of type {aval_of(a).str_short()} for an input of type "
                f"{v.aval.str_short()}"
            )
    return Program(closed, "eval_jaxpr")(*args)

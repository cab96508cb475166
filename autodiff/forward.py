"""Forward mode: ``jvp`` and ``linearize``.

Each call traces the user's function, looks the traced jaxpr up in the structural cache, builds
(on a miss) the transformed and optimised :class:`Program`, and runs it, or inlines it when
called inside an enclosing trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autodiff.api_util import fun_name, keep_outputs, leaf_value, trace_fun, zeros
from autodiff.dtypes import is_inexact
from autodiff.ir import ClosedJaxpr
from autodiff.program import Program, cached
from autodiff.tracing import aval_of
from autodiff.transforms import optimize
from autodiff.transforms.jvp import jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr
from autodiff.tree import tree_flatten, tree_unflatten


def linearize_jaxpr(closed: ClosedJaxpr, n_consts: int, diff: Sequence[bool]):
    """linearize = jvp + partial evaluation.

    Returns ``(known, linear, out_nz, n_res)``: ``known`` maps the inputs to the outputs and
    the residuals; ``linear`` maps (residuals, tangents of the ``diff`` inputs) to the tangents
    of the outputs whose ``out_nz`` is True.
    """
    nonzeros = [False] * n_consts + list(diff)
    jvp, out_nz = jvp_jaxpr(closed, nonzeros)
    n_primal = len(closed.in_avals)
    k = sum(nonzeros)
    n_t = sum(out_nz)
    known, linear, _, n_res = partial_eval_jaxpr(
        jvp, [False] * n_primal + [True] * k, [False] * len(out_nz) + [True] * n_t
    )
    return optimize(known), linear, out_nz, n_res


def _check_tangents(primals, tangents, transform, fun):
    name = fun_name(fun)
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"[{transform}] primals and tangents must be tuples or lists of arguments")
    p_leaves, p_tree = tree_flatten(list(primals))
    t_leaves, t_tree = tree_flatten(list(tangents))
    if p_tree != t_tree:
        raise TypeError(
            f"[{transform}] primal and tangent arguments of `{name}` must have the same tree "
            f"structure, got {p_tree} and {t_tree}"
        )
    for p, t in zip(p_leaves, t_leaves):
        pa, ta = aval_of(p), aval_of(t)
        if pa.shape != ta.shape or (is_inexact(pa.dtype) and pa.dtype != ta.dtype):
            raise TypeError(
                f"[{transform}] primal and tangent arguments of `{name}` must have equal types, "
                f"got primal {pa.str_short()} and tangent {ta.str_short()}"
            )
    return p_leaves, p_tree, t_leaves


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False):
    """Forward mode: ``(fun(*primals), J @ tangents)`` (and ``aux`` with ``has_aux``).

    Example:
        >>> y, dy = ad.jvp(anp.sin, (mx.array(0.5),), (mx.array(1.0),))  # dy = cos(0.5)
        >>> hvp = ad.jvp(ad.grad(f), (x,), (v,))[1]  # Hessian-vector product
    """
    p_leaves, p_tree, t_leaves = _check_tangents(primals, tangents, "jvp", fun)
    nums = tuple(range(len(primals)))
    traced = trace_fun(fun, tuple(primals), {}, nums, "jvp", has_aux, p_leaves, p_tree)
    diff = [is_inexact(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
    n_all = len(traced.closed.out_avals)
    key = ("jvp", tuple(diff), traced.n_consts, traced.n_out, traced.key)

    def build():
        nonzeros = [False] * traced.n_consts + diff
        inst = [True] * traced.n_out + [False] * (n_all - traced.n_out)
        closed, out_nz = jvp_jaxpr(traced.closed, nonzeros, inst)
        return Program(keep_outputs(closed, n_all + traced.n_out), f"jvp_{fun_name(fun)}")

    program = cached(key, build)
    ts = [leaf_value(t) for t, d in zip(t_leaves, diff) if d]
    results = program(*traced.run_args, *ts)
    out = tree_unflatten(traced.out_tree, results[: traced.n_out])
    t_out = tree_unflatten(traced.out_tree, results[n_all:])
    if has_aux:
        return out, t_out, tree_unflatten(traced.aux_tree, results[traced.n_out : n_all])
    return out, t_out


def linearize(fun: Callable, *primals):
    """``(fun(*primals), f_jvp)`` where ``f_jvp(*tangents)`` is the linear map ``J @ t``,
    evaluated without rerunning the forward computation.

    Example:
        >>> y, f_jvp = ad.linearize(anp.sin, mx.array(0.5))
        >>> f_jvp(mx.array(2.0))  # 2 * cos(0.5)
    """
    nums = tuple(range(len(primals)))
    traced = trace_fun(fun, primals, {}, nums, "linearize")
    diff = [is_inexact(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
    key = ("linearize", tuple(diff), traced.n_consts, traced.key)

    def build():
        known, linear, out_nz, n_res = linearize_jaxpr(traced.closed, traced.n_consts, diff)
        return Program(known, "linearize_fwd"), Program(linear, "linearize_jvp"), out_nz

    fwd, lin, out_nz = cached(key, build)
    results = fwd(*traced.run_args)
    n_out = len(out_nz)
    outs, res = results[:n_out], results[n_out:]
    out_avals = traced.closed.out_avals

    def f_jvp(*tangents):
        _, _, t_leaves = _check_tangents(primals, tangents, "linearize", fun)
        ts = [leaf_value(t) for t, d in zip(t_leaves, diff) if d]
        t_outs = iter(lin(*res, *ts))
        full = [next(t_outs) if nz else zeros(a) for a, nz in zip(out_avals, out_nz)]
        return tree_unflatten(traced.out_tree, full)

    return tree_unflatten(traced.out_tree, outs), f_jvp

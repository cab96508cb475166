"""The public transforms. Pytrees, argnums and has_aux are handled here, once; the transforms
themselves work on flat lists of IR values (see ``transforms/``).

Each call traces the user's function, looks the traced jaxpr up in the structural cache, builds
(on a miss) the transformed and optimised :class:`Program`, and runs it, or inlines it when
called inside an enclosing trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

from autodiff import lax
from autodiff.api_util import (
    Traced,
    check_argnums,
    fun_name,
    keep_outputs,
    leaf_aval,
    leaf_value,
    trace_fun,
    zeros,
)
from autodiff.ir import ClosedJaxpr, is_float
from autodiff.program import Program, cached, transform_cache
from autodiff.tracing import aval_of, inline, trace_flat
from autodiff.tree import tree_flatten, tree_unflatten
from autodiff.transforms import optimize
from autodiff.transforms.jvp import Zero, jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr
from autodiff.transforms.transpose import UndefinedPrimal, backward_pass, transpose_jaxpr

# ---------------------------------------------------------------------------------------------
# Reverse mode


def _check_diff_inputs(traced: Traced, transform, fun, allow_int) -> list[bool]:
    """Which leaves are differentiated: float ones; ints only with allow_int (zero gradient)."""
    mask = []
    for a in traced.closed.in_avals[traced.n_consts :]:
        if not is_float(a.dtype) and not allow_int:
            raise TypeError(
                f"[{transform}] `{fun_name(fun)}` is differentiated with respect to an input of "
                f"type {a.str_short()}; {transform} requires floating-point inputs. Convert it "
                "with .astype(mx.float32), exclude it with argnums, or pass allow_int=True "
                "(its gradient is then zero)."
            )
        mask.append(is_float(a.dtype))
    return mask


def _linearize(closed: ClosedJaxpr, n_consts: int, diff: Sequence[bool]):
    """linearize = jvp + partial eval. Returns (known, linear, out_nz, n_res, diff)."""
    nonzeros = [False] * n_consts + list(diff)
    jvp, out_nz = jvp_jaxpr(closed, nonzeros)
    n_primal = len(closed.in_avals)
    k = sum(nonzeros)
    n_t = sum(out_nz)
    known, linear, _, n_res = partial_eval_jaxpr(
        jvp, [False] * n_primal + [True] * k, [False] * len(out_nz) + [True] * n_t
    )
    return optimize(known), linear, out_nz, n_res


class _VJP(NamedTuple):
    fwd: Program  # (consts, leaves) -> (outs..., residuals...)
    bwd: Program  # (residuals, cts of nonzero-tangent outputs) -> cts of differentiated leaves
    out_nz: list
    n_res: int


def _build_vjp(traced: Traced, diff: Sequence[bool], name: str) -> _VJP:
    known, linear, out_nz, n_res = _linearize(traced.closed, traced.n_consts, diff)
    k = sum(diff)
    linear = keep_outputs(linear, sum(out_nz[: traced.n_out]))  # aux outputs get no cotangent
    bwd = transpose_jaxpr(linear, [False] * n_res + [True] * k)
    return _VJP(Program(known, f"{name}_fwd"), Program(bwd, f"{name}_bwd"), out_nz, n_res)


def _build_value_and_grad(
    traced: Traced, diff: Sequence[bool], name: str, with_value: bool
) -> Program:
    known, linear, out_nz, n_res = _linearize(traced.closed, traced.n_consts, diff)
    n_outs = len(out_nz)
    k = sum(diff)

    def fun(*args):
        outs_res = inline(known, args)
        outs, res = outs_res[:n_outs], outs_res[n_outs:]
        if out_nz[0]:
            cts = [lax.full((), 1.0, traced.closed.out_avals[0].dtype)] + [None] * (sum(out_nz) - 1)
            grads = backward_pass(
                linear, list(res) + [UndefinedPrimal(a) for a in _diff_avals(traced, diff)], cts
            )
            grads = grads[n_res:]
        else:
            grads = [Zero(a) for a in _diff_avals(traced, diff)]
        grads = [lax.zeros_like_aval(g.aval) if type(g) is Zero else g for g in grads]
        assert len(grads) == k
        return list(outs if with_value else outs[1:]) + grads, None

    program, _ = trace_flat(fun, traced.closed.in_avals, name, "value_and_grad")
    return Program(optimize(program), name)


def _diff_avals(traced: Traced, diff):
    return [a for a, d in zip(traced.closed.in_avals[traced.n_consts :], diff) if d]


def _fill_grads(traced, diff, grads):
    """Differentiated leaves get their gradient; integer leaves (allow_int) get zeros."""
    it = iter(grads)
    avals = traced.closed.in_avals[traced.n_consts :]
    return [next(it) if d else zeros(a) for a, d in zip(avals, diff)]


def _check_scalar_output(traced: Traced, fun, transform):
    out = traced.closed.out_avals[: traced.n_out]
    name = fun_name(fun)
    if len(out) != 1 or out[0].shape != ():
        got = ", ".join(a.str_short() for a in out) or "nothing"
        raise TypeError(
            f"[{transform}] {transform} requires `{name}` to return a scalar, but it returned "
            f"{got}. For a non-scalar output use ad.jacrev({name}) or ad.vjp, or reduce it "
            "to a scalar (e.g. `.sum()`)."
        )
    if not is_float(out[0].dtype):
        raise TypeError(
            f"[{transform}] {transform} requires `{name}` to return a floating-point scalar, "
            f"but it returned {out[0].str_short()}."
        )


def _value_and_grad(fun, argnums, has_aux, allow_int, with_value: bool):
    name = f"grad_{fun_name(fun)}"
    nums_for: dict[int, tuple[int, ...]] = {}  # argnums checked once per argument count

    @functools.wraps(fun)
    def value_and_grad_f(*args, **kwargs):
        nums = nums_for.get(len(args))
        if nums is None:
            nums = nums_for[len(args)] = check_argnums(argnums, len(args), "grad", fun)
        traced = trace_fun(fun, args, kwargs, nums, "grad", has_aux)
        key = ("grad", with_value, allow_int, traced.n_consts, traced.n_out, traced.key)
        entry = transform_cache.get(key)
        if entry is None:  # the checks depend only on what the key holds
            _check_scalar_output(traced, fun, "grad")
            diff = _check_diff_inputs(traced, "grad", fun, allow_int)
            entry = (_build_value_and_grad(traced, diff, name, with_value), diff, all(diff))
            transform_cache.put(key, entry)
        program, diff, all_diff = entry
        results = program(*traced.run_args)
        n_all = len(traced.closed.out_avals)
        if not with_value:
            n_all -= 1
        grads = results[n_all:]
        if (
            all_diff
            and isinstance(argnums, int)
            and traced.in_tree.num_leaves == 1
            and traced.in_tree.num_nodes == 1
        ):
            g = grads[0]  # the common case: one array argument
        else:
            if not all_diff:
                grads = _fill_grads(traced, diff, grads)
            trees = tree_unflatten(traced.in_tree, grads)
            g = trees[0] if isinstance(argnums, int) else tuple(trees)
        value = results[0] if with_value else None
        if has_aux:
            aux = results[1 if with_value else 0 : n_all]
            return (value, tree_unflatten(traced.aux_tree, aux)), g
        return value, g

    return value_and_grad_f


def value_and_grad(
    fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, allow_int: bool = False
) -> Callable:
    """Like :func:`grad`, but returns ``(value, gradient)`` (``((value, aux), gradient)`` with
    ``has_aux``), computed in one program.

    Example:
        >>> loss, grads = ad.value_and_grad(loss_fn)(params, x, y)
    """
    return _value_and_grad(fun, argnums, has_aux, allow_int, with_value=True)


def grad(
    fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, allow_int: bool = False
) -> Callable:
    """The gradient of a scalar-valued ``fun`` with respect to the arguments ``argnums``.

    Args:
        fun: a function of arrays (or pytrees of arrays) returning a float scalar (and, with
            ``has_aux``, a pair ``(scalar, aux)``).
        argnums: an int, or a tuple of ints; gradients come back in the order asked.
        has_aux: return ``(gradient, aux)``.
        allow_int: allow integer inputs among ``argnums``; their gradient is zero.

    Returns:
        A function with ``fun``'s signature returning the gradient, shaped like the argument
        (a tuple of them for tuple ``argnums``). Composes: ``grad(grad(f))`` is the second
        derivative.

    Example:
        >>> df = ad.grad(lambda x: anp.sin(x) ** 3 * anp.exp(x))
        >>> ad.grad(ad.grad(df))(mx.array(0.5))  # third derivative
    """
    vg = _value_and_grad(fun, argnums, has_aux, allow_int, with_value=False)

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        (_, aux), g = vg(*args, **kwargs) if has_aux else ((None, None), vg(*args, **kwargs)[1])
        return (g, aux) if has_aux else g

    return grad_f


def vjp(fun: Callable, *primals, has_aux: bool = False):
    """Evaluate ``fun(*primals)`` and return ``(out, vjp_fn)`` (and ``aux`` with ``has_aux``).

    ``vjp_fn(cotangent)`` takes a cotangent shaped like ``out`` and returns a tuple with one
    cotangent per primal. It can be called many times; the forward pass is not rerun.

    Example:
        >>> y, vjp_fn = ad.vjp(anp.sin, mx.array([0.0, 1.0]))
        >>> (ct,) = vjp_fn(mx.ones(2))  # cos(x)
    """
    nums = tuple(range(len(primals)))
    traced = trace_fun(fun, primals, {}, nums, "vjp", has_aux)
    diff = [is_float(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
    name = fun_name(fun)
    key = ("vjp", tuple(diff), traced.n_consts, traced.n_out, traced.key)
    entry = cached(key, lambda: _build_vjp(traced, diff, f"vjp_{name}"))
    results = entry.fwd(*traced.run_args)
    n_all = len(traced.closed.out_avals)
    outs, res = results[: traced.n_out], results[n_all:]
    out_avals = traced.closed.out_avals[: traced.n_out]
    out_nz = entry.out_nz[: traced.n_out]

    def vjp_fn(cotangent):
        ct_leaves, ct_tree = tree_flatten(cotangent)
        if ct_tree != traced.out_tree:
            raise TypeError(
                f"[vjp] the cotangent passed to vjp_fn of `{name}` must have the structure of "
                f"its output, {traced.out_tree}, but has structure {ct_tree}"
            )
        cts = []
        for ct, aval, nz in zip(ct_leaves, out_avals, out_nz):
            ct_aval = aval_of(ct)
            if ct_aval.shape != aval.shape or (
                ct_aval.dtype != aval.dtype and is_float(aval.dtype)
            ):
                raise TypeError(
                    f"[vjp] the cotangent {ct_aval.str_short()} passed to vjp_fn of `{name}` "
                    f"does not match the output type {aval.str_short()}; cotangents must have "
                    "the shape and dtype of the output"
                )
            if nz:
                cts.append(leaf_value(ct))
        grads = entry.bwd(*res, *cts) if sum(diff) else []
        return tuple(tree_unflatten(traced.in_tree, _fill_grads(traced, diff, grads)))

    out = tree_unflatten(traced.out_tree, outs)
    if has_aux:
        return out, vjp_fn, tree_unflatten(traced.aux_tree, results[traced.n_out : n_all])
    return out, vjp_fn


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
        if pa.shape != ta.shape or (is_float(pa.dtype) and pa.dtype != ta.dtype):
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
    diff = [is_float(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
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
    diff = [is_float(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
    key = ("linearize", tuple(diff), traced.n_consts, traced.key)

    def build():
        known, linear, out_nz, n_res = _linearize(traced.closed, traced.n_consts, diff)
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

    @functools.wraps(fun)
    def make_jaxpr_f(*args, **kwargs) -> ClosedJaxpr:
        static = {
            n % len(args)
            for n in ((static_argnums,) if isinstance(static_argnums, int) else static_argnums)
        }
        nums = tuple(i for i in range(len(args)) if i not in static)
        leaves, in_tree = tree_flatten([args[i] for i in nums])
        name = fun_name(fun)

        def flat_fun(*tracers):
            full = list(args)
            for i, a in zip(nums, tree_unflatten(in_tree, tracers)):
                full[i] = a
            out_leaves, out_tree = tree_flatten(fun(*full, **kwargs))
            return out_leaves, out_tree

        closed, _ = trace_flat(
            flat_fun, [leaf_aval(x, name, "make_jaxpr") for x in leaves], name, "make_jaxpr"
        )
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
                f"eval_jaxpr: argument of type {aval_of(a).str_short()} for an input of type {v.aval.str_short()}"
            )
    return Program(closed, "eval_jaxpr")(*args)

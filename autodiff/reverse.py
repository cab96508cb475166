"""Reverse mode: ``grad``, ``value_and_grad`` and ``vjp``.

``vjp`` is linearize (jvp + partial evaluation) followed by transposition of the linear part;
``grad`` builds forward and backward into one program, so the value and the gradient come from
one run. Pytrees, argnums and has_aux are handled in ``api_util``; the transforms work on flat
lists of IR values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

from autodiff import lax
from autodiff.api_util import (
    Traced,
    check_argnums,
    check_float_inputs,
    check_output_dtype,
    fun_name,
    keep_outputs,
    leaf_value,
    trace_fun,
    zeros,
)
from autodiff.dtypes import is_inexact
from autodiff.forward import linearize_jaxpr
from autodiff.modules import as_parameter_dicts
from autodiff.program import Program, cached, transform_cache
from autodiff.tracing import aval_of, inline, trace_flat
from autodiff.transforms import optimize
from autodiff.transforms.jvp import Zero
from autodiff.transforms.transpose import UndefinedPrimal, backward_pass, transpose_jaxpr
from autodiff.tree import tree_flatten, tree_unflatten


class _VJP(NamedTuple):
    fwd: Program  # (consts, leaves) -> (outs..., residuals...)
    bwd: Program  # (residuals, cts of nonzero-tangent outputs) -> cts of differentiated leaves
    out_nz: list
    n_res: int


def _build_vjp(traced: Traced, diff: Sequence[bool], name: str) -> _VJP:
    known, linear, out_nz, n_res = linearize_jaxpr(traced.closed, traced.n_consts, diff)
    k = sum(diff)
    linear = keep_outputs(linear, sum(out_nz[: traced.n_out]))  # aux outputs get no cotangent
    bwd = transpose_jaxpr(linear, [False] * n_res + [True] * k)
    return _VJP(Program(known, f"{name}_fwd"), Program(bwd, f"{name}_bwd"), out_nz, n_res)


def _build_value_and_grad(
    traced: Traced, diff: Sequence[bool], name: str, with_value: bool
) -> Program:
    known, linear, out_nz, n_res = linearize_jaxpr(traced.closed, traced.n_consts, diff)
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


def _check_scalar_output(traced: Traced, fun, transform, holomorphic=False):
    out = traced.closed.out_avals[: traced.n_out]
    name = fun_name(fun)
    if len(out) != 1 or out[0].shape != ():
        got = ", ".join(a.str_short() for a in out) or "nothing"
        raise TypeError(
            f"[{transform}] {transform} requires `{name}` to return a scalar, but it returned "
            f"{got}. For a non-scalar output use ad.jacrev({name}) or ad.vjp, or reduce it "
            "to a scalar (e.g. `.sum()`)."
        )
    check_output_dtype(out[0], transform, fun, holomorphic, scalar=True)


def _value_and_grad(fun, argnums, has_aux, allow_int, with_value: bool, holomorphic=False):
    name = f"grad_{fun_name(fun)}"
    nums_for: dict[int, tuple[int, ...]] = {}  # argnums checked once per argument count

    @functools.wraps(fun, updated=())
    def value_and_grad_f(*args, **kwargs):
        nums = nums_for.get(len(args))
        if nums is None:
            nums = nums_for[len(args)] = check_argnums(argnums, len(args), "grad", fun)
        traced = trace_fun(fun, args, kwargs, nums, "grad", has_aux)
        key = (
            "grad",
            with_value,
            allow_int,
            holomorphic,
            traced.n_consts,
            traced.n_out,
            traced.key,
        )
        entry = transform_cache.get(key)
        if entry is None:  # the checks depend only on what the key holds
            diff = check_float_inputs(
                traced.closed.in_avals[traced.n_consts :], "grad", fun, allow_int, holomorphic
            )
            _check_scalar_output(traced, fun, "grad", holomorphic)
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
            if traced.has_modules:
                trees = as_parameter_dicts(trees)
            g = trees[0] if isinstance(argnums, int) else tuple(trees)
        value = results[0] if with_value else None
        if has_aux:
            aux = results[1 if with_value else 0 : n_all]
            return (value, tree_unflatten(traced.aux_tree, aux)), g
        return value, g

    return value_and_grad_f


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Callable:
    """Like :func:`grad`, but returns ``(value, gradient)`` (``((value, aux), gradient)`` with
    ``has_aux``), computed in one program.

    Example:
        >>> loss, grads = ad.value_and_grad(loss_fn)(params, x, y)
    """
    return _value_and_grad(fun, argnums, has_aux, allow_int, True, holomorphic)


def grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Callable:
    """The gradient of a scalar-valued ``fun`` with respect to the arguments ``argnums``.

    Args:
        fun: a function of arrays (or pytrees of arrays) returning a float scalar (and, with
            ``has_aux``, a pair ``(scalar, aux)``).
        argnums: an int, or a tuple of ints; gradients come back in the order asked.
        has_aux: return ``(gradient, aux)``.
        holomorphic: ``fun`` is a holomorphic function of complex inputs with a complex
            output; the gradient is then its complex derivative ``f'(z)``.
        allow_int: allow integer inputs among ``argnums``; their gradient is zero.

    Complex inputs follow JAX's convention: for a real-valued ``fun`` of ``z = x + iy`` the
    gradient is ``df/dx - i df/dy`` (``mx.grad`` returns its conjugate, ``df/dx + i df/dy``).

    Returns:
        A function with ``fun``'s signature returning the gradient, shaped like the argument
        (a tuple of them for tuple ``argnums``). Composes: ``grad(grad(f))`` is the second
        derivative.

    Example:
        >>> df = ad.grad(lambda x: anp.sin(x) ** 3 * anp.exp(x))
        >>> ad.grad(ad.grad(df))(mx.array(0.5))  # third derivative
    """
    vg = _value_and_grad(fun, argnums, has_aux, allow_int, False, holomorphic)

    @functools.wraps(fun, updated=())
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
    diff = [is_inexact(a.dtype) for a in traced.closed.in_avals[traced.n_consts :]]
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
                ct_aval.dtype != aval.dtype and is_inexact(aval.dtype)
            ):
                raise TypeError(
                    f"[vjp] the cotangent {ct_aval.str_short()} passed to vjp_fn of `{name}` "
                    f"does not match the output type {aval.str_short()}; cotangents must have "
                    "the shape and dtype of the output"
                )
            if nz:
                cts.append(leaf_value(ct))
        grads = entry.bwd(*res, *cts) if sum(diff) else []
        return tuple(
            as_parameter_dicts(tree_unflatten(traced.in_tree, _fill_grads(traced, diff, grads)))
        )

    out = tree_unflatten(traced.out_tree, outs)
    if has_aux:
        return out, vjp_fn, tree_unflatten(traced.aux_tree, results[traced.n_out : n_all])
    return out, vjp_fn

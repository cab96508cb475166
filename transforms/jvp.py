"""Forward-mode differentiation: ``jvp_jaxpr`` and one JVP rule per primitive.

Rule contract: ``jvp_rules[prim](primals, tangents, **params) -> (primal_out, tangent_out)``
where tangents may be :class:`Zero` (symbolic; no equations are emitted for it) and the result
tangent may be Zero too (lists of both for a primitive with several results). Rules are written with ``autodiff.lax`` on traced values, so their
output is IR that can be differentiated again. Tangents of integer and boolean values are
always Zero; complex values have complex tangents (the rules of holomorphic primitives are
their real formulas; abs, real, imag and conj follow JAX). Conventions at kinks follow JAX: ``abs'(0) = 1``, ``max``/``min`` split the
tangent equally between tied operands, ``sqrt'(0) = inf``.

This module holds the rule tables, the builders most rules are written with (``defjvp``,
``deflinear``, ``defzero``) and the transform; the rules of the core primitives are in
``transforms/jvp_core.py``, registered when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autodiff import lax
from autodiff import primitives as P
from autodiff.dtypes import is_inexact
from autodiff.ir import ClosedJaxpr, Literal, ShapedArray
from autodiff.tracing import aval_of, bind, read, trace_flat
from autodiff.transforms import optimize


class Zero:
    """A symbolic zero tangent (or cotangent) of the given aval."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self):
        return f"Zero({self.aval.str_short()})"


def instantiate(t):
    """Materialise a symbolic zero as an array (a literal for rank 0)."""
    if type(t) is Zero:
        return lax.zeros_like_aval(t.aval)
    return t


def add_tangents(a, b):
    if type(a) is Zero:
        return b
    if type(b) is Zero:
        return a
    return lax.add(a, b)


jvp_rules: dict[P.Primitive, Callable] = {}
# Primitives with no JVP rule, and why (checked by the coverage test).
NO_JVP_RULE: dict[P.Primitive, str] = {}
# Primitives linear in some operand: exactly these need a transpose rule (the coverage test
# checks it). deflinear adds its primitives; rules written by hand declare it with
# mark_linear.
LINEAR: set[P.Primitive] = set()


def mark_linear(*prims: P.Primitive):
    """Declare primitives linear in some operand (so they need a transpose rule)."""
    LINEAR.update(prims)


def defjvp(prim: P.Primitive, *derivs: Callable | None, use_out: bool = False):
    """Elementwise rule from one function per operand: ``deriv(t, [out,] *primals)`` gives
    that operand's contribution to the output tangent; None marks a non-differentiable one."""

    def rule(primals, tangents, **params):
        out = bind(prim, *primals, **params)
        t_out = Zero(aval_of(out))
        for t, d in zip(tangents, derivs):
            if type(t) is not Zero and d is not None:
                contrib = d(t, out, *primals) if use_out else d(t, *primals)
                t_out = add_tangents(t_out, contrib)
        return out, t_out

    jvp_rules[prim] = rule


def deflinear(prim: P.Primitive, linear_argnums: Sequence[int] | None = None):
    """The primitive is linear in the operands ``linear_argnums`` (all by default): its tangent
    is the primitive applied to their tangents, the other operands held at their primals."""

    def rule(primals, tangents, **params):
        out = bind(prim, *primals, **params)
        lin = range(len(primals)) if linear_argnums is None else linear_argnums
        if all(type(tangents[i]) is Zero for i in lin):
            return out, Zero(aval_of(out))
        args = [instantiate(tangents[i]) if i in lin else primals[i] for i in range(len(primals))]
        return out, bind(prim, *args, **params)

    jvp_rules[prim] = rule
    if linear_argnums != ():
        LINEAR.add(prim)


def defzero(prim: P.Primitive):
    """Piecewise-constant primitive: the tangent is zero."""
    jvp_rules[prim] = lambda primals, tangents, **params: _zero_out(bind(prim, *primals, **params))


def _zero_out(out):
    return out, Zero(aval_of(out))


# ---------------------------------------------------------------------------------------------
# The transform


def jvp_eval(closed: ClosedJaxpr, primals: Sequence, tangents: Sequence):
    """Evaluate ``closed`` on primals and tangents (tracers, or Zero) in the current trace."""
    jaxpr = closed.jaxpr
    env = dict(zip(jaxpr.constvars, closed.consts))
    tenv: dict = {}
    env.update(zip(jaxpr.invars, primals))
    for v, t in zip(jaxpr.invars, tangents):
        if type(t) is not Zero:
            tenv[v] = t
    for eqn in jaxpr.eqns:
        ps = [read(env, a) for a in eqn.inputs]
        ts = [tenv.get(a, _ZERO) if type(a) is not Literal else _ZERO for a in eqn.inputs]
        if all(t is _ZERO for t in ts):
            outs = bind(eqn.prim, *ps, **eqn.params)
            env.update(zip(eqn.outputs, outs if eqn.prim.multiple_results else [outs]))
            continue
        ts = [Zero(a.aval) if t is _ZERO else t for a, t in zip(eqn.inputs, ts)]
        rule = jvp_rules.get(eqn.prim)
        if rule is None:
            why = NO_JVP_RULE.get(eqn.prim)
            raise NotImplementedError(
                f"jvp rule for '{eqn.prim.name}' is not implemented" + (f": {why}" if why else "")
            )
        out, t_out = rule(ps, ts, **eqn.params)
        outs, t_outs = ([out], [t_out]) if not eqn.prim.multiple_results else (out, t_out)
        for v, o, t in zip(eqn.outputs, outs, t_outs):
            env[v] = o
            if type(t) is not Zero and is_inexact(v.aval.dtype):
                tenv[v] = t
    outs = [read(env, a) for a in jaxpr.outvars]
    t_outs = [tenv.get(a, None) if type(a) is not Literal else None for a in jaxpr.outvars]
    return outs, [Zero(a.aval) if t is None else t for a, t in zip(jaxpr.outvars, t_outs)]


_ZERO = object()  # marker for "no tangent" inside jvp_eval


def jvp_jaxpr(
    closed: ClosedJaxpr, nonzeros: Sequence[bool], instantiate_outs: bool | Sequence[bool] = False
):
    """``(primals..., tangents for nonzero inputs...) -> (outs..., tangents of nonzero outs...)``.

    Returns the optimised closed jaxpr and, per output, whether its tangent is nonzero (always
    True for outputs in ``instantiate_outs``).
    """
    in_avals = closed.in_avals
    n = len(in_avals)
    t_avals = [a for a, nz in zip(in_avals, nonzeros) if nz]
    n_out = len(closed.jaxpr.outvars)
    inst = (
        [instantiate_outs] * n_out if isinstance(instantiate_outs, bool) else list(instantiate_outs)
    )

    def fun(*args):
        primals, it = args[:n], iter(args[n:])
        tangents = [next(it) if nz else Zero(a) for a, nz in zip(in_avals, nonzeros)]
        outs, t_outs = jvp_eval(closed, primals, tangents)
        t_outs = [instantiate(t) if i else t for t, i in zip(t_outs, inst)]
        out_nz = [type(t) is not Zero for t in t_outs]
        return list(outs) + [t for t in t_outs if type(t) is not Zero], out_nz

    new, out_nz = trace_flat(fun, list(in_avals) + t_avals, "jvp_jaxpr", "jvp")
    return optimize(new), out_nz


# The rules of the core primitives, which use the builders above.
from autodiff.transforms import jvp_core as _jvp_core  # noqa: E402, F401  (registers them)

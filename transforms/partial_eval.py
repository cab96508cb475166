"""Partial evaluation: split a jaxpr into the part computable from known inputs and the rest.

Applied to a JVP jaxpr with the primals known and the tangents unknown, it gives
``linearize``: a primal jaxpr ``known_ins -> (known_outs, residuals)`` and a linear jaxpr
``(residuals, unknown_ins) -> unknown_outs``. This is a syntactic pass, no tracing: an equation
is unknown iff one of its inputs is, except for primitives with a rule in
``partial_eval_rules`` (control flow), which split an equation into a known and an unknown part:
``rule(eqn, unknown_inputs) -> (known_eqns, unknown_eqns, unknown_outputs)``; the known part
defines the known outputs and any residuals the unknown part reads. Known equations with only
literal inputs (filled arrays) are recomputed on the unknown side rather than passed as
residuals.
"""

from __future__ import annotations

from collections.abc import Sequence

from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var

partial_eval_rules: dict = {}


def partial_eval_jaxpr(closed: ClosedJaxpr, unknowns: Sequence[bool], instantiate: Sequence[bool]):
    """Split ``closed`` given which inputs are unknown.

    Outputs in ``instantiate`` are always produced by the unknown side (a known value there is
    passed through as a residual). Returns ``(known, unknown, out_unknowns, num_residuals)``:
    ``known`` returns the known outputs then the residuals; ``unknown`` takes the residuals
    then the unknown inputs and returns the unknown outputs.
    """
    jaxpr = closed.jaxpr
    unknown_vars: set[Var] = {v for v, u in zip(jaxpr.invars, unknowns) if u}
    known_eqns, unknown_eqns = [], []
    for eqn in jaxpr.eqns:
        unk = [type(a) is Var and a in unknown_vars for a in eqn.inputs]
        if not any(unk):
            known_eqns.append(eqn)
            continue
        rule = partial_eval_rules.get(eqn.prim)
        if rule is None:
            unknown_eqns.append(eqn)
            unknown_vars.update(eqn.outputs)
            continue
        known_part, unknown_part, out_unk = rule(eqn, unk)
        known_eqns.extend(known_part)
        unknown_eqns.extend(unknown_part)
        unknown_vars.update(v for v, u in zip(eqn.outputs, out_unk) if u)
    out_unknowns = [
        inst or (type(a) is Var and a in unknown_vars)
        for a, inst in zip(jaxpr.outvars, instantiate)
    ]

    # Residuals: known variables the unknown side reads, except filled arrays, recomputed there.
    needed: set[Var] = set()
    for eqn in unknown_eqns:
        needed.update(a for a in eqn.inputs if type(a) is Var and a not in unknown_vars)
    needed.update(
        a
        for a, u in zip(jaxpr.outvars, out_unknowns)
        if u and type(a) is Var and a not in unknown_vars
    )
    replicated = [
        e
        for e in known_eqns
        if all(type(a) is Literal for a in e.inputs) and any(v in needed for v in e.outputs)
    ]
    replicated_out = {v for e in replicated for v in e.outputs}
    residuals = [v for v in _ordered(jaxpr, known_eqns, needed) if v not in replicated_out]

    known_outs = [a for a, u in zip(jaxpr.outvars, out_unknowns) if not u]
    known = Jaxpr(
        jaxpr.constvars,
        [v for v, u in zip(jaxpr.invars, unknowns) if not u],
        known_eqns,
        known_outs + residuals,
    )
    rename = {v: Var(v.aval) for v in residuals}
    unknown = Jaxpr(
        [],
        [rename[v] for v in residuals] + [v for v, u in zip(jaxpr.invars, unknowns) if u],
        replicated + [_renamed(e, rename) for e in unknown_eqns],
        [
            rename.get(a, a) if type(a) is Var else a
            for a, u in zip(jaxpr.outvars, out_unknowns)
            if u
        ],
    )
    return ClosedJaxpr(known, closed.consts), ClosedJaxpr(unknown, []), out_unknowns, len(residuals)


def _ordered(jaxpr: Jaxpr, known_eqns: list[Eqn], vs: set[Var]) -> list[Var]:
    """``vs`` in definition order (constvars, invars, then the known equations' outputs)."""
    order = list(jaxpr.constvars) + list(jaxpr.invars) + [v for e in known_eqns for v in e.outputs]
    return [v for v in order if v in vs]


def _renamed(eqn: Eqn, rename: dict) -> Eqn:
    if not any(type(a) is Var and a in rename for a in eqn.inputs):
        return eqn
    ins = [rename.get(a, a) if type(a) is Var else a for a in eqn.inputs]
    return Eqn(eqn.prim, ins, eqn.params, eqn.outputs)

"""Dead-code elimination: drop equations whose outputs nothing uses (all primitives are pure).

Primitives with sub-jaxprs (cond, scan, while, ...) register a rule in ``dce_rules`` that drops
their unused outputs and the inputs nothing then needs: ``rule(eqn, used_outputs) ->
(new_eqn or None, used_inputs)``.
"""

from __future__ import annotations

from autodiff.ir import Jaxpr, Literal

dce_rules: dict = {}  # prim -> rule


def dce(jaxpr: Jaxpr) -> Jaxpr:
    """Remove unused equations; invars, constvars and outvars are kept as they are."""
    live = {a for a in jaxpr.outvars if type(a) is not Literal}
    kept = []
    changed = False
    for eqn in reversed(jaxpr.eqns):
        used = [v in live for v in eqn.outputs]
        if not any(used):
            changed = True
            continue
        rule = dce_rules.get(eqn.prim)
        if rule is not None and not all(used):
            new, used_ins = rule(eqn, used)
            changed = changed or new is not eqn
            if new is None:
                continue
            eqn = new
            live.update(a for a, u in zip(eqn.inputs, used_ins) if u and type(a) is not Literal)
        else:
            live.update(a for a in eqn.inputs if type(a) is not Literal)
        kept.append(eqn)
    if not changed:
        return jaxpr
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, kept, jaxpr.outvars)


def dce_outputs(jaxpr: Jaxpr, used_outputs) -> tuple[Jaxpr, list[bool]]:
    """``jaxpr`` keeping only the outputs ``used_outputs``; returns it and which of its
    invars are still read (for the rules of sub-jaxpr primitives)."""
    outs = [a for a, u in zip(jaxpr.outvars, used_outputs) if u]
    body = dce(Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.eqns, outs))
    read = {a for e in body.eqns for a in e.inputs if type(a) is not Literal}
    read.update(a for a in outs if type(a) is not Literal)
    return body, [v in read for v in body.invars]

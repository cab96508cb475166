"""Dead-code elimination: drop equations whose outputs nothing uses (all primitives are pure)."""

from __future__ import annotations

from autodiff.ir import Jaxpr, Literal


def dce(jaxpr: Jaxpr) -> Jaxpr:
    """Remove unused equations; invars, constvars and outvars are kept as they are."""
    live = {a for a in jaxpr.outvars if type(a) is not Literal}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outputs):
            kept.append(eqn)
            live.update(a for a in eqn.inputs if type(a) is not Literal)
    if len(kept) == len(jaxpr.eqns):
        return jaxpr
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, kept, jaxpr.outvars)

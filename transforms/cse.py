"""Common-subexpression elimination: an equation identical to an earlier one (same primitive,
params and inputs; inputs sorted for commutative primitives) reuses the earlier outputs."""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.ir import Eqn, Jaxpr, Literal

COMMUTATIVE = frozenset([P.add, P.mul, P.max_, P.min_, P.eq, P.ne, P.logical_and, P.logical_or])


def _key(a):
    return a.key() if type(a) is Literal else a


def cse(jaxpr: Jaxpr) -> Jaxpr:
    env: dict = {}
    seen: dict = {}
    eqns = []
    changed = False
    for eqn in jaxpr.eqns:
        ins = [env.get(a, a) if type(a) is not Literal else a for a in eqn.inputs]
        keys = [_key(a) for a in ins]
        if eqn.prim in COMMUTATIVE:
            a, b = keys  # canonical order: variables by id, then literals
            ta, tb = type(a) is tuple, type(b) is tuple
            if (ta and not tb) or (ta == tb and (repr(a) > repr(b) if ta else id(a) > id(b))):
                keys = [b, a]
        key = (eqn.prim, tuple(keys), eqn.params)
        prev = seen.get(key)
        if prev is not None:
            env.update(zip(eqn.outputs, prev))
            changed = True
            continue
        seen[key] = eqn.outputs
        if any(a is not b for a, b in zip(ins, eqn.inputs)):
            eqn = Eqn(eqn.prim, ins, eqn.params, eqn.outputs)
        eqns.append(eqn)
    if not changed:
        return jaxpr
    outs = [env.get(a, a) if type(a) is not Literal else a for a in jaxpr.outvars]
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, outs)

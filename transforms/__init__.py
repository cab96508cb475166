"""IR -> IR transforms: jvp, partial evaluation, transpose, vmap, and the optimisation passes.

This package imports only ``autodiff.ir``, ``autodiff.primitives``, the tracing machinery
(``autodiff.tracing``, ``autodiff.lax``); constant folding has its own module (``fold.py``).
"""

from __future__ import annotations

import weakref

from autodiff.config import config
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Params, sub_jaxprs, typecheck
from autodiff.transforms.cse import cse
from autodiff.transforms.dce import dce
from autodiff.transforms.reassociate import reassociate
from autodiff.transforms.simplify import simplify

# Primitives with sub-jaxprs may rewrite their equations before the passes (the loops hoist
# loop-invariant computations out of their bodies): ``expander(eqn) -> list[Eqn] | None``.
expanders: dict = {}


def optimize_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Optimise the sub-jaxprs, then simplify, CSE, reassociate and DCE; run after every
    transform."""
    jaxpr = _expand(jaxpr)
    out = dce(cse(reassociate(simplify(jaxpr))))
    _OPTIMIZED.add(out)
    return out


_OPTIMIZED: weakref.WeakSet = weakref.WeakSet()  # jaxprs that went through optimize_jaxpr


def _optimized_sub(closed: ClosedJaxpr) -> ClosedJaxpr:
    if closed.jaxpr in _OPTIMIZED:
        return closed
    jaxpr = optimize_jaxpr(closed.jaxpr)
    return closed if jaxpr is closed.jaxpr else ClosedJaxpr(jaxpr, closed.consts)


def _expand(jaxpr: Jaxpr) -> Jaxpr:
    eqns, changed = [], False
    for eqn in jaxpr.eqns:
        if sub_jaxprs(eqn.params):
            params = {
                k: _optimized_sub(v)
                if type(v) is ClosedJaxpr
                else tuple(_optimized_sub(j) for j in v)
                if type(v) is tuple and v and type(v[0]) is ClosedJaxpr
                else v
                for k, v in eqn.params.items()
            }
            if any(params[k] is not v for k, v in eqn.params.items()):
                eqn = Eqn(eqn.prim, eqn.inputs, Params.make(params), eqn.outputs)
                changed = True
            expander = expanders.get(eqn.prim)
            new = expander(eqn) if expander is not None else None
            if new is not None:
                eqns.extend(new)
                changed = True
                continue
        eqns.append(eqn)
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, jaxpr.outvars) if changed else jaxpr


def optimize(closed: ClosedJaxpr) -> ClosedJaxpr:
    if config.typecheck:
        typecheck(closed.jaxpr)
    jaxpr = optimize_jaxpr(closed.jaxpr)
    if config.typecheck:
        typecheck(jaxpr)
    return closed if jaxpr is closed.jaxpr else ClosedJaxpr(jaxpr, closed.consts)

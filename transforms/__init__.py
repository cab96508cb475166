"""IR -> IR transforms: jvp, partial evaluation, transpose, vmap, and the optimisation passes.

This package imports only ``autodiff.ir``, ``autodiff.primitives``, the tracing machinery
(``autodiff.tracing``, ``autodiff.lax``) and the reference interpreter (for literal folding).
"""

from __future__ import annotations

from autodiff.ir import ClosedJaxpr, Jaxpr, typecheck
from transforms.cse import cse
from transforms.dce import dce
from transforms.reassociate import reassociate
from transforms.simplify import simplify

# Tests set this: every transform's output is then typechecked before and after optimisation.
TYPECHECK = False


def optimize_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Simplify, CSE, reassociate and DCE; run after every transform."""
    return dce(cse(reassociate(simplify(jaxpr))))


def optimize(closed: ClosedJaxpr) -> ClosedJaxpr:
    if TYPECHECK:
        typecheck(closed.jaxpr)
    jaxpr = optimize_jaxpr(closed.jaxpr)
    if TYPECHECK:
        typecheck(jaxpr)
    return closed if jaxpr is closed.jaxpr else ClosedJaxpr(jaxpr, closed.consts)

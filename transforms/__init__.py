"""IR -> IR transforms: jvp, partial evaluation, transpose, vmap, and the optimisation passes.

This package imports only ``autodiff.ir``, ``autodiff.primitives``, the tracing machinery
(``autodiff.tracing``, ``autodiff.lax``); constant folding has its own module (``fold.py``).
"""

from __future__ import annotations

from autodiff.config import config
from autodiff.ir import ClosedJaxpr, Jaxpr, typecheck
from autodiff.transforms.cse import cse
from autodiff.transforms.dce import dce
from autodiff.transforms.reassociate import reassociate
from autodiff.transforms.simplify import simplify


def optimize_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Simplify, CSE, reassociate and DCE; run after every transform."""
    return dce(cse(reassociate(simplify(jaxpr))))


def optimize(closed: ClosedJaxpr) -> ClosedJaxpr:
    if config.typecheck:
        typecheck(closed.jaxpr)
    jaxpr = optimize_jaxpr(closed.jaxpr)
    if config.typecheck:
        typecheck(jaxpr)
    return closed if jaxpr is closed.jaxpr else ClosedJaxpr(jaxpr, closed.consts)

"""``alpha * (a @ b) + beta * c`` -> ``mx.addmm``: a product plus a bias (forward layers), a
residual (``x + h @ w``), another product (the gradient of a weight used twice), or an update
(``w - lr * x.T @ g``)."""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn, Literal
from autodiff.ops.fused import fused_addmm_p
from autodiff.transforms.fuse.graph import KERNEL_DTYPES, Graph, Match, new_eqn


def _scaled(g: Graph, a: Atom, region: list) -> tuple[Atom, float]:
    """``(x, k)`` when ``a`` is ``k * x`` (a literal ``k``) or ``-x``; else ``(a, 1)``."""
    e = g.eqn(a, P.mul, P.neg)
    if e is not None and e.prim is P.neg:
        region.append(e)
        return e.inputs[0], -1.0
    if e is not None:
        for x, y in (e.inputs, e.inputs[::-1]):
            if type(y) is Literal and type(x) is not Literal:
                region.append(e)
                return x, float(y.val)
    return a, 1.0


def match_addmm(g: Graph, root: Eqn) -> Match | None:
    """``root`` = ``d + c``, ``c + d``, ``d - c`` or ``c - d`` with ``d`` a (scaled)
    dot_general of this root's dtype."""
    out = root.outputs[0].aval
    if out.dtype not in KERNEL_DTYPES:
        return None
    x, y = root.inputs
    sub = root.prim is P.sub
    for d_side, c_side, d_sign, c_sign in (
        (x, y, 1, -1 if sub else 1),
        (y, x, -1 if sub else 1, 1),
    ):
        if type(d_side) is Literal or type(c_side) is Literal:
            return None
        region: list = []
        a, alpha = _scaled(g, d_side, region)
        dot = g.eqn(a, P.dot_general)
        if dot is None or any(v.aval.ndim == 0 for v in dot.inputs) or dot.inputs[0] is c_side:
            continue
        region.append(dot)
        c, beta = _scaled(g, c_side, region)
        vec = g.vector(c, tmp := [])
        if vec is not None and _single_free(dot):
            c = vec
            region += tmp
        if c.aval.dtype != out.dtype:
            continue
        dn = dot.params["dimension_numbers"]
        params = {"dimension_numbers": dn, "alpha": alpha * d_sign, "beta": beta * c_sign}
        ins = [c, *dot.inputs]
        return Match(
            "addmm", root, region, ins, lambda: [new_eqn(fused_addmm_p, ins, params, root.outputs)]
        )
    return None


def _single_free(dot: Eqn) -> bool:
    """Whether the product's last axis is the only free axis of its second operand."""
    (_, yc), (_, yb) = dot.params["dimension_numbers"]
    return dot.inputs[1].aval.ndim - len(yc) - len(yb) == 1


match_addmm.roots = (P.add, P.sub)
match_addmm.needs = (P.dot_general,)

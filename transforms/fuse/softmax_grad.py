"""The softmax's derivative in reverse-mode programs, rewritten in terms of the probabilities.

Our JVP of ``p = e / S`` (``e = exp(z)``, ``S`` its sum broadcast back) transposes to

    ct_z = e * (ct_p / S - sum(p / S * ct_p))

which reads ``e`` and ``S`` again, so the softmax's ``exp`` and ``sum`` are residuals and the
forward softmax cannot become ``mx.softmax``. The same value is ``p * (ct_p - sum(p * ct_p))``
(one fewer elementwise pass, no division); written so, the backward reads only ``p``, and the
softmax rule (taken together with this one) fuses the forward. MLX has no kernel for the
softmax's derivative itself; this rewrite only makes room for the forward one.
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn, Var
from autodiff.transforms.fuse.graph import Graph, Match, finish, new_eqn, operand_pairs, terms
from autodiff.transforms.fuse.softmax import softmax_parts


def _unsigned(g: Graph, a: Atom, region: list) -> tuple[int, Atom]:
    """``(sign, b)`` with ``a = sign * b``, through negations."""
    sign = 1
    while (e := g.eqn(a, P.neg)) is not None:
        region.append(e)
        sign, a = -sign, e.inputs[0]
    return sign, a


def _over(g: Graph, a: Atom, s: Atom, region: list) -> Atom | None:
    """``x`` when ``a`` is ``x / s``."""
    e = g.eqn(a, P.div)
    if e is None or not g.same(e.inputs[1], s):
        return None
    region.append(e)
    return e.inputs[0]


def _probabilities(g: Graph, e: Atom):
    """``(p, S, axes)`` for the softmax ``p = e / S`` among the readers of ``e``."""
    for u in g.users.get(e, ()):
        if u.prim is P.div and u.inputs[0] is e:
            found = softmax_parts(g, u)
            if found is not None and type(found[2]) is not Var and found[2] == 1:
                return u.outputs[0], u.inputs[1], found[1]
    return None


def match_softmax_vjp(g: Graph, root: Eqn) -> Match | None:
    """``e * (ct / S - sum(p / S * ct))`` -> ``p * (ct - sum(p * ct))``."""
    for a, e in operand_pairs(root):
        if g.eqn(e, P.exp) is None:
            continue
        found = _probabilities(g, e)
        if found is None:
            continue
        p, s, axes = found
        region: list = []
        ts = terms(g, a, region, limit=2)
        if len(ts) != 2:
            continue
        for (s1, t1), (s2, t2) in (ts, ts[::-1]):
            sub = list(region)
            ct = _over(g, t1, s, sub)
            sp = g.spread(t2, sub) if ct is not None and s1 > 0 else None
            if sp is None or sp[1] != axes:
                continue
            sign, red = _unsigned(g, sp[0], sub)
            red = g.eqn(red, P.reduce_sum)
            if red is None or red.params["axes"] != axes:
                continue
            sub.append(red)
            sign2, m = _unsigned(g, red.inputs[0], sub)
            m = g.eqn(m, P.mul)
            if m is None or s2 * sign * sign2 > 0:
                continue
            for q, c in operand_pairs(m):
                if c is ct and _over(g, q, s, sub) is p:
                    sub.append(m)
                    return _match(root, sub, p, ct, axes)
    return None


def _match(root: Eqn, region: list, p: Atom, ct: Atom, axes) -> Match:
    shape = p.aval.shape
    keep = tuple(d for d in range(len(shape)) if d not in axes)

    def build():
        eqns = [new_eqn(P.mul, [p, ct], {})]
        eqns.append(new_eqn(P.reduce_sum, [eqns[-1].outputs[0]], {"axes": axes}))
        bc = {"shape": shape, "broadcast_dimensions": keep}
        eqns.append(new_eqn(P.broadcast_in_dim, [eqns[-1].outputs[0]], bc))
        eqns.append(new_eqn(P.sub, [ct, eqns[-1].outputs[0]], {}))
        eqns.append(new_eqn(P.mul, [p, eqns[-1].outputs[0]], {}))
        return finish(eqns, eqns[-1].outputs[0], root)

    return Match("softmax_vjp", root, region, [p, ct], build)


match_softmax_vjp.roots = (P.mul,)
match_softmax_vjp.needs = (P.exp, P.reduce_sum)

"""Softmax, log-softmax, logsumexp and cross-entropy -> ``mx.softmax``, ``mx.logsumexp``,
``mx.fast.cross_entropy``.

Softmax and log-softmax are invariant under a shift constant along their axes, so every
``x - c`` (``c`` broadcast along the axes: the stable max, ``anp``'s guarded max, any other
value) is looked through. ``logsumexp(x - c) + c`` is ``logsumexp(x)`` only with the same
``c`` added back, which the reassociated sums of our programs hold as a term somewhere in a
chain of adds and subs. In gradient programs the softmax appears scaled (``e * (k / sum e)``:
the simplifier folds the cotangent's factor into the reciprocal).
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn, Literal, ShapedArray, Var
from autodiff.ops.fused import fused_cross_entropy_p, fused_logsumexp_p, fused_softmax_p
from autodiff.transforms.fuse.graph import (
    KERNEL_DTYPES,
    Graph,
    Match,
    finish,
    new_eqn,
    operand_pairs,
    reshaped,
    signed_sum,
    terms,
)


def unshift(g: Graph, z: Atom, axes, region: list) -> Atom:
    """``x`` when ``z`` is ``x - c`` (repeatedly), ``c`` constant along ``axes``."""
    while True:
        e = g.eqn(z, P.sub)
        tmp: list = []
        if e is None or (g.spread(e.inputs[1], tmp) or (None, None))[1] != axes:
            return z
        region += [e, *tmp]
        z = e.inputs[0]


def _sum_of_exp(g: Graph, s: Atom, region: list, axes=None) -> tuple[Atom, tuple] | None:
    """``(z, axes)`` when ``s`` is ``sum(exp(z), axes)`` (through keepdims reshapes)."""
    red = g.eqn(g.keep(s, region), P.reduce_sum)
    if red is None or (axes is not None and red.params["axes"] != axes):
        return None
    ex = g.eqn(red.inputs[0], P.exp)
    if ex is None:
        return None
    region += [red, ex]
    return ex.inputs[0], red.params["axes"]


def _emit(prim, x, params, scale, root: Eqn) -> list[Eqn]:
    """``prim(x)`` times ``scale``: a number, or an atom constant along ``params["axes"]``."""
    eqns = [new_eqn(prim, [x], params)]
    out = eqns[-1].outputs[0]
    if type(scale) is not Var and scale != 1:
        k = Literal(scale, ShapedArray((), out.aval.dtype))
        eqns.append(new_eqn(P.mul, [out, k], {}))
        out = eqns[-1].outputs[0]
    elif type(scale) is Var:
        shape, axes = out.aval.shape, params["axes"]
        reduced = tuple(n for d, n in enumerate(shape) if d not in axes)
        kept = tuple(d for d in range(len(shape)) if d not in axes)
        c = reshaped(scale, reduced, eqns)
        bc = {"shape": shape, "broadcast_dimensions": kept}
        eqns.append(new_eqn(P.broadcast_in_dim, [c], bc))
        eqns.append(new_eqn(P.mul, [out, eqns[-1].outputs[0]], {}))
        out = eqns[-1].outputs[0]
    return finish(eqns, out, root)


def softmax_parts(g: Graph, root: Eqn):
    """``(x, axes, k, region)`` when ``root`` is ``k * softmax(x, axes)``: ``exp(z) / sum``,
    or ``exp(z) * (k / sum)`` (``1 / sum``, ``reciprocal(sum)``), ``z`` a shift of ``x``;
    ``k`` a number, or an atom shaped as the sum (in derivative programs: a cotangent)."""
    if root.prim not in (P.div, P.mul) or root.outputs[0].aval.dtype not in KERNEL_DTYPES:
        return None
    for e, r in operand_pairs(root):
        ex = g.eqn(e, P.exp)
        region: list = [ex]
        sp = g.spread(r, region) if ex is not None else None
        if sp is None:
            continue
        src, axes = sp
        k = 1.0
        if root.prim is P.mul:  # times k / sum (k a literal, or constant along the axes)
            inv = g.eqn(src, P.div, P.reciprocal)
            if inv is None:
                continue
            if inv.prim is P.div:
                k = g.lit(inv.inputs[0])
                k = inv.inputs[0] if k is None else k
            region.append(inv)
            src = g.keep(inv.inputs[-1], region)
        red = g.eqn(src, P.reduce_sum)
        if red is None or red.params["axes"] != axes or red.inputs[0] is not e:
            continue
        region.append(red)
        return unshift(g, ex.inputs[0], axes, region), axes, k, region
    return None


def match_softmax(g: Graph, root: Eqn) -> Match | None:
    """``k * softmax(x)`` in any of ``softmax_parts``' forms -> ``k * mx.softmax(x)``."""
    found = softmax_parts(g, root)
    if found is None:
        return None
    x, axes, k, region = found
    params = {"axes": axes, "precise": False}
    ins = [x, k] if type(k) is Var else [x]
    return Match("softmax", root, region, ins, lambda: _emit(fused_softmax_p, x, params, k, root))


match_softmax.roots = (P.div, P.mul)
match_softmax.needs = (P.exp, P.reduce_sum)


def match_log_softmax(g: Graph, root: Eqn) -> Match | None:
    """``z - log(sum(exp(z)))`` or ``z - logsumexp(z)`` (broadcast back) ->
    ``x - mx.logsumexp(x)``, ``x`` before the shifts of ``z``."""
    out = root.outputs[0].aval
    z, b = root.inputs
    region: list = []
    sp = g.spread(b, region) if out.dtype in KERNEL_DTYPES else None
    if sp is None:
        return None
    axes = sp[1]
    lg = g.eqn(sp[0], P.log)
    if lg is not None:  # z - log(sum(exp(z)))
        found = _sum_of_exp(g, lg.inputs[0], region, axes)
        if found is None or found[0] is not z:
            return None
        region.append(lg)
    else:  # z - logsumexp(z), the logsumexp in any of _lse_terms' forms
        e = g.defs.get(sp[0])
        found = _lse_terms(g, e, region) if e is not None and e.prim in (P.add, P.log) else None
        if found is None or found[:3] != (1, z, axes) or found[3]:
            return None
    x = unshift(g, z, axes, region)
    keep = tuple(d for d in range(out.ndim) if d not in axes)

    def build():
        eqns = [new_eqn(fused_logsumexp_p, [x], {"axes": axes})]
        eqns.append(
            new_eqn(
                P.broadcast_in_dim,
                [eqns[-1].outputs[0]],
                {"shape": out.shape, "broadcast_dimensions": keep},
            )
        )
        eqns.append(new_eqn(P.sub, [x, eqns[-1].outputs[0]], {}))
        return finish(eqns, eqns[-1].outputs[0], root)

    return Match("log_softmax", root, region, [x], build)


match_log_softmax.roots = (P.sub,)
match_log_softmax.needs = (P.exp, P.log)


def _lse_terms(g: Graph, root: Eqn, region: list):
    """``(sign, x, axes, rest)``: the sum at ``root`` is ``sign * logsumexp(x) + rest``."""
    if root.outputs[0].aval.dtype not in KERNEL_DTYPES:
        return None
    ts = terms(g, root.outputs[0], region)
    for i, (sign, t) in enumerate(ts):
        lg = g.eqn(g.keep(t, []), P.log)
        sub: list = []
        found = _sum_of_exp(g, lg.inputs[0], sub) if lg is not None else None
        if found is None:
            continue
        z, axes = found
        rest = ts[:i] + ts[i + 1 :]
        sh = g.eqn(z, P.sub)
        sp = g.spread(sh.inputs[1], sub) if sh is not None else None
        if sp is not None and sp[1] == axes:
            for j, (s2, c) in enumerate(rest):
                if s2 == sign and g.keep(c, []) is sp[0]:
                    region += [lg, *sub, sh]
                    return sign, sh.inputs[0], axes, rest[:j] + rest[j + 1 :]
        region += [lg, *sub]
        return sign, z, axes, rest
    return None


def match_logsumexp(g: Graph, root: Eqn) -> Match | None:
    """``log(sum(exp(x - c))) + c`` (terms of a longer sum) -> ``mx.logsumexp(x)``."""
    region: list = []
    if root.prim is P.log:
        found = None
        if root.outputs[0].aval.dtype in KERNEL_DTYPES:
            zx = _sum_of_exp(g, root.inputs[0], region)
            found = (1, zx[0], zx[1], []) if zx is not None else None
    else:
        found = _lse_terms(g, root, region)
    if found is None:
        return None
    sign, x, axes, rest = found
    if sign < 0 and not rest:
        return None

    def build():
        eqns = [new_eqn(fused_logsumexp_p, [x], {"axes": axes})]
        lse = reshaped(eqns[-1].outputs[0], root.outputs[0].aval.shape, eqns)
        if sign < 0:  # -lse + rest = rest[0] + ... - lse
            (s0, t0), more = rest[0], rest[1:]
            first = t0 if s0 > 0 else None
            if first is None:
                eqns.append(new_eqn(P.neg, [t0], {}))
                first = eqns[-1].outputs[0]
            out = signed_sum(first, [*more, (-1, lse)], eqns)
        else:
            out = signed_sum(lse, rest, eqns)
        return finish(eqns, out, root)

    return Match("logsumexp", root, region, [x] + [t for _, t in rest], build)


match_logsumexp.roots = (P.add, P.sub, P.log)
match_logsumexp.needs = (P.exp, P.log)


def _index(g: Graph, i: Atom, n: int, region: list) -> Atom:
    """``i`` before ``where(i < 0, i + n, i)`` (negative indices counted from the end)."""
    e = g.eqn(i, P.select)
    if e is None:
        return i
    lt = g.eqn(e.inputs[0], P.lt)
    ad = g.eqn(e.inputs[1], P.add)
    j = e.inputs[2]
    if lt is None or ad is None or lt.inputs[0] is not j or g.lit(lt.inputs[1]) != 0:
        return i
    if ad.inputs[0] is not j or g.lit(ad.inputs[1]) != n:
        return i
    region += [e, lt, ad]
    return j


def match_cross_entropy(g: Graph, root: Eqn) -> Match | None:
    """``logsumexp(x) - take_along_axis(x, targets[..., None], -1)[..., 0]`` (float32) ->
    ``mx.fast.cross_entropy(x, targets)``; ``x`` seen through shifts (both terms shift)."""
    out = root.outputs[0].aval
    region: list = []
    found = _lse_terms(g, root, region) if out.dtype == "float32" else None
    if not found or found[0] < 0:
        return None
    _, x, axes, rest = found
    last = x.aval.ndim - 1
    if axes != (last,):
        return None
    for i, (sign, t) in enumerate(rest):
        tmp: list = []
        take = g.eqn(g.keep(t, tmp), P.take_along_axis)
        if sign > 0 or take is None or take.inputs[0] is not x or take.params["axis"] != last:
            continue
        region += tmp
        targets = g.keep(_index(g, take.inputs[1], x.aval.shape[-1], region), region)
        if targets.aval.shape != x.aval.shape[:-1] or targets.aval.dtype != "int32":
            return None
        region.append(take)
        logits = unshift(g, x, axes, region)
        others = rest[:i] + rest[i + 1 :]

        def build():
            eqns = [new_eqn(fused_cross_entropy_p, [logits, targets], {})]
            ce = reshaped(eqns[-1].outputs[0], out.shape, eqns)
            return finish(eqns, signed_sum(ce, others, eqns), root)

        return Match("cross_entropy", root, region, [logits, targets], build)
    return None


match_cross_entropy.roots = (P.add, P.sub)
match_cross_entropy.needs = (P.take_along_axis, P.log)

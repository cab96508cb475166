"""Layer norm and RMS norm over the last axis -> ``mx.fast.layer_norm`` / ``rms_norm``.

Recognised: ``n = xc * rsqrt(v + eps)`` or ``xc / sqrt(v + eps)``, with ``v`` the mean of
``xc**2`` (``square``, ``pow 2`` or ``xc * xc``; the mean a sum times ``1/n`` or over ``n``),
``xc = x - mean(x)`` for layer norm and ``xc = x`` for RMS norm; then ``* w`` and ``+ b`` with
vectors of the last axis, each optional. The dtypes are those of ``anp.fast``'s composites
(MLX's own reference math): float32 throughout, or a float16/bfloat16 ``x`` converted to
float32 for the normalisation and back before the affine part, which the kernel does alike.
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn
from autodiff.ops.fused import fused_layer_norm_p, fused_rms_norm_p
from autodiff.transforms.fuse.graph import KERNEL_DTYPES, Graph, Match, new_eqn, operand_pairs


def _affine(g: Graph, root: Eqn, region: list):
    """``(y, w, b)`` with ``root`` = ``y * w + b`` (``w``, ``b`` vectors or None)."""
    y, w, b = root.outputs[0], None, None
    for prim in (P.add, P.mul):
        e = g.eqn(y, prim)
        if e is None or (e is not root and g.uses.get(y, 0) != 1):
            continue
        for u, v in operand_pairs(e):
            tmp: list = []
            vec = g.vector(v, tmp)
            if vec is not None:
                region += [e, *tmp]
                y = u
                if prim is P.add:
                    b = vec
                else:
                    w = vec
                break
    return y, w, b


def _mean_last(g: Graph, a: Atom, region: list) -> Atom | None:
    """``x`` when ``a`` is the mean of ``x`` over its last axis (keepdims or not)."""
    e = g.eqn(g.keep(a, region), P.mul, P.div)
    if e is None:
        return None
    red = g.eqn(e.inputs[0], P.reduce_sum)
    k = g.lit(e.inputs[1])
    if red is None or k is None:
        return None
    x = red.inputs[0]
    n = x.aval.shape[-1] if x.aval.ndim else 0
    if red.params["axes"] != (x.aval.ndim - 1,) or not n:
        return None
    if abs((k * n if e.prim is P.mul else k / n) - 1) > 1e-6:
        return None
    region += [e, red]
    return x


def _square_of(g: Graph, a: Atom, region: list) -> Atom | None:
    e = g.eqn(a, P.square, P.pow_, P.mul)
    if e is None:
        return None
    if e.prim is P.square or (e.prim is P.pow_ and g.lit(e.inputs[1]) == 2):
        region.append(e)
        return e.inputs[0]
    if e.prim is P.mul and e.inputs[0] is e.inputs[1]:
        region.append(e)
        return e.inputs[0]
    return None


def _normalised(g: Graph, n: Atom, region: list):
    """``(xc, eps)`` when ``n`` is ``xc * rsqrt(mean(xc**2) + eps)`` (or over ``sqrt``)."""
    e = g.eqn(n, P.mul, P.div)
    if e is None:
        return None
    last = n.aval.ndim - 1
    for xc, r in operand_pairs(e):
        tmp: list = [e]
        sp = g.spread(r, tmp)
        if sp is None or sp[1] != (last,):
            continue
        f = g.eqn(sp[0], P.rsqrt if e.prim is P.mul else P.sqrt)
        ad = g.eqn(g.keep(f.inputs[0], tmp), P.add) if f is not None else None
        if ad is None:
            continue
        tmp += [f, ad]
        for v, eps in operand_pairs(ad):
            k = g.lit(eps)
            t2: list = []
            sq = _mean_last(g, v, t2)
            if k is None or sq is None or not g.same(_square_of(g, sq, t2), xc):
                continue
            region += tmp + t2
            return xc, float(k)
    return None


def _norm(g: Graph, root: Eqn, centred: bool) -> Match | None:
    out = root.outputs[0].aval
    if out.dtype not in KERNEL_DTYPES or out.ndim == 0:
        return None
    region: list = []
    y, w, b = _affine(g, root, region)
    if not centred and b is not None:
        return None
    cv = g.eqn(y, P.convert)
    if cv is not None:
        region.append(cv)
        y = cv.inputs[0]
    found = _normalised(g, y, region) if y.aval.dtype == "float32" else None
    if found is None:
        return None
    x, eps = found
    if centred:
        sb = g.eqn(x, P.sub)
        tmp: list = []
        sp = g.spread(sb.inputs[1], tmp) if sb is not None else None
        if (
            sp is None
            or sp[1] != (x.aval.ndim - 1,)
            or _mean_last(g, sp[0], tmp) is not sb.inputs[0]
        ):
            return None
        region += [sb, *tmp]
        x = sb.inputs[0]
    if cv is not None:  # float16/bfloat16 in, normalised in float32, converted back
        cx = g.eqn(x, P.convert)
        if cx is None or cx.inputs[0].aval.dtype != out.dtype:
            return None
        region.append(cx)
        x = cx.inputs[0]
    if x.aval != out or any(v is not None and v.aval.dtype != out.dtype for v in (w, b)):
        return None
    vecs = [v for v in (w, b) if v is not None]
    if centred:
        prim, params = (
            fused_layer_norm_p,
            {"eps": eps, "weight": w is not None, "bias": b is not None},
        )
    else:
        prim, params = fused_rms_norm_p, {"eps": eps, "weight": w is not None}
    ins = [x, *vecs]
    name = "layer_norm" if centred else "rms_norm"
    return Match(name, root, region, ins, lambda: [new_eqn(prim, ins, params, root.outputs)])


def match_layer_norm(g: Graph, root: Eqn) -> Match | None:
    """``(x - mean) * rsqrt(var + eps) [* w] [+ b]`` -> ``mx.fast.layer_norm``."""
    return _norm(g, root, True)


def match_rms_norm(g: Graph, root: Eqn) -> Match | None:
    """``x * rsqrt(mean(x**2) + eps) [* w]`` -> ``mx.fast.rms_norm``."""
    return _norm(g, root, False)


match_layer_norm.roots = match_rms_norm.roots = (P.add, P.mul, P.div, P.convert)
match_layer_norm.needs = match_rms_norm.needs = (P.reduce_sum,)

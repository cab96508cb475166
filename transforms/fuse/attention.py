"""Attention -> ``mx.fast.scaled_dot_product_attention``.

Recognised: ``softmax(s [masked]) @ v`` with ``s = (q * a) @ (k * b).T * c`` (the scales
literal, any of them absent; ``/ c`` too), the transpose of ``k`` written any way (``.T``,
``swapaxes``, ``transpose``, or none: a dot_general contracting both last axes, as einsum
gives), the softmax in any of ``softmax_parts``' forms (so ``anp.softmax``, ``mx.softmax``,
``exp / sum`` with or without the max subtracted), in float32, or float16/bfloat16 with the
scores converted to float32 for the softmax and the probabilities back (as ``anp.fast``'s
composite and the kernel do). Masks: ``where(m, s, lowest)`` (``where(m, s, -inf)`` where
every row keeps a key; ``where(~m, ..)`` written the other way round too) and ``s + m``; a
constant mask equal to the lower-right causal one becomes ``mask="causal"``.

Any number of leading batch axes: ``(T, D)``, ``(B, T, D)``, ``(B, H, T, D)`` and more are
reshaped to the kernel's ``(B, N, T, D)``. Not recognised: grouped-query attention (``k``, ``v``
broadcast over query heads) and attention sinks.
"""

from __future__ import annotations

import math

import numpy as np

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn, Var
from autodiff.ops.fused import fused_sdpa_p
from autodiff.transforms.fuse.graph import (
    KERNEL_DTYPES,
    Graph,
    Match,
    finish,
    new_eqn,
    operand_pairs,
    reshaped,
)
from autodiff.transforms.fuse.softmax import softmax_parts

_LOWEST = {"float32": float(np.finfo(np.float32).min), "float16": -65504.0}
_LOWEST["bfloat16"] = -3.3895313892515355e38


def _operand(g: Graph, a: Atom, batch, contract, kind: str, region: list):
    """``(base, scale, perm)``: ``a`` is ``base`` times literal scales, transposed, and
    ``transpose(base, perm)`` lays the dot_general's ``batch`` and ``contract`` axes (in
    ``a``'s numbering) and its one free axis out as ``(*batch, free, contract)`` (``kind``
    "rows") or ``(*batch, contract, free)`` ("cols"). The deepest base needing no transpose,
    else the deepest; None if the layout is not one of these."""
    scale, dmap, seen, found = 1.0, list(range(a.aval.ndim)), [], []
    for step in range(5):
        free = [dmap[d] for d in range(len(dmap)) if d not in batch + contract]
        if len(free) == 1 and len(contract) == 1:
            b, c = [dmap[d] for d in batch], [dmap[contract[0]]]
            found.append(
                (a, scale, len(seen), tuple(b + (free + c if kind == "rows" else c + free)))
            )
        e = g.eqn(a, P.mul, P.transpose) if step < 4 else None
        if e is None:
            break
        if e.prim is P.transpose:
            perm = e.params["permutation"]
            dmap = [perm[d] for d in dmap]
            a = e.inputs[0]
        else:
            lit = [(x, g.lit(y)) for x, y in operand_pairs(e) if g.lit(y) is not None]
            if not lit or g.lit(lit[0][0]) is not None:
                break
            a, k = lit[0]
            scale *= k
        seen.append(e)
    if not found:
        return None
    plain = [f for f in found if f[3] == tuple(range(len(f[3])))]
    a, scale, n, perm = (plain or found)[-1]
    region += seen[:n]
    return a, scale, perm


def _laid_out(a: Atom, perm: tuple, nb: int, eqns: list) -> Atom:
    """``a`` transposed by ``perm`` and reshaped to the kernel's ``(B, N, T, D)``."""
    if perm != tuple(range(len(perm))):
        eqns.append(new_eqn(P.transpose, [a], {"permutation": perm}))
        a = eqns[-1].outputs[0]
    return reshaped(a, _to4(a.aval.shape, nb), eqns)


def _grouped(g: Graph, a: Atom, perm: tuple, region: list):
    """``(k, perm4)`` when ``transpose(a, perm)``, laid out as ``(B, N_kv, rep, T, D)``, is
    ``transpose(k, perm4)`` of shape ``(B, N_kv, T, D)`` broadcast over the ``rep`` axis:
    grouped-query attention, which the kernel takes untiled."""
    e = g.eqn(a, P.broadcast_in_dim)
    if e is None or len(perm) != 5 or type(e.inputs[0]) is not Var:
        return None
    tmp = [e]
    src, dims, rep = e.inputs[0], e.params["broadcast_dimensions"], perm[2]
    if dims == tuple(range(5)) and src.aval.shape[rep] == 1:
        cur, p = src, list(perm)
        while (t := g.eqn(cur, P.transpose)) is not None:  # the transpose of k, under it
            p = [t.params["permutation"][i] for i in p]
            cur = t.inputs[0]
            tmp.append(t)
        ex = g.eqn(cur, P.expand_dims)
        if ex is None or ex.params["dimensions"] != (p[2],):
            return None
        tmp.append(ex)
        k, j = ex.inputs[0], p[2]
        perm4 = tuple(c - (c > j) for c in p if c != j)
    elif rep not in dims and len(dims) == 4:
        k = src
        perm4 = tuple(dims.index(d) for d in perm if d != rep)
    else:
        return None
    region += tmp
    return k, perm4


def _shape(a: Atom, perm: tuple) -> tuple:
    return tuple(a.aval.shape[i] for i in perm)


def _scores(g: Graph, s: Atom, nb: int, region: list):
    """``((q, q_perm), (k, k_perm), scale)`` when ``s`` is ``scale * q @ k.T`` over ``nb``
    leading batch axes (``_operand``'s layouts)."""
    post = 1.0
    for _ in range(2):
        e = g.eqn(s, P.mul, P.div)
        if e is None:
            break
        if e.prim is P.div:
            k = g.lit(e.inputs[1])
            if k is None or g.lit(e.inputs[0]) is not None:
                break
            s, post = e.inputs[0], post / k
        else:
            pair = [(x, g.lit(y)) for x, y in operand_pairs(e) if g.lit(y) is not None]
            if not pair or g.lit(pair[0][0]) is not None:
                break
            s, post = pair[0][0], post * pair[0][1]
        region.append(e)
    dot = g.eqn(s, P.dot_general)
    if dot is None:
        return None
    (lc, rc), (lb, rb) = dot.params["dimension_numbers"]
    batch, r = tuple(range(nb)), nb + 2
    if lb != batch or dot.inputs[0].aval.ndim != r:
        return None
    qs = _operand(g, dot.inputs[0], lb, lc, "rows", region)
    ks = _operand(g, dot.inputs[1], rb, rc, "rows", region)
    if qs is None or ks is None:
        return None
    (q, qs, qp), (k, ks, kp) = qs, ks
    region.append(dot)
    return (q, qp), (k, kp), qs * ks * post


def _causal(m: np.ndarray, additive: bool) -> bool:
    """Whether the constant mask ``m`` (..., Tq, Tk) is the lower-right causal mask."""
    if m.ndim < 2:
        return False
    tq, tk = m.shape[-2:]
    keep = np.arange(tk)[None] <= np.arange(tq)[:, None] + (tk - tq)
    if not additive:
        return bool(np.all(m == keep))
    return bool(np.all(np.where(keep, m == 0, m <= -1e30)))


def _mask(g: Graph, x: Atom, nb: int, region: list):
    """``(scores, mask, mask_kind, negate)`` for the (possibly masked) scores ``x``."""
    e = g.eqn(x, P.select, P.add)
    if e is not None and e.prim is P.select:
        pred, on_t, on_f = e.inputs
        for scores, fill, negate in ((on_t, on_f, False), (on_f, on_t, True)):
            v = g.lit(fill)
            if v is None or g.lit(scores) is not None or pred.aval.shape != x.aval.shape:
                continue
            lowest = _LOWEST[x.aval.dtype]
            src = _source(g, pred)
            value = g.const(src)
            if value is not None and negate:
                value = value == 0
            if v != lowest and not (v == -math.inf and _keeps_a_key(value)):
                return None
            region.append(e)
            if value is not None and _causal(value, False):
                return scores, None, "causal", False
            return scores, pred, "array", negate
        return None
    if e is not None:
        for scores, m in operand_pairs(e):
            tmp: list = []
            if _scores(g, scores, nb, tmp) is None:
                continue
            region.append(e)
            if g.lit(m) is not None:  # the same number added to every score: no mask
                return scores, None, None, False
            value = g.const(_source(g, m))
            if value is not None and _causal(value, True):
                return scores, None, "causal", False
            return scores, m, "array", False
    return x, None, None, False


def _source(g: Graph, a: Atom) -> Atom:
    """``a`` before a broadcast that only adds leading axes or stretches axes of size 1."""
    e = g.eqn(a, P.broadcast_in_dim)
    if e is None or type(e.inputs[0]) is not type(a):
        return a
    src, shape = e.inputs[0], e.params["shape"]
    n = len(shape)
    if e.params["broadcast_dimensions"] != tuple(range(n - src.aval.ndim, n)):
        return a
    return src


def _keeps_a_key(value) -> bool:
    return value is not None and value.size > 0 and bool(np.all(np.any(value, axis=-1)))


def _to4(shape: tuple, nb: int) -> tuple:
    """The kernel's ``(B, N, T, D)`` for ``(*batch, T, D)``."""
    batch, rest = shape[:nb], shape[nb:]
    if nb == 0:
        return (1, 1, *rest)
    if nb == 1:
        return (batch[0], 1, *rest)
    return (math.prod(batch[:-1]), batch[-1], *rest)


def match_sdpa(g: Graph, root: Eqn) -> Match | None:
    """``softmax(scale * q @ k.T [+ mask]) @ v`` -> ``mx.fast.scaled_dot_product_attention``."""
    out = root.outputs[0].aval
    if out.dtype not in KERNEL_DTYPES or out.ndim < 2:
        return None
    r, nb = out.ndim, out.ndim - 2
    batch = tuple(range(nb))
    p, vop = root.inputs
    (lc, rc), (lb, rb) = root.params["dimension_numbers"]
    if p.aval.ndim != r or lb != batch or lc != (r - 1,):
        return None
    region: list = []
    found = _operand(g, vop, rb, rc, "cols", region)
    if found is None or found[1] != 1:
        return None
    v, _, vp = found
    cv = g.eqn(p, P.convert)
    if cv is not None:
        region.append(cv)
        p = cv.inputs[0]
    sm = g.defs.get(p)
    found = softmax_parts(g, sm) if sm is not None else None
    if found is None or found[1] != (r - 1,) or type(found[2]) is Var or found[2] != 1:
        return None
    x, _, _, sm_region = found
    region += [sm, *sm_region]
    if cv is not None:  # half precision: scores converted to float32 for the softmax
        cx = g.eqn(x, P.convert)
        if cx is None or cx.inputs[0].aval.dtype != out.dtype:
            return None
        region.append(cx)
        x = cx.inputs[0]
    if x.aval.dtype != out.dtype:
        return None
    masked = _mask(g, x, nb, region)
    if masked is None:
        return None
    scores, mask, kind, negate = masked
    qk = _scores(g, scores, nb, region)
    if qk is None:
        return None
    (q, qp), (k, kp), scale = qk
    if not q.aval.dtype == k.aval.dtype == v.aval.dtype == out.dtype:
        return None
    qsh, ksh, vsh = _shape(q, qp), _shape(k, kp), _shape(v, vp)
    if ksh[:-1] != vsh[:-1] or qsh[-1] != ksh[-1] or qsh[:-1] != out.shape[:-1]:
        return None
    group: list = []
    kg, vg = _grouped(g, k, kp, group), _grouped(g, v, vp, group)
    if kg is not None and vg is not None:  # q: (B, N_kv, rep, Tq, D) -> (B, N_q, Tq, D)
        region += group
        b, n, rep = qsh[:3]
        (k, kp), (v, vp) = kg, vg
        merged = g.eqn(q, P.reshape) if qp == tuple(range(5)) else None
        if merged is not None and merged.inputs[0].aval.shape == (b, n * rep) + qsh[3:]:
            region.append(merged)  # the queries as they were before being grouped
            q, qp = merged.inputs[0], (0, 1, 2, 3)
            sc = g.eqn(q, P.mul)
            lit = [(x, g.lit(y)) for x, y in operand_pairs(sc)] if sc is not None else []
            lit = [(x, k_) for x, k_ in lit if k_ is not None and g.lit(x) is None]
            if lit:
                region.append(sc)
                q, scale = lit[0][0], scale * lit[0][1]
    ins = [q, k, v] + ([mask] if mask is not None else [])

    def heads(a: Atom, perm: tuple, eqns: list) -> Atom:
        """``a`` in the kernel's layout (queries and masks of grouped heads merged)."""
        if kg is None or vg is None:
            return _laid_out(a, perm, nb, eqns)
        if perm != tuple(range(len(perm))):
            eqns.append(new_eqn(P.transpose, [a], {"permutation": perm}))
            a = eqns[-1].outputs[0]
        return reshaped(a, (b, n * rep) + a.aval.shape[3:], eqns) if a.aval.ndim == 5 else a

    def build():
        eqns: list = []
        q4, k4, v4 = (heads(a, p, eqns) for a, p in ((q, qp), (k, kp), (v, vp)))
        extra = []
        if mask is not None:
            m = mask
            if negate:
                eqns.append(new_eqn(P.logical_not, [m], {}))
                m = eqns[-1].outputs[0]
            src = _source(g, m) if not negate else m
            if src.aval.ndim <= 2 or (nb == 2 and src.aval.ndim <= 4):
                m = src
            else:
                m = heads(m, tuple(range(m.aval.ndim)), eqns)
            extra = [m]
        params = {"scale": float(np.float32(scale)), "mask_kind": kind}
        eqns.append(new_eqn(fused_sdpa_p, [q4, k4, v4, *extra], params))
        return finish(eqns, eqns[-1].outputs[0], root)

    return Match("sdpa", root, region, ins, build)


match_sdpa.roots = (P.dot_general,)
match_sdpa.needs = (P.exp, P.reduce_sum)

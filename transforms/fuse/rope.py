"""Rotary positional encoding -> ``mx.fast.rope``.

Recognised: the math of ``mx.fast.rope`` as ``anp.fast.rope`` (MLX's reference path) writes
it, for an integer offset: feature pairs ``(x1, x2)`` (halves of the first ``dims`` features,
or their even and odd features when ``traditional``) rotated by tables ``C = cos(theta)``,
``S = sin(theta)`` of shape ``(T, dims/2)``::

    o1 = x1 * C - x2 * S,   o2 = x1 * S + x2 * C

reassembled by ``concatenate`` (interleaved by ``stack`` and ``reshape`` when traditional),
the features after ``dims`` passed through. The tables are constants of the program (MLX
computes them eagerly), and ``base``, ``scale`` and ``offset`` are read back from their values
and checked by recomputing them as the kernel's reference does; a table that is not such a
RoPE table (custom ``freqs``, another formula) is not rewritten.

The derivative programs hold the transposed rotation ``o1 = x1 * C + x2 * S``,
``o2 = x2 * C - x1 * S`` summed back through ``pad``s: a RoPE by ``-theta``, which is
``mx.fast.rope`` with ``-scale``.
"""

from __future__ import annotations

import numpy as np

from autodiff import primitives as P
from autodiff.ir import Atom, Eqn
from autodiff.ops.fused import fused_rope_p
from autodiff.transforms.fuse.graph import KERNEL_DTYPES, Graph, Match, new_eqn, terms

_TOL = {"float32": 2e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


def _slice_last(g: Graph, a: Atom, region: list):
    """``(x, start, stop, step)`` when ``a`` is a slice of ``x`` along its last axis only; the
    even or odd features of a slice ``x[..., :dims]`` taken as ``reshape(.., (dims/2, 2))``,
    ``[..., j]`` (as the transpose of a stack gives them) count as ``x[..., j:dims:2]``."""
    e = g.eqn(a, P.slice_)
    if e is None:
        return _paired(g, a, region)
    x = e.inputs[0]
    start, stop, step = (e.params[k] for k in ("start_indices", "limit_indices", "strides"))
    n = x.aval.ndim
    if any((start[d], stop[d], step[d]) != (0, x.aval.shape[d], 1) for d in range(n - 1)):
        return None
    region.append(e)
    return x, start[-1], stop[-1], step[-1]


def _paired(g: Graph, a: Atom, region: list):
    sq = g.eqn(a, P.squeeze)
    n = a.aval.ndim
    if sq is None or sq.params["dimensions"] != (n,):
        return None
    tmp = [sq]
    sl = _slice_last(g, sq.inputs[0], tmp)
    rs = g.eqn(sl[0], P.reshape) if sl is not None and sl[3] == 1 and sl[2] == sl[1] + 1 else None
    if rs is None or rs.outputs[0].aval.shape != a.aval.shape + (2,):
        return None
    tmp.append(rs)
    whole = _slice_last(g, rs.inputs[0], tmp)
    if whole is None or whole[1] != 0 or whole[3] != 1:
        whole = (rs.inputs[0], 0, rs.inputs[0].aval.shape[-1], 1)
    region += tmp
    return whole[0], sl[1], whole[2], 2


def _table(g: Graph, a: Atom, region: list):
    """The constant ``(T, half)`` table ``a`` broadcasts along its leading axes."""
    e = g.eqn(a, P.broadcast_in_dim)
    n = a.aval.ndim
    if e is None or e.params["broadcast_dimensions"] != (n - 2, n - 1):
        return None
    value = g.const(e.inputs[0])
    if value is None or value.shape != a.aval.shape[-2:]:
        return None
    region.append(e)
    return e.inputs[0]


def _products(g: Graph, o: Atom, region: list) -> dict | None:
    """``{x_part: (sign, table)}`` for ``o = ± x_a * T_a ± x_b * T_b``."""
    ts = terms(g, o, region, limit=2)
    out = {}
    for sign, t in ts:
        m = g.eqn(t, P.mul)
        if m is None:
            return None
        for xp, tb in (m.inputs, m.inputs[::-1]):
            tv = _table(g, tb, region)
            if tv is not None:
                out[xp] = (sign, tv)
                region.append(m)
                break
        else:
            return None
    return out if len(out) == 2 else None


def _rotation(g: Graph, o1: Atom, o2: Atom, region: list):
    """``(x, dims, traditional, sign, C, S)`` for the rotated pair ``(o1, o2)``."""
    p1, p2 = _products(g, o1, region), _products(g, o2, region)
    if p1 is None or p2 is None or set(p1) != set(p2):
        return None
    sl = {xp: _slice_last(g, xp, region) for xp in p1}
    if any(s is None for s in sl.values()):
        return None
    (a, sa), (b, sb) = sorted(sl.items(), key=lambda kv: kv[1][1])  # x1 starts first
    if sa[0] is not sb[0]:
        return None
    x, half = sa[0], a.aval.shape[-1]
    if b.aval.shape[-1] != half:
        return None
    if (sa[1], sa[3], sb[1], sb[3]) == (0, 1, half, 1):
        traditional = False
    elif (sa[1], sa[3], sb[1], sb[3]) == (0, 2, 1, 2):
        traditional = True
    else:
        return None
    dims = 2 * half
    (s1c, c), (s1s, s) = p1[a], p1[b]  # o1 = x1 * C - sign * x2 * S
    (s2s, s_), (s2c, c_) = p2[a], p2[b]  # o2 = sign * x1 * S + x2 * C
    if (c, s) != (c_, s_) or s1c != 1 or s2c != 1 or s2s != -s1s:
        return None
    return x, dims, traditional, s2s, c, s


def _params(g: Graph, c: Atom, s: Atom, dtype: str):
    """``(base, scale, offset)`` of the RoPE tables ``c``, ``s``, or None."""
    cv, sv = g.const(c), g.const(s)
    t, half = cv.shape
    if t < 2 or half < 1:
        return None
    theta = np.unwrap(np.arctan2(sv, cv), axis=0)
    tm = np.arange(t) - (t - 1) / 2
    slopes = (tm[:, None] * (theta - theta.mean(0))).sum(0) / (tm * tm).sum()
    scale = float(slopes[0])
    if not np.isfinite(scale) or abs(scale) < 1e-12:
        return None
    inv = slopes / scale
    base = 10000.0
    if half > 1:
        if not np.all(inv[1:] > 0):
            return None
        i = np.arange(1, half)
        base = float(np.exp(-half * (i * np.log(inv[1:])).sum() / (i * i).sum()))
    offset = int(round(theta[0, -1] / (scale * inv[-1])))
    scales = [round(scale, 6), scale]  # the round values users write first
    if round(1 / scale):
        scales.insert(0, 1 / round(1 / scale))
    for b in dict.fromkeys([round(base), base]):
        for sc in dict.fromkeys(scales):
            if b > 0 and _verify(cv, sv, b, sc, offset, _TOL[dtype]):
                return float(b), float(sc), offset
    return None


def _verify(cv, sv, base, scale, offset, tol) -> bool:
    """Recompute the tables as ``anp.fast.rope`` (MLX's reference) does, in float32."""
    f = np.float32
    t, half = cv.shape
    with np.errstate(all="ignore"):
        pos = (np.arange(t, dtype=f) + f(offset)) * f(scale)
        step = f(f(np.log(f(base))) / f(half))
        inv = np.exp(np.arange(0, -half, -1).astype(f) * step)
        theta = pos[:, None] * inv[None]
        bound = tol + 1e-6 * np.abs(theta)
        return bool(
            np.all(np.abs(np.cos(theta) - cv) <= bound)
            and np.all(np.abs(np.sin(theta) - sv) <= bound)
        )


def _match(g: Graph, root: Eqn, o1: Atom, o2: Atom, rest, region: list, check):
    """The Match of the rotation ``(o1, o2)`` with the features after ``dims`` taken from
    ``rest`` (``rest(x)`` gives the atom holding them, or None where there are none)."""
    out = root.outputs[0].aval
    if out.dtype not in KERNEL_DTYPES or out.ndim < 3:
        return None
    rot = _rotation(g, o1, o2, region)
    if rot is None:
        return None
    x, dims, traditional, sign, c, s = rot
    n = out.shape[-1]
    if x.aval != out or not check(dims, traditional):
        return None
    tail = rest(x)
    if dims < n:
        sl = _slice_last(g, tail, region) if tail is not None else None
        if sl is None or sl[0] is not x or sl[1:] != (dims, n, 1):
            return None
    elif tail is not None:
        return None
    found = _params(g, c, s, out.dtype)
    if found is None:
        return None
    base, scale, offset = found
    params = {
        "dims": dims,
        "traditional": traditional,
        "base": base,
        "scale": scale * sign,
        "offset": offset,
    }
    return Match(
        "rope", root, region, [x], lambda: [new_eqn(fused_rope_p, [x], params, root.outputs)]
    )


def match_rope(g: Graph, root: Eqn) -> Match | None:
    """The rotation reassembled by ``concatenate`` (forward programs)."""
    region: list = []
    last = root.outputs[0].aval.ndim - 1
    if root.prim is P.concatenate:
        if root.params["dimension"] != last:
            return None
        parts = list(root.inputs)
        pair = g.eqn(parts[0], P.reshape)
        if pair is not None and len(parts) <= 2:  # traditional, then the pass-through part
            region.append(pair)
            return _traditional(
                g, root, pair.inputs[0], parts[1] if len(parts) > 1 else None, region
            )
        if len(parts) not in (2, 3):
            return None
        rest = parts[2] if len(parts) == 3 else None
        return _match(g, root, parts[0], parts[1], lambda x: rest, region, lambda d, t: not t)
    if root.prim is P.reshape:
        return _traditional(g, root, root.inputs[0], None, region)
    return None


def _traditional(g: Graph, root: Eqn, stacked: Atom, rest, region: list):
    cat = g.eqn(stacked, P.concatenate)
    last = stacked.aval.ndim - 1
    if cat is None or cat.params["dimension"] != last or len(cat.inputs) != 2:
        return None
    if stacked.aval.shape[-1] != 2:
        return None
    region.append(cat)
    pair = []
    for a in cat.inputs:
        e = g.eqn(a, P.expand_dims)
        if e is None or e.params["dimensions"] != (last,):
            return None
        region.append(e)
        pair.append(e.inputs[0])
    return _match(g, root, pair[0], pair[1], lambda x: rest, region, lambda d, t: t)


match_rope.roots = (P.concatenate, P.reshape)
match_rope.needs = (P.slice_,)


def match_rope_transposed(g: Graph, root: Eqn) -> Match | None:
    """The transposed rotation summed back through ``pad``s (reverse-mode programs)."""
    out = root.outputs[0].aval
    if out.ndim < 3:
        return None
    region: list = []
    ts = terms(g, root.outputs[0], region, limit=3)
    if len(ts) not in (2, 3) or any(sign < 0 for sign, _ in ts):
        return None
    placed = []
    last = out.ndim - 1
    for _, t in ts:
        e = g.eqn(t, P.pad)
        if e is None or g.lit(e.inputs[1]) != 0:
            return None
        cfg = e.params["padding_config"]
        if any(c != (0, 0, 0) for c in cfg[:last]):
            return None
        region.append(e)
        placed.append((cfg[last], e.inputs[0]))
    placed.sort(key=lambda p: p[0][0])
    n = out.shape[-1]
    (c1, o1), (c2, o2) = placed[:2]
    rest = placed[2][1] if len(placed) == 3 else None
    if c1[2] == 0 and c2[2] == 0:  # halves: [0, half) and [half, dims)
        half = o1.aval.shape[-1]
        dims = 2 * half
        if c1 != (0, n - half, 0) or c2 != (half, n - dims, 0):
            return None
        traditional = False
    elif c1[2] == 1 and c2[2] == 1:  # even and odd features
        half = o1.aval.shape[-1]
        dims = 2 * half
        if c1 != (0, n - dims + 1, 1) or c2 != (1, n - dims, 1):
            return None
        traditional = True
    else:
        return None
    if rest is not None and placed[2][0] != (dims, 0, 0):
        return None
    return _match(
        g, root, o1, o2, lambda x: rest, region, lambda d, t: t == traditional and d == dims
    )


match_rope_transposed.roots = (P.add,)
match_rope_transposed.needs = (P.pad,)

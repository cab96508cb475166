"""Fused kernels: the primitives the fusion pass (``transforms/fuse.py``) puts in a program
in place of the subgraphs it recognises, each lowered to one MLX call (``mx.fast.*``,
``mx.addmm``, ``mx.softmax``, ``mx.logsumexp``).

They are **lowering-only**: the pass runs on the finished, optimised program just before it is
lowered, after every transform ran, so no transform ever meets them. They have a shape rule
(``typecheck`` checks rewritten programs), a lowering and a float64 interpreter rule (the
tests evaluate rewritten programs with it), and no JVP, transpose or batching rule: the
subgraph they replace is what transforms differentiate and batch. Their typed wrappers exist
for the coverage checklist and for tests that build fused programs by hand.
"""

from __future__ import annotations

import numpy as np

from autodiff import primitives as P
from autodiff.extend import NO_BATCH_RULE, NO_JVP_RULE, bind, def_primitive, impls, lowerings
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import matmul_operands

LOWERING_ONLY = (
    "lowering-only: introduced after all transforms (by the fusion pass, transforms/fuse)"
)
KERNEL_DTYPES = ("float32", "float16", "bfloat16")  # what MLX's fused kernels take


def _check_float(name, *avals):
    for a in avals:
        if a.dtype not in KERNEL_DTYPES:
            raise TypeError(f"[{name}] takes float32, float16 or bfloat16, got {a.str_short()}")


# ---------------------------------------------------------------------------------------------
# addmm: alpha * dot_general(a, b) + beta * c


def _addmm_rule(c, a, b, *, dimension_numbers, alpha, beta):
    (out,) = P.dot_general.abstract_eval(a, b, dimension_numbers=dimension_numbers)
    _check_float("fused_addmm", c, a, b)
    if a.ndim == 0 or b.ndim == 0 or c.dtype != out.dtype:
        raise TypeError(
            f"[fused_addmm] operands {c}, {a}, {b} do not form alpha * a @ b + beta * c"
        )
    if c.shape != out.shape and c.shape != out.shape[-1:]:
        raise TypeError(f"[fused_addmm] c must have shape {out.shape} or {out.shape[-1:]}")
    return [out]


fused_addmm_p = def_primitive("fused_addmm", "fused", _addmm_rule)


def fused_addmm(c, a, b, *, dimension_numbers, alpha: float = 1.0, beta: float = 1.0):
    """``alpha * dot_general(a, b) + beta * c`` as one ``mx.addmm``; ``c`` has the product's
    shape or is a vector along its last axis."""
    return bind(fused_addmm_p, c, a, b, dimension_numbers=dimension_numbers, alpha=alpha, beta=beta)


def _lower_addmm(args, ins, outs, dimension_numbers, alpha, beta):
    x2, y2, shape = matmul_operands(args[1:], ins[1:], dimension_numbers)
    c, ca = args[0], ins[0]
    if ca.shape == outs[0].shape and ca.shape != shape:
        c = f"mx.reshape({c}, {shape})"
    elif ca.ndim == 1 and shape[-1] != ca.shape[0]:  # a bias, but N spans several axes
        c = f"mx.reshape(mx.broadcast_to({c}, {outs[0].shape}), {shape})"
    out = f"mx.addmm({c}, {x2}, {y2}, alpha={alpha!r}, beta={beta!r})"
    return out if outs[0].shape == shape else f"mx.reshape({out}, {outs[0].shape})"


lowerings[fused_addmm_p] = _lower_addmm
impls[fused_addmm_p] = lambda c, a, b, dimension_numbers, alpha, beta: (
    alpha * impls[P.dot_general](a, b, dimension_numbers) + beta * c
)


# ---------------------------------------------------------------------------------------------
# softmax and logsumexp


def _softmax_rule(x, *, axes, precise):
    _check_float("fused_softmax", x)
    return [x]


fused_softmax_p = def_primitive("fused_softmax", "fused", _softmax_rule)


def fused_softmax(x, *, axes, precise: bool = False):
    """``mx.softmax(x, axis=axes, precise=precise)``."""
    return bind(fused_softmax_p, x, axes=tuple(axes), precise=precise)


lowerings[fused_softmax_p] = lambda a, ins, outs, axes, precise: (
    f"mx.softmax({a[0]}, axis={list(axes)}, precise={precise})"
)


def _softmax_np(x, axes, precise=True):
    e = np.exp(x - np.max(x, axis=axes, keepdims=True))
    return e / np.sum(e, axis=axes, keepdims=True)


impls[fused_softmax_p] = _softmax_np


def _logsumexp_rule(x, *, axes):
    _check_float("fused_logsumexp", x)
    return [x.update(shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))]


fused_logsumexp_p = def_primitive("fused_logsumexp", "fused", _logsumexp_rule)


def fused_logsumexp(x, *, axes):
    """``mx.logsumexp(x, axis=axes)``."""
    return bind(fused_logsumexp_p, x, axes=tuple(axes))


lowerings[fused_logsumexp_p] = lambda a, ins, outs, axes: f"mx.logsumexp({a[0]}, axis={list(axes)})"


def _logsumexp_np(x, axes):
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m, axes)


impls[fused_logsumexp_p] = _logsumexp_np


# ---------------------------------------------------------------------------------------------
# layer norm and RMS norm over the last axis (weight and bias: vectors of its size, optional)


def _norm_rule(name):
    def rule(x, *wb, eps, **present):
        _check_float(name, x, *wb)
        if x.ndim == 0 or len(wb) != sum(present.values()):
            raise TypeError(f"[{name}] expects x of rank >= 1 and the vectors {list(present)}")
        for v in wb:
            if v.shape != x.shape[-1:] or v.dtype != x.dtype:
                raise TypeError(f"[{name}] {v.str_short()} is not a vector of x's last axis")
        return [x]

    return rule


fused_layer_norm_p = def_primitive("fused_layer_norm", "fused", _norm_rule("fused_layer_norm"))
fused_rms_norm_p = def_primitive("fused_rms_norm", "fused", _norm_rule("fused_rms_norm"))


def fused_layer_norm(x, *wb, eps: float, weight: bool, bias: bool):
    """``mx.fast.layer_norm(x, weight, bias, eps)``; ``wb`` holds the vectors present."""
    return bind(fused_layer_norm_p, x, *wb, eps=eps, weight=weight, bias=bias)


def fused_rms_norm(x, *w, eps: float, weight: bool):
    """``mx.fast.rms_norm(x, weight, eps)``; ``w`` holds the weight if present."""
    return bind(fused_rms_norm_p, x, *w, eps=eps, weight=weight)


def _lower_layer_norm(a, ins, outs, eps, weight, bias):
    w = a[1] if weight else "None"
    b = a[1 + weight] if bias else "None"
    return f"mx.fast.layer_norm({a[0]}, {w}, {b}, {eps!r})"


lowerings[fused_layer_norm_p] = _lower_layer_norm
lowerings[fused_rms_norm_p] = lambda a, ins, outs, eps, weight: (
    f"mx.fast.rms_norm({a[0]}, {a[1] if weight else 'None'}, {eps!r})"
)


def _layer_norm_np(x, *wb, eps, weight, bias):
    xc = x - x.mean(-1, keepdims=True)
    y = xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    y = y * wb[0] if weight else y
    return y + wb[-1] if bias else y


def _rms_norm_np(x, *w, eps, weight):
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return y * w[0] if weight else y


impls[fused_layer_norm_p] = _layer_norm_np
impls[fused_rms_norm_p] = _rms_norm_np


# ---------------------------------------------------------------------------------------------
# rotary positional encoding (positions along axis -2, features along axis -1)


def _rope_rule(x, *, dims, traditional, base, scale, offset):
    _check_float("fused_rope", x)
    if x.ndim < 3 or dims <= 0 or dims % 2 or dims > x.shape[-1]:
        raise TypeError(f"[fused_rope] needs x of rank >= 3 and even dims <= D: {x}, {dims}")
    return [x]


fused_rope_p = def_primitive("fused_rope", "fused", _rope_rule)


def fused_rope(x, *, dims: int, traditional: bool, base: float, scale: float, offset: int):
    """``mx.fast.rope(x, dims, traditional=..., base=..., scale=..., offset=...)``."""
    return bind(
        fused_rope_p, x, dims=dims, traditional=traditional, base=base, scale=scale, offset=offset
    )


lowerings[fused_rope_p] = lambda a, ins, outs, dims, traditional, base, scale, offset: (
    f"mx.fast.rope({a[0]}, {dims}, traditional={traditional}, base={base!r}, scale={scale!r}, "
    f"offset={offset})"
)


def _rope_np(x, dims, traditional, base, scale, offset):
    half, t = dims // 2, x.shape[-2]
    theta = ((np.arange(t) + offset) * scale)[:, None] * base ** (-np.arange(half) / half)
    c, s = np.cos(theta), np.sin(theta)
    x1, x2 = (
        (x[..., 0:dims:2], x[..., 1:dims:2]) if traditional else (x[..., :half], x[..., half:dims])
    )
    o1, o2 = x1 * c - x2 * s, x1 * s + x2 * c
    rot = np.stack([o1, o2], -1).reshape(o1.shape[:-1] + (dims,)) if traditional else None
    parts = [rot] if traditional else [o1, o2]
    return np.concatenate(parts + [x[..., dims:]], axis=-1)


impls[fused_rope_p] = _rope_np


# ---------------------------------------------------------------------------------------------
# scaled dot-product attention: softmax(scale * q @ k.T [+ mask]) @ v on (B, N, T, D) arrays


def _sdpa_rule(q, k, v, *mask, scale, mask_kind):
    _check_float("fused_sdpa", q, k, v)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"[fused_sdpa] q, k, v must be rank 4 of one dtype: {q}, {k}, {v}")
    (b, nq, _, d), (bk, nkv, tk, dk) = q.shape, k.shape
    if (bk, dk) != (b, d) or v.shape[:3] != (b, nkv, tk) or nq % nkv:
        raise TypeError(f"[fused_sdpa] incompatible q {q}, k {k}, v {v}")
    if len(mask) != (mask_kind == "array") or mask_kind not in (None, "causal", "array"):
        raise TypeError(f"[fused_sdpa] mask_kind {mask_kind!r} with {len(mask)} mask operands")
    if mask and (mask[0].ndim > 4 or mask[0].dtype not in ("bool", q.dtype)):
        raise TypeError(f"[fused_sdpa] the mask must be boolean or {q.dtype}, rank <= 4")
    return [ShapedArray((b, nq, q.shape[2], v.shape[3]), q.dtype)]


fused_sdpa_p = def_primitive("fused_sdpa", "fused", _sdpa_rule)


def fused_sdpa(q, k, v, *mask, scale: float, mask_kind: str | None = None):
    """``mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=...)``: ``mask_kind``
    None, ``"causal"``, or ``"array"`` (then ``mask`` is the boolean or additive array)."""
    return bind(fused_sdpa_p, q, k, v, *mask, scale=scale, mask_kind=mask_kind)


def _lower_sdpa(a, ins, outs, scale, mask_kind):
    mask = {None: "", "causal": ", mask='causal'", "array": f", mask={a[-1]}"}[mask_kind]
    return f"mx.fast.scaled_dot_product_attention({a[0]}, {a[1]}, {a[2]}, scale={scale!r}{mask})"


lowerings[fused_sdpa_p] = _lower_sdpa


def _sdpa_np(q, k, v, *mask, scale, mask_kind):
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = scale * np.einsum("bnqd,bnkd->bnqk", q, k)
    tq, tk = s.shape[-2:]
    if mask_kind == "causal":
        mask = (np.arange(tk)[None] <= np.arange(tq)[:, None] + (tk - tq),)
    if mask:
        m = mask[0]
        s = np.where(m, s, np.finfo(np.float32).min) if m.dtype == bool else s + m
    return np.einsum("bnqk,bnkd->bnqd", _softmax_np(s, -1), v)


impls[fused_sdpa_p] = _sdpa_np


# ---------------------------------------------------------------------------------------------
# cross entropy with class indices


def _cross_entropy_rule(logits, targets):
    _check_float("fused_cross_entropy", logits)
    if targets.dtype not in ("int32", "int64", "uint32") or targets.shape != logits.shape[:-1]:
        raise TypeError(f"[fused_cross_entropy] targets {targets} do not index logits {logits}")
    return [targets.update(dtype="float32")]


fused_cross_entropy_p = def_primitive("fused_cross_entropy", "fused", _cross_entropy_rule)


def fused_cross_entropy(logits, targets):
    """``mx.fast.cross_entropy(logits, targets)``."""
    return bind(fused_cross_entropy_p, logits, targets)


lowerings[fused_cross_entropy_p] = lambda a, ins, outs: f"mx.fast.cross_entropy({a[0]}, {a[1]})"
impls[fused_cross_entropy_p] = lambda logits, targets: (
    _logsumexp_np(logits, (-1,))
    - (np.take_along_axis(logits, targets[..., None].astype(np.int64), -1)[..., 0])
)


for _p in (
    fused_addmm_p,
    fused_softmax_p,
    fused_logsumexp_p,
    fused_layer_norm_p,
    fused_rms_norm_p,
    fused_rope_p,
    fused_sdpa_p,
    fused_cross_entropy_p,
):
    NO_JVP_RULE[_p] = LOWERING_ONLY
    NO_BATCH_RULE[_p] = LOWERING_ONLY

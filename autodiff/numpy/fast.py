"""``anp.fast``: ``mx.fast``'s fused operations written as composites of autodiff's primitives.

Each function follows the math of MLX's own reference path for it (the "fallback" MLX runs on
the CPU), step for step: the same float32 upcasts and casts back, the same placement of
``eps``, the same frequency formula, so traced results equal ``mx.fast``'s within float32
rounding, and every derivative (to any order, and in every argument MLX differentiates or
not) comes from the composite. On concrete arrays each function calls ``mx.fast`` itself.
While tracing, ``mx.fast.X`` is routed here, so ``mlx.nn``'s layers (``nn.RMSNorm``,
``nn.LayerNorm``, ``nn.RoPE``, ``nn.MultiHeadAttention``) trace under ``ad.grad``.

A later rewrite pass may map these composites back onto the fused kernels; they are written
plainly for that reason. ``metal_kernel``, ``cuda_kernel`` and ``precompiled_cuda_kernel`` are
excluded (opaque user kernels; see ``_excluded.py``).
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_bool, is_float, is_int
from autodiff.numpy._core import astype, mirror, result_type
from autodiff.numpy._creation import arange
from autodiff.numpy._elementwise import cos, exp, reciprocal, rsqrt, sin, square, where
from autodiff.numpy._indexing import take_along_axis
from autodiff.numpy._linalg import matmul
from autodiff.numpy._reductions import logsumexp, mean, softmax, sum
from autodiff.numpy._shape import (
    broadcast_to,
    concatenate,
    expand_dims,
    repeat,
    reshape,
    stack,
    swapaxes,
)
from autodiff.tracing import aval_of

__all__ = [
    "cross_entropy",
    "gated_delta_update",
    "layer_norm",
    "rms_norm",
    "rope",
    "scaled_dot_product_attention",
]

_F32 = "float32"


def _shape(a):
    return aval_of(a).shape


def _check_vector(fn, name, v, n):
    if v is not None and _shape(v) != (n,):
        raise ValueError(
            f"[{fn}] {name} must have shape ({n},) like x's last axis, got {_shape(v)}"
        )


def _check_x(fn, x, dtype):
    if not _shape(x):
        raise ValueError(f"[{fn}] Input must have at least 1 dimension but got 0 dimensions.")
    if not is_float(dtype):
        raise ValueError(f"[{fn}] Received unsupported type {dtype}.")


@mirror(mx.fast.rms_norm)
def rms_norm(x, weight, eps: float):
    """Root-mean-square normalization over the last axis, as ``mx.fast.rms_norm``:
    ``x * rsqrt(mean(x**2) + eps)`` computed in float32, cast to the result dtype, then
    times ``weight`` (skipped when ``weight`` is None).

    Example:
        >>> ad.grad(lambda x, w: anp.fast.rms_norm(x, w, 1e-5).sum(), argnums=(0, 1))(x, w)
    """
    out = result_type(x, weight) if weight is not None else aval_of(x).dtype
    _check_x("rms_norm", x, out)
    _check_vector("rms_norm", "weight", weight, _shape(x)[-1])
    xf = astype(x, _F32)
    y = astype(xf * rsqrt(mean(square(xf), axis=-1, keepdims=True) + eps), out)
    return y if weight is None else y * astype(weight, out)


@mirror(mx.fast.layer_norm)
def layer_norm(x, weight, bias, eps: float):
    """Layer normalization over the last axis, as ``mx.fast.layer_norm``: centred and scaled
    by ``rsqrt(var + eps)`` in float32, cast to the result dtype, then ``* weight + bias``
    (each skipped when None)."""
    if weight is None:
        out = aval_of(x).dtype
    else:
        out = result_type(x, weight) if bias is None else result_type(x, weight, bias)
    _check_x("layer_norm", x, out)
    _check_vector("layer_norm", "weight", weight, _shape(x)[-1])
    _check_vector("layer_norm", "bias", bias, _shape(x)[-1])
    xf = astype(x, _F32)
    xc = xf - mean(xf, axis=-1, keepdims=True)
    y = astype(xc * rsqrt(mean(square(xc), axis=-1, keepdims=True) + eps), out)
    if weight is not None:
        y = y * astype(weight, out)
    return y if bias is None else y + astype(bias, out)


def _f32(v) -> float:
    return float(np.float32(v))


@mirror(mx.fast.rope)
def rope(a, dims: int, *, traditional: bool, base: float | None, scale: float, offset, freqs=None):
    """Rotary positional encoding of the first ``dims`` features, as ``mx.fast.rope``.

    ``a`` is ``(B, *, T, D)``; position ``t`` (plus ``offset``: an int, or an integer array
    of one offset or one per batch element) times ``scale`` rotates feature pairs by
    ``position / base**(2i / dims)`` (or ``position / freqs[i]``). Pairs are consecutive
    features when ``traditional``, else feature ``i`` with ``i + dims/2``. Linear in ``a``;
    differentiable in ``freqs`` too (MLX is not).
    """
    shape = _shape(a)
    if len(shape) < 3 or not is_float(aval_of(a).dtype):
        raise ValueError(f"[rope] Input must be a float array with at least 3 dimensions: {shape}")
    if dims <= 0 or dims % 2 or dims > shape[-1]:
        raise ValueError(f"[rope] dims must be even, positive and <= {shape[-1]}, got {dims}")
    if (base is None) == (freqs is None):
        raise ValueError("[rope] Exactly one of base and freqs must be given (the other None).")
    half = dims // 2
    if freqs is not None and _shape(freqs) != (half,):
        raise ValueError(f"[rope] freqs must be one dimensional with size {half}")
    x = a
    if len(shape) == 3:
        x = expand_dims(x, 1)
    elif len(shape) > 4:
        x = reshape(x, (shape[0], -1) + shape[-2:])
    b, _, t, _ = _shape(x)
    dtype = aval_of(x).dtype
    positions = arange(t, dtype=mx.float32)
    if isinstance(offset, (int, np.integer)):
        positions = positions + float(offset)
    else:
        oa = aval_of(offset)
        if not is_int(oa.dtype) or len(oa.shape) > 1 or oa.size not in (1, b):
            raise ValueError(f"[rope] offset must be an int or integer array of 1 or {b} values")
        off = astype(astype(offset, "int32"), _F32)
        positions = positions + (reshape(off, (-1, 1, 1)) if oa.size > 1 else reshape(off, ()))
    positions = positions * _f32(scale)
    if freqs is None:
        step = _f32(np.float32(math.log(_f32(base))) / np.float32(half))
        inv_freqs = exp(arange(0, -half, -1, dtype=mx.float32) * step)
    else:
        inv_freqs = reciprocal(astype(freqs, _F32))
    theta = expand_dims(positions, -1) * inv_freqs
    c, s = astype(cos(theta), dtype), astype(sin(theta), dtype)
    if traditional:
        x1, x2 = x[..., 0:dims:2], x[..., 1:dims:2]
    else:
        x1, x2 = x[..., :half], x[..., half:dims]
    o1, o2 = x1 * c - x2 * s, x1 * s + x2 * c
    if traditional:
        rot = reshape(stack([o1, o2], axis=-1), _shape(o1)[:-1] + (dims,))
        parts = [rot]
    else:
        parts = [o1, o2]
    if dims < shape[-1]:
        parts.append(x[..., dims:])
    return reshape(concatenate(parts, axis=-1), shape)


def _lowest(dtype: str) -> float:
    special = {"float16": -65504.0, "bfloat16": -3.3895313892515355e38}
    return special[dtype] if dtype in special else float(np.finfo(np.dtype(dtype)).min)


@mirror(mx.fast.scaled_dot_product_attention)
def scaled_dot_product_attention(
    q, k, v, *, scale: float, mask=None, sinks=None, force_fused: bool = False
):
    """``softmax(scale * q @ k.T + mask) @ v`` per head, as
    ``mx.fast.scaled_dot_product_attention`` (``force_fused`` picks MLX's kernel and has no
    effect on the traced composite).

    ``q``: ``(B, N_q, T_q, D)``; ``k``, ``v``: ``(B, N_kv, T_kv, D)`` with ``N_q`` a multiple of
    ``N_kv`` (grouped-query attention without tiling). ``mask``: None, ``"causal"``
    (lower-right aligned), a boolean mask (False entries get the dtype's lowest value) or an
    additive one, broadcastable to ``(B, N_q, T_q, T_kv)``. ``sinks``: ``(N_q,)`` logits of an
    extra key that takes probability mass but has no value. The softmax runs in float32.

    Example:
        >>> attn = lambda q, k, v: anp.fast.scaled_dot_product_attention(q, k, v, scale=0.125,
        ...     mask="causal")
        >>> ad.grad(lambda q: attn(q, k, v).sum())(q)
    """
    for t in (q, k, v):
        if len(_shape(t)) != 4:
            raise ValueError(f"[scaled_dot_product_attention] inputs must be rank 4: {_shape(t)}")
    (bq, nq, tq, d), (bk, nkv, tk, dk) = _shape(q), _shape(k)
    if bk != bq or _shape(v)[0] != bq or dk != d or _shape(v)[1] != nkv or nq % nkv:
        raise ValueError(
            f"[scaled_dot_product_attention] incompatible shapes q {_shape(q)}, k {_shape(k)}, "
            f"v {_shape(v)}: batch and head size must agree and N_q be a multiple of N_kv"
        )
    dtype = result_type(q, k, v)
    if not is_float(dtype):
        raise ValueError(f"[scaled_dot_product_attention] Received unsupported type {dtype}.")
    q, k, v = astype(q, dtype), astype(k, dtype), astype(v, dtype)
    if isinstance(mask, str) and mask != "causal":
        raise ValueError(f"[scaled_dot_product_attention] Invalid mask {mask!r}: use 'causal'")
    if mask is not None and not isinstance(mask, str):
        ma = aval_of(mask)
        if len(ma.shape) > 4 or not (is_bool(ma.dtype) or result_type(mask, q) == dtype):
            raise ValueError(
                "[scaled_dot_product_attention] the mask must have rank <= 4 and be boolean or "
                f"promote to {dtype}, got {ma.str_short()}"
            )
        mask = broadcast_to(mask if is_bool(ma.dtype) else astype(mask, dtype), (bq, nq, tq, tk))
    rep = nq // nkv
    q = q * _f32(scale)
    if rep > 1:
        q = reshape(q, (bq, nkv, rep, tq, d))
        k, v = expand_dims(k, 2), expand_dims(v, 2)
    scores = matmul(q, swapaxes(k, -1, -2))
    if mask is not None:
        if isinstance(mask, str):
            mask = arange(tk - tq, tk)[:, None] >= arange(0, tk)[None]
        elif rep > 1:
            mask = reshape(mask, (bq, nkv, rep, tq, tk))
        if is_bool(aval_of(mask).dtype):
            scores = where(mask, scores, _lowest(dtype))
        else:
            scores = scores + mask
    if sinks is not None:
        if _shape(sinks) != (nq,) or result_type(sinks, q) != dtype:
            raise ValueError(f"[scaled_dot_product_attention] sinks must be ({nq},) of {dtype}")
        s = reshape(astype(sinks, dtype), (1, nkv, rep, 1, 1) if rep > 1 else (1, nq, 1, 1))
        s = broadcast_to(s, _shape(scores)[:-1] + (1,))
        scores = concatenate([s, scores], axis=-1)
    probs = astype(softmax(astype(scores, _F32), axis=-1), dtype)
    if sinks is not None:
        probs = probs[..., 1:]
    out = matmul(probs, v)
    return reshape(out, (bq, nq, tq, _shape(v)[-1])) if rep > 1 else out


@mirror(mx.fast.cross_entropy)
def cross_entropy(logits, targets):
    """``logsumexp(logits, -1) - logits[..., targets]`` in float32, as
    ``mx.fast.cross_entropy`` (class indices as targets; reduced in the logits' dtype, as
    MLX's CPU path). Differentiable in ``logits``; ``targets`` are integers."""
    ta = aval_of(targets)
    if not is_int(ta.dtype) or ta.shape != _shape(logits)[:-1]:
        raise ValueError(
            f"[cross_entropy] targets must be integers of shape {_shape(logits)[:-1]}, got "
            f"{ta.str_short()}"
        )
    picked = take_along_axis(logits, expand_dims(targets, -1), axis=-1)[..., 0]
    return astype(logsumexp(logits, axis=-1) - picked, _F32)


@mirror(mx.fast.gated_delta_update)
def gated_delta_update(q, k, v, gamma, beta, initial_state=None, mask=None):
    """The gated delta rule recurrence (Gated DeltaNet), as ``mx.fast.gated_delta_update``;
    returns ``[y, final_state]``.

    Shapes: ``q``, ``k``: ``(B, T, Hk, Dk)``; ``v``: ``(B, T, Hv, Dv)`` with ``Hv`` a multiple
    of ``Hk``; ``gamma``: ``(B, T, Hv)`` or ``(B, T, Hv, Dk)`` (decay); ``beta``: ``(B, T, Hv)``;
    state ``(B, Hv, Dv, Dk)`` (zeros by default); ``mask``: ``(B, T)``. Per step ``t``::

        S = S * gamma_t;  S += outer(beta_t * (v_t - S @ k_t), k_t);  y_t = S @ q_t

    with masked steps giving ``y_t = 0`` and leaving ``S`` unchanged. Computed in float32
    (``y`` cast to the inputs' dtype, the state float32), unrolled over ``T`` (``T`` static).
    Differentiable in every float argument.
    """
    bq, t, hk, dk = _shape(q)
    hv, dv = _shape(v)[2:]
    if _shape(k) != (bq, t, hk, dk) or _shape(v)[:2] != (bq, t) or hv % hk:
        raise ValueError(f"[gated_delta_update] incompatible q {_shape(q)}, k, v {_shape(v)}")
    y_dtype = result_type(q, k, v)
    rep = hv // hk
    qf, kf = (astype(repeat(a, rep, axis=2) if rep > 1 else a, _F32) for a in (q, k))
    vf, gf, bf = astype(v, _F32), astype(gamma, _F32), astype(beta, _F32)
    state = (
        lax.full((bq, hv, dv, dk), 0.0, _F32)
        if initial_state is None
        else astype(initial_state, _F32)
    )
    vector_gate = len(_shape(gamma)) == 4
    ys = []
    for i in range(t):
        g_i = gf[:, i]
        decayed = state * (expand_dims(g_i, -2) if vector_gate else g_i[..., None, None])
        k_i = expand_dims(kf[:, i], -2)  # (B, Hv, 1, Dk)
        delta = (vf[:, i] - sum(decayed * k_i, axis=-1)) * bf[:, i][..., None]
        new = decayed + k_i * expand_dims(delta, -1)
        y = sum(new * expand_dims(qf[:, i], -2), axis=-1)
        if mask is not None:
            on = mask[:, i] if is_bool(aval_of(mask).dtype) else mask[:, i] != 0
            new = where(on[:, None, None, None], new, state)
            y = where(on[:, None, None], y, 0.0)
        state = new
        ys.append(y)
    return [astype(stack(ys, axis=1), y_dtype), state]

"""``quantized_matmul``: ``x @ dequantize(w, scales, biases).T`` (or without ``.T``) with MLX's
quantized kernel. Linear in ``x`` and in ``(scales, biases)`` (bilinear); the packed ``w`` is
integer. The module docstring of ``quantized.py`` states the derivative rules.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_float
from autodiff.extend import (
    Zero,
    add_tangents,
    batch_rules,
    bind,
    def_primitive,
    impls,
    instantiate,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.ops import quantized_format as F
from autodiff.ops.quantized import check_packed, codes, group_sums
from autodiff.tracing import aval_of


def qmm_dims(w, transpose, bits):
    """``(inner, outer)``: the sizes of the dequantized matrix as ``x @ W`` sees it."""
    k = w.shape[-1] * 32 // bits
    return (k, w.shape[-2]) if transpose else (w.shape[-2], k)


def _qmm_rule(x, w, scales, *biases, transpose, group_size, bits, mode):
    check_packed(
        "quantized_matmul", w, scales, biases[0] if biases else None, group_size, bits, mode
    )
    if not is_float(x.dtype) or (mode == "affine" and scales.dtype != x.dtype):
        raise TypeError(
            f"[quantized_matmul] x must be a float array (of the scales' dtype in affine "
            f"mode), got {x.str_short()} with scales {scales.str_short()}"
        )
    inner, outer = qmm_dims(w, transpose, bits)
    if x.ndim < 1 or x.shape[-1] != inner:
        raise TypeError(
            f"[quantized_matmul] last axis of x {x.str_short()} does not match the "
            f"dequantized matrix ({inner}, {outer}) (transpose={transpose})"
        )
    if w.ndim > 2 and x.shape[:-2] != w.shape[:-2]:
        raise TypeError(
            f"[quantized_matmul] batch axes of x {x.str_short()} and w {w.str_short()} differ "
            "(autodiff.numpy.quantized_matmul broadcasts them)"
        )
    return [x.update(shape=x.shape[:-1] + (outer,))]


quantized_matmul_p = def_primitive("quantized_matmul", "quantized", _qmm_rule)


def quantized_matmul(x, w, scales, *biases, transpose: bool, group_size: int, bits: int, mode: str):
    """``biases`` is ``(biases,)`` in affine mode, ``()`` otherwise."""
    return bind(
        quantized_matmul_p,
        x,
        w,
        scales,
        *biases,
        transpose=transpose,
        group_size=group_size,
        bits=bits,
        mode=mode,
    )


def _qmm_jvp(primals, tangents, **p):
    out = quantized_matmul(*primals, **p)
    x, w = primals[:2]
    t = Zero(aval_of(out))
    if type(tangents[0]) is not Zero:
        t = quantized_matmul(tangents[0], *primals[1:], **p)
    if p["mode"] == "affine" and any(type(d) is not Zero for d in tangents[2:]):
        ts, tb = (instantiate(d) for d in tangents[2:])
        t = add_tangents(t, quantized_matmul(x, w, ts, tb, **p))
    return out, t


jvp_rules[quantized_matmul_p] = _qmm_jvp


def weight_cotangent(ct, x, w_ndim, transpose):
    """``ct.T @ x`` (or ``x.T @ ct``) summed over every axis but ``w``'s batch axes: the
    cotangent of the dequantized matrix, laid out as ``w`` (rows, columns)."""
    xs, cs = aval_of(x).shape, aval_of(ct).shape
    if w_ndim == 2:
        x = L.reshape(x, (int(np.prod(xs[:-1])), xs[-1]))
        ct = L.reshape(ct, (int(np.prod(cs[:-1])), cs[-1]))
        nb = 0
    else:
        nb = w_ndim - 2
    dn = (((nb,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    return L.dot_general(ct, x, dn) if transpose else L.dot_general(x, ct, dn)


def _qmm_t(ct, x, w, s, *b, transpose, group_size, bits, mode):
    p = dict(group_size=group_size, bits=bits, mode=mode)
    if is_undefined(x):
        if is_undefined(s) or (b and is_undefined(b[0])):
            raise TypeError("quantized_matmul of x and scales/biases both linear is not linear")
        return [quantized_matmul(ct, w, s, *b, transpose=not transpose, **p), None, None] + [
            None
        ] * len(b)
    sa = aval_of(s)
    dw = L.convert(weight_cotangent(ct, x, len(aval_of(w).shape), transpose), sa.dtype)
    ct_s = group_sums(L.mul(dw, codes(w, sa, group_size, bits)), group_size)
    ct_b = group_sums(dw, group_size) if is_undefined(b[0]) else None
    return [None, None, ct_s if is_undefined(s) else None, ct_b]


transpose_rules[quantized_matmul_p] = _qmm_t
mark_linear(quantized_matmul_p)


def _qmm_batch(size, args, dims, **p):
    x, dx = args[0], dims[0]
    rank = len(aval_of(x).shape) - (dx is not None)  # x's own rank
    if all(d is None for d in dims[1:]):
        if rank == 1:
            return quantized_matmul(moveaxis(x, dx, 0), *args[1:], **p), 0
        # fold the batch into x's rows: (..., B, M, K) -> (..., B*M, K)
        x0 = moveaxis(x, dx, rank - 2)
        s = aval_of(x0).shape
        out = quantized_matmul(L.reshape(x0, s[:-3] + (s[-3] * s[-2], s[-1])), *args[1:], **p)
        o = aval_of(out).shape
        return L.reshape(out, s[:-3] + (s[-3], s[-2], o[-1])), rank - 2
    x0 = to_front(x, dx, size)
    if rank == 1:
        x0 = L.expand_dims(x0, (1,))
    xb = aval_of(x0).shape[:-2]
    ops = []
    for a, d in zip(args[1:], dims[1:]):
        a = to_front(a, d, size)
        sa = aval_of(a).shape
        if len(sa) - 2 < len(xb):  # a 2-D matrix against batched x: give it x's batch axes
            a = L.broadcast_in_dim(a, xb + sa[-2:], (0, len(xb), len(xb) + 1))
        ops.append(a)
    out = quantized_matmul(x0, *ops, **p)
    return (L.squeeze(out, (1,)) if rank == 1 else out), 0


batch_rules[quantized_matmul_p] = _qmm_batch


def _qmm_mlx(args, ins, outs, transpose, group_size, bits, mode):
    b = args[3] if len(args) > 3 else None
    return (
        f"mx.quantized_matmul({args[0]}, {args[1]}, {args[2]}, {b}, transpose={transpose}, "
        f"group_size={group_size}, bits={bits}, mode={mode!r})"
    )


lowerings[quantized_matmul_p] = _qmm_mlx


def dequantized(w, s, b, group_size, bits, mode, transpose):
    """The float64 matrix ``x`` is multiplied by (``W.T`` when ``transpose``)."""
    m = F.dequantize(w, s, b, group_size, bits, mode)
    return np.swapaxes(m, -1, -2) if transpose else m


def _qmm_np(x, w, s, *b, transpose, group_size, bits, mode):
    return np.matmul(x, dequantized(w, s, b[0] if b else None, group_size, bits, mode, transpose))


impls[quantized_matmul_p] = _qmm_np

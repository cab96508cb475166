"""``qqmm``: ``quantize(x) @ quantize(w).T`` with both operands quantized (``x`` on the fly,
``w`` on the fly or already packed), in the fp modes, on MLX's kernel.

Not differentiable: quantizing makes the product piecewise constant in ``x`` and ``w`` (its
derivative is zero almost everywhere and undefined at the rounding boundaries). MLX's VJP
substitutes a straight-through estimator (it treats quantization as the identity and quantizes
the cotangent too), which is neither the derivative nor linear in the cotangent, so it has no
JVP/transpose form here. Differentiate ``x @ w.T`` in its place (the estimator's intent), or
stop the gradient.
"""

from __future__ import annotations

import numpy as np

from autodiff.dtypes import is_float
from autodiff.extend import (
    NO_JVP_RULE,
    batch_rules,
    bind,
    def_primitive,
    impls,
    lowerings,
)
from autodiff.ops import quantized_format as F
from autodiff.ops.quantized import check_packed, unrolled


def _rule(x, w, *rest, group_size, bits, mode, quantized):
    if not is_float(x.dtype) or x.dtype == "float64" or x.ndim != 2:
        raise TypeError(f"[qqmm] x must be a 2-D float16/bfloat16/float32 matrix, got {x}")
    if quantized:
        check_packed("qqmm", w, rest[0], None, group_size, bits, mode)
        k = w.shape[-1] * 32 // bits
    else:
        if not is_float(w.dtype) or w.dtype == "float64" or w.ndim != 2:
            raise TypeError(f"[qqmm] w must be a 2-D float matrix or packed uint32, got {w}")
        k = w.shape[-1]
    if w.ndim != 2 or x.shape[-1] != k:
        raise TypeError(f"[qqmm] cannot multiply {x.str_short()} by {w.str_short()}.T")
    return [x.update(shape=(x.shape[0], w.shape[0]))]


qqmm_p = def_primitive("qqmm", "qqmm", _rule)


def qqmm(x, w, *rest, group_size: int, bits: int, mode: str, quantized: bool):
    """``rest``: ``(scales,)`` when ``w`` is packed, then ``(global_scale_x, global_scale_w)``."""
    return bind(
        qqmm_p, x, w, *rest, group_size=group_size, bits=bits, mode=mode, quantized=quantized
    )


NO_JVP_RULE[qqmm_p] = (
    "qqmm quantizes x (and w) on the fly, so it is piecewise constant: its derivative is zero "
    "almost everywhere. MLX's VJP is a straight-through estimator, not a derivative. "
    "Differentiate `x @ w.T` in its place, or wrap the operands in stop_gradient."
)


def _batch(size, args, dims, **p):
    # one call per example: MLX's CPU kernel takes one row of x at a time
    return unrolled(qqmm_p, size, args, dims, p)


batch_rules[qqmm_p] = _batch


def _lower(args, ins, outs, group_size, bits, mode, quantized):
    rest = list(args[2:])
    scales = rest.pop(0) if quantized else None
    gx, gw = rest if rest else (None, None)
    return (
        f"mx.qqmm({args[0]}, {args[1]}, {scales}, group_size={group_size}, bits={bits}, "
        f"mode={mode!r}, global_scale_x={gx}, global_scale_w={gw})"
    )


lowerings[qqmm_p] = _lower


def fake_quantize(v, group_size, bits, mode, global_scale=None):
    """``dequantize(quantize(v))`` in float64."""
    packed = F.quantize(v, group_size, bits, mode, global_scale)
    return F.dequantize(*packed[:2], None, group_size, bits, mode, global_scale)


def _np(x, w, *rest, group_size, bits, mode, quantized):
    rest = list(rest)
    scales = rest.pop(0) if quantized else None
    gx, gw = rest if rest else (None, None)
    xq = fake_quantize(x, group_size, bits, mode, gx)
    if quantized:
        wq = F.dequantize(w, scales, None, group_size, bits, mode, gw)
    else:
        wq = fake_quantize(w, group_size, bits, mode, gw)
    return np.matmul(xq, wq.T)


impls[qqmm_p] = _np

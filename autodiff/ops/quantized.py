"""Quantization: ``quantize`` (several results), ``dequantize`` and ``quantized_matmul``, lowered
to MLX's kernels; the float64 NumPy formats are in ``quantized_format.py``.

Derivatives. The packed weights ``w_q`` (uint32) and the E8M0/E4M3 scales of the fp modes
(uint8) are integers, so they carry no tangent. The float operands enter linearly:

- ``dequantize(w, s, b) = s * q + b`` (affine) is linear in ``(s, b)`` jointly, and the nvfp4
  form is linear in its global scale;
- ``quantized_matmul(x, w, s, b) = x @ dequantize(w, s, b).T`` is linear in ``x`` and in
  ``(s, b)``: bilinear, like ``dot_general``. Its JVP is
  ``qmm(dx, w, s, b) + qmm(x, w, ds, db)``; the transposes are ``qmm(ct, w, s, b)`` with
  ``transpose`` flipped for ``x`` (what LoRA on a quantised model needs), and the group sums
  of ``ct.T @ x`` (times the codes, for the scales) for ``(s, b)``, as MLX's VJP.
- ``quantize``'s scales and biases are the piecewise-linear functions of the group's maximum
  and minimum that MLX's formula defines, differentiated as such (as ``mx.grad`` does through
  MLX's fallback); its packed codes are integers.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff import primitives as P
from autodiff.dtypes import is_float
from autodiff.extend import (
    Zero,
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
from autodiff.ir import ShapedArray
from autodiff.ops import quantized_format as F
from autodiff.tracing import aval_of


def check_packed(fn, w, scales, biases, group_size, bits, mode):
    if w.dtype != "uint32":
        raise TypeError(f"[{fn}] the quantized matrix must be uint32, got {w.str_short()}")
    if w.ndim < 2:
        raise TypeError(f"[{fn}] the quantized matrix needs 2 or more dimensions, got {w}")
    groups = w.shape[-1] * 32 // bits // group_size
    if scales.shape != w.shape[:-1] + (groups,):
        raise TypeError(
            f"[{fn}] scales {scales.str_short()} do not match {w.str_short()} with "
            f"group_size={group_size} and bits={bits}: expected shape {w.shape[:-1] + (groups,)}"
        )
    if mode == "affine":
        if biases is None or biases != scales or not is_float(scales.dtype):
            raise TypeError(f"[{fn}] affine scales and biases must be equal float arrays")
    elif scales.dtype != "uint8":
        raise TypeError(f"[{fn}] {mode} scales must be uint8, got {scales.str_short()}")


def _split_dequantize_operands(args, mode):
    """``(w, scales, biases | None, global_scale | None)`` from the operand list."""
    if mode == "affine":
        return args[0], args[1], args[2], None
    return args[0], args[1], None, (args[2] if len(args) > 2 else None)


# ---------------------------------------------------------------------------------------------
# quantize


def _quantize_rule(w, *gs, group_size, bits, mode):
    if not is_float(w.dtype) or w.ndim < 2 or w.shape[-1] % group_size:
        raise TypeError(
            f"[quantize] expects a float array of rank >= 2 whose last axis is a multiple of "
            f"group_size={group_size}, got {w.str_short()}"
        )
    packed = ShapedArray(w.shape[:-1] + (F.packed_size(w.shape[-1], bits),), "uint32")
    groups = w.shape[:-1] + (w.shape[-1] // group_size,)
    if mode == "affine":
        return [packed, ShapedArray(groups, w.dtype), ShapedArray(groups, w.dtype)]
    return [packed, ShapedArray(groups, "uint8")]


quantize_p = def_primitive("quantize", "quantized", _quantize_rule, multiple_results=True)


def quantize(w, global_scale=None, *, group_size: int, bits: int, mode: str):
    """``[w_q, scales, biases]`` (affine) or ``[w_q, scales]``, as ``mx.quantize``."""
    gs = () if global_scale is None else (global_scale,)
    return bind(quantize_p, w, *gs, group_size=group_size, bits=bits, mode=mode)


def _quantize_jvp(primals, tangents, group_size, bits, mode):
    outs = quantize(*primals, group_size=group_size, bits=bits, mode=mode)
    zeros = [Zero(aval_of(o)) for o in outs]
    t = tangents[0]
    if mode != "affine" or type(t) is Zero:
        return outs, zeros
    w = primals[0]
    shape = aval_of(w).shape
    gshape = shape[:-1] + (shape[-1] // group_size, group_size)
    wg, tg = L.reshape(w, gshape), L.reshape(t, gshape)
    last = (len(gshape) - 1,)
    w_max, t_max = jvp_rules[P.reduce_max]((wg,), (tg,), axes=last)
    w_min, t_min = jvp_rules[P.reduce_min]((wg,), (tg,), axes=last)
    n_bins = float((1 << bits) - 1)
    low = L.gt(L.abs_(w_min), L.abs_(w_max))
    edge, t_edge = L.select(low, w_min, w_max), L.select(low, t_min, t_max)
    spread = L.div(L.sub(w_max, w_min), n_bins)
    scale0 = L.max_(spread, 1e-7)
    scale0 = L.select(low, scale0, L.neg(scale0))
    q0 = L.round_(L.div(edge, scale0))
    exact = L.ne(q0, 0.0)
    # where q0 == 0 (a constant group) the scale is +-max(spread, eps), the bias 0
    t0 = L.select(L.gt(spread, 1e-7), L.div(L.sub(t_max, t_min), n_bins), 0.0)
    t0 = L.select(low, t0, L.neg(t0))
    t_scale = L.select(exact, L.div(t_edge, L.select(exact, q0, 1.0)), t0)
    t_bias = L.select(exact, t_edge, 0.0)
    return outs, [zeros[0], t_scale, t_bias]


jvp_rules[quantize_p] = _quantize_jvp


def _quantize_batch(size, args, dims, **params):
    if len(args) > 1 and dims[1] is not None:  # a per-example global scale
        return unrolled(quantize_p, size, args, dims, params)
    outs = quantize(moveaxis(args[0], dims[0], 0), *args[1:], **params)
    return outs, [0] * len(outs)


batch_rules[quantize_p] = _quantize_batch


def _quantize_mlx(args, ins, outs, group_size, bits, mode):
    gs = f", global_scale={args[1]}" if len(args) > 1 else ""
    return f"mx.quantize({args[0]}, group_size={group_size}, bits={bits}, mode={mode!r}{gs})"


lowerings[quantize_p] = _quantize_mlx
impls[quantize_p] = lambda w, *gs, group_size, bits, mode: F.quantize(
    w, group_size, bits, mode, gs[0] if gs else None
)

# ---------------------------------------------------------------------------------------------
# dequantize


def _dequantize_rule(*args, group_size, bits, mode, dtype):
    w, scales, biases, gs = _split_dequantize_operands(args, mode)
    check_packed("dequantize", w, scales, biases, group_size, bits, mode)
    if gs is not None and (gs.dtype != "float32" or gs.size != 1):
        raise TypeError(f"[dequantize] global_scale must be one float32 value, got {gs}")
    return [ShapedArray(w.shape[:-1] + (w.shape[-1] * 32 // bits,), dtype)]


dequantize_p = def_primitive("dequantize", "quantized", _dequantize_rule)


def dequantize(w, scales, *rest, group_size: int, bits: int, mode: str, dtype: str):
    """``rest`` is ``(biases,)`` (affine), ``()`` or ``(global_scale,)`` (nvfp4)."""
    return bind(
        dequantize_p, w, scales, *rest, group_size=group_size, bits=bits, mode=mode, dtype=dtype
    )


def _dequantize_jvp(primals, tangents, **p):
    out = dequantize(*primals, **p)
    w, s, b, gs = _split_dequantize_operands(primals, p["mode"])
    _, ts, tb, tgs = _split_dequantize_operands(tangents, p["mode"])
    if p["mode"] == "affine":
        if type(ts) is Zero and type(tb) is Zero:
            return out, Zero(aval_of(out))
        return out, dequantize(w, instantiate(ts), instantiate(tb), **p)
    if gs is None or type(tgs) is Zero:
        return out, Zero(aval_of(out))
    return out, dequantize(w, s, tgs, **p)


jvp_rules[dequantize_p] = _dequantize_jvp


def codes(w, scales_aval: ShapedArray, group_size: int, bits: int):
    """The affine codes ``q`` of ``w`` as floats of the scales' dtype: ``dequantize(w, 1, 0)``."""
    shape, dtype = scales_aval.shape, scales_aval.dtype
    one, zero = L.full(shape, 1.0, dtype), L.full(shape, 0.0, dtype)
    return dequantize(w, one, zero, group_size=group_size, bits=bits, mode="affine", dtype=dtype)


def group_sums(x, group_size):
    """Sums over the groups of ``group_size`` along the last axis."""
    shape = aval_of(x).shape
    g = L.reshape(x, shape[:-1] + (shape[-1] // group_size, group_size))
    return L.reduce_sum(g, (len(shape),))


def _dequantize_t(ct, *args, group_size, bits, mode, dtype):
    w, s, b, gs = _split_dequantize_operands(args, mode)
    if mode == "affine":
        sa = aval_of(s)
        ct = L.convert(ct, sa.dtype)
        ct_s = ct_b = None
        if is_undefined(s):
            ct_s = group_sums(L.mul(ct, codes(w, sa, group_size, bits)), group_size)
        if is_undefined(b):
            ct_b = group_sums(ct, group_size)
        return [None, ct_s, ct_b]
    one = L.full(gs.aval.shape, 1.0, "float32")
    unit = dequantize(w, s, one, group_size=group_size, bits=bits, mode=mode, dtype=dtype)
    total = L.reduce_sum(L.convert(L.mul(ct, unit), "float32"), range(len(aval_of(ct).shape)))
    return [None, None, L.reshape(total, gs.aval.shape)]


transpose_rules[dequantize_p] = _dequantize_t
mark_linear(dequantize_p)


def _dequantize_batch(size, args, dims, **p):
    n = 3 if p["mode"] == "affine" else 2  # the arrays; then the optional global scale
    if len(args) > n and dims[n] is not None:
        return unrolled(dequantize_p, size, args, dims, p)
    ops = [to_front(a, d, size) for a, d in zip(args[:n], dims[:n])]
    return dequantize(*ops, *args[n:], **p), 0


batch_rules[dequantize_p] = _dequantize_batch


def _dequantize_mlx(args, ins, outs, group_size, bits, mode, dtype):
    w, s, b, gs = _split_dequantize_operands(args, mode)
    return (
        f"mx.dequantize({w}, {s}, {b}, group_size={group_size}, bits={bits}, mode={mode!r}, "
        f"global_scale={_array_arg(gs)}, dtype=mx.{dtype})"
    )


def _array_arg(a):
    # a literal operand arrives as a Python number; MLX wants an array there
    return a if a is None or a.isidentifier() else f"mx.array({a}, dtype=mx.float32)"


lowerings[dequantize_p] = _dequantize_mlx


def _dequantize_np(*args, group_size, bits, mode, dtype):
    w, s, b, gs = _split_dequantize_operands(args, mode)
    return F.dequantize(w, s, b, group_size, bits, mode, gs)


impls[dequantize_p] = _dequantize_np


# ---------------------------------------------------------------------------------------------
# batching by unrolling: one call per example (for per-example global scales)


def unrolled(prim, size, args, dims, params):
    """Batch ``prim`` by calling it once per example and stacking the results at axis 0."""
    per = []
    for i in range(size):
        ex = [
            a if d is None else L.squeeze(L.slice_in_dim(a, i, i + 1, 1, d), (d,))
            for a, d in zip(args, dims)
        ]
        per.append(bind(prim, *ex, **params))

    def stack(xs):
        return L.concatenate([L.expand_dims(x, (0,)) for x in xs], 0)

    if prim.multiple_results:
        return [stack(list(xs)) for xs in zip(*per)], [0] * len(per[0])
    return stack(per), 0

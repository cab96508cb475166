"""Bit-level conversions: ``view`` (reinterpret the bits of an array as another dtype) and the
fp8 (e4m3) codecs ``to_fp8`` (float -> uint8 codes) and ``from_fp8`` (codes -> float).

None of them is differentiable: a reinterpretation of bits has no useful derivative, so
``view``'s is zero (as ``jax.lax.bitcast_convert_type``'s), and the fp8 codes are integers,
which carry no tangent. They are here so that programs that hold fp8 or bit-packed data among
their traced inputs (frozen quantized weights in a parameter tree) trace, batch and lower.

``view`` between dtypes of different widths changes the size of the last axis, as MLX does.
The reference interpreter computes floats in float64, so ``view``'s param ``old_dtype`` says
which bits the operand had (the shape rule checks that it is the operand's dtype).
"""

from __future__ import annotations

import numpy as np

from autodiff.dtypes import DTYPES
from autodiff.extend import (
    bind,
    def_primitive,
    defelementwise,
    deffront,
    defzero,
    impls,
    lowerings,
)
from autodiff.interpret import np_dtype, round_inputs
from autodiff.ir import ShapedArray
from autodiff.tracing import aval_of


def _view_rule(x, *, new_dtype, old_dtype):
    if x.dtype != old_dtype:
        raise TypeError(f"view: operand is {x.str_short()} but old_dtype is {old_dtype}")
    old, new = DTYPES[old_dtype].bits, DTYPES[new_dtype].bits
    if old == new:
        return [ShapedArray(x.shape, new_dtype)]
    if x.ndim == 0:
        raise ValueError(
            f"view: cannot view a scalar {x.str_short()} as {new_dtype}: a scalar changes "
            "type only between dtypes of the same size; reshape it to (1,) first"
        )
    last = x.shape[-1] * old
    if last % new:
        raise ValueError(
            f"view: the last axis of {x.str_short()} holds {last // 8} bytes, not a multiple "
            f"of {new_dtype}'s {new // 8}"
        )
    return [ShapedArray(x.shape[:-1] + (last // new,), new_dtype)]


view_p = def_primitive("view", "bitcast", _view_rule)


def view(x, dtype: str):
    """The bits of ``x`` read as ``dtype`` (the last axis rescaled when the widths differ)."""
    old = aval_of(x).dtype
    return x if old == dtype else bind(view_p, x, new_dtype=dtype, old_dtype=old)


defzero(view_p)


deffront(view_p, lambda n, **params: params)  # batch axis first: the last axis stays the operand's


def _dt(dtype: str) -> str:
    return "mx." + DTYPES[dtype].mlx


lowerings[view_p] = lambda a, ins, outs, new_dtype, old_dtype: f"mx.view({a[0]}, {_dt(new_dtype)})"


def _exact_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    """The interpreter's value of a ``dtype`` array as NumPy data with ``dtype``'s bits. The
    interpreter keeps floats unrounded in float64, so they are rounded to ``dtype`` here
    (bfloat16: float32's top half, rounded to nearest even)."""
    if dtype == "bfloat16":
        bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.asarray(x, np.dtype(dtype))


def _from_bits(bits: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.view(np.dtype(dtype))


def _storage(dtype: str):
    return np.uint16 if dtype == "bfloat16" else np.dtype(dtype)


def _view_np(x, new_dtype, old_dtype):
    src = np.ascontiguousarray(_exact_bits(x, old_dtype))
    if src.ndim == 0:
        out = _from_bits(src.reshape(1).view(_storage(new_dtype)), new_dtype).reshape(())
    else:
        out = _from_bits(src.view(_storage(new_dtype)), new_dtype)
    return out.astype(np_dtype(new_dtype))


impls[view_p] = _view_np

# ---------------------------------------------------------------------------------------------
# fp8 (e4m3: 1 sign bit, 4 exponent bits with bias 7, 3 mantissa bits; codes 0x7F and 0xFF are
# NaN, there is no infinity). MLX computes the codecs in float32; float64 is refused because
# MLX's kernels give wrong results for it.

_FP8_FLOATS = ("float16", "bfloat16", "float32")


def _to_fp8_rule(x):
    if x.dtype not in _FP8_FLOATS:
        raise TypeError(
            f"to_fp8: expects float16, bfloat16 or float32, got {x.str_short()}"
            + (
                " (MLX's to_fp8 is wrong for float64: convert to float32 first)"
                if x.dtype == "float64"
                else ""
            )
        )
    return [ShapedArray(x.shape, "uint8")]


def _from_fp8_rule(x, *, dtype):
    if x.dtype != "uint8":
        raise TypeError(f"from_fp8: expects uint8 fp8 codes, got {x.str_short()}")
    if dtype not in _FP8_FLOATS:
        raise TypeError(
            f"from_fp8: dtype must be float16, bfloat16 or float32, got {dtype}"
            + (
                " (MLX's from_fp8 is wrong for float64: convert afterwards)"
                if dtype == "float64"
                else ""
            )
        )
    return [ShapedArray(x.shape, dtype)]


to_fp8_p = def_primitive("to_fp8", "bitcast", _to_fp8_rule)
from_fp8_p = def_primitive("from_fp8", "bitcast", _from_fp8_rule)


def to_fp8(x):
    """The e4m3 codes (uint8) of ``x``, rounded to nearest even, saturating at +-448."""
    return bind(to_fp8_p, x)


def from_fp8(x, dtype: str):
    """The values of e4m3 codes ``x`` (uint8) as ``dtype``."""
    return bind(from_fp8_p, x, dtype=dtype)


for _p in (to_fp8_p, from_fp8_p):
    defzero(_p)
    defelementwise(_p)
lowerings[to_fp8_p] = lambda a, ins, outs: f"mx.to_fp8({a[0]})"
lowerings[from_fp8_p] = lambda a, ins, outs, dtype: f"mx.from_fp8({a[0]}, {_dt(dtype)})"


def _fp8_table() -> np.ndarray:
    codes = np.arange(256)
    exponent, mantissa = (codes >> 3) & 15, (codes & 7).astype(np.float64)
    magnitude = np.where(
        exponent == 0, mantissa * 2.0**-9, (1 + mantissa / 8) * 2.0 ** (exponent - 7.0)
    )
    magnitude[(codes & 127) == 127] = np.nan
    return np.where(codes >= 128, -magnitude, magnitude)


_FP8_VALUES = _fp8_table()


def _to_fp8_np(x):
    a = np.abs(x)
    with np.errstate(all="ignore"):
        frac, exp = np.frexp(np.where(a > 0, a, 1.0))  # a = frac * 2**exp, frac in [0.5, 1)
        exp = exp - 1  # a = (2 * frac) * 2**exp with 2 * frac in [1, 2)
        mant = np.rint((2 * frac - 1) * 8)  # 3 mantissa bits, rounded half to even
        normal = (exp + 7) * 8 + mant  # a mantissa that rounds up to 8 carries into exp
        subnormal = np.rint(a * 2.0**9)  # multiples of 2**-9, half to even
        code = np.where(a < 2.0**-6, subnormal, normal)
        code = np.where(np.isnan(a) | (a >= 448), 0x7E, code)
    return (code.astype(np.uint8) | (np.signbit(x).astype(np.uint8) << 7)).astype(np.uint8)


impls[to_fp8_p] = _to_fp8_np
round_inputs.add(to_fp8_p)
impls[from_fp8_p] = lambda x, dtype: _FP8_VALUES[x.astype(np.int64)]

"""MLX's quantization formats in NumPy: the float64 reference implementations of quantize and
dequantize that the interpreter (``autodiff/interpret.py``) runs for the primitives of
``autodiff/ops/quantized.py``.

Packing: each quantized element takes ``bits`` bits of a little-endian bit stream (element
``i`` at bits ``i * bits ...``), stored in uint32 words; that is MLX's layout for every
``bits`` (for 3, 5 and 6 bits too, where MLX writes the stream byte by byte).

Modes (as ``mx.quantize`` documents them):

- ``affine``: per group of ``group_size`` elements a float scale and bias, ``w = s * q + b``,
  with MLX's choice of scale and bias (the group's edge of larger magnitude is represented
  exactly);
- ``mxfp4``/``mxfp8``: E2M1 / E4M3 elements and a shared E8M0 (power of two) scale, the
  smallest power of two with ``max|w| / scale`` within the element range;
- ``nvfp4``: E2M1 elements and an E4M3 scale, optionally divided by a global scale.

Quantize follows the formulas of MLX's CPU path step by step, in float64 (so that finite
differences of scales and biases are accurate); the integer codes it gives equal MLX's except
when a value falls within float32 rounding of a rounding boundary.
"""

from __future__ import annotations

import numpy as np

# mode -> (default group_size, default bits)
MODES = {"affine": (64, 4), "mxfp4": (32, 4), "mxfp8": (32, 8), "nvfp4": (16, 4)}
AFFINE_BITS = (2, 3, 4, 5, 6, 8)
AFFINE_GROUP_SIZES = (32, 64, 128)
# E2M1 values by code (bit 3 is the sign)
FP4_VALUES = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
)
NVFP4_SCALE_ENCODE = 448.0 * 6.0  # the global scale's reference range


def params(mode: str, group_size: int | None, bits: int | None, fn: str) -> tuple[int, int]:
    """``(group_size, bits)`` with MLX's defaults for ``mode``; checks what MLX checks."""
    if mode not in MODES:
        raise ValueError(f"[{fn}] Invalid quantization mode '{mode}': use one of {list(MODES)}")
    gs0, bits0 = MODES[mode]
    gs = gs0 if group_size is None else int(group_size)
    b = bits0 if bits is None else int(bits)
    if mode == "affine":
        if gs not in AFFINE_GROUP_SIZES:
            raise ValueError(f"[{fn}] affine group_size must be one of 32, 64, 128; got {gs}")
        if b not in AFFINE_BITS:
            raise ValueError(f"[{fn}] affine bits must be one of {AFFINE_BITS}; got {b}")
    elif (gs, b) != (gs0, bits0):
        raise ValueError(f"[{fn}] {mode} requires group_size={gs0} and bits={bits0}")
    return gs, b


def packed_size(n: int, bits: int) -> int:
    """uint32 words holding ``n`` elements of ``bits`` bits."""
    return n * bits // 32


# ---------------------------------------------------------------------------------------------
# bit streams


def unpack(wq: np.ndarray, bits: int) -> np.ndarray:
    """(..., words) uint32 -> (..., words * 32 // bits) int64 codes."""
    wq = np.ascontiguousarray(np.asarray(wq, dtype=np.uint32)).astype("<u4")
    lead = wq.shape[:-1]
    stream = np.unpackbits(wq.view(np.uint8).reshape(lead + (-1,)), axis=-1, bitorder="little")
    groups = stream.reshape(lead + (-1, bits)).astype(np.int64)
    return (groups << np.arange(bits)).sum(-1)


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """(..., n) integer codes in [0, 2**bits) -> (..., n * bits // 32) uint32."""
    codes = np.asarray(codes, dtype=np.int64)
    lead = codes.shape[:-1]
    stream = ((codes[..., None] >> np.arange(bits)) & 1).astype(np.uint8)
    packed = np.packbits(stream.reshape(lead + (-1,)), axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u4").astype(np.uint32)


# ---------------------------------------------------------------------------------------------
# 8-bit floats


def to_fp8(x) -> np.ndarray:
    """E4M3 codes of ``x`` (taken as float32), rounded to nearest even, saturating at 448 (the
    bit manipulation of MLX's ToFP8)."""
    f = np.asarray(x, dtype=np.float32)
    u = f.view(np.uint32).astype(np.int64)
    sign = u & 0x80000000
    u = u ^ sign
    # subnormal range: adding 2**14 (bits 141 << 23) makes the FPU round to E4M3's last place
    denorm = np.int64(141 << 23)
    low_f = (u.astype(np.uint32).view(np.float32) + np.uint32(denorm).view(np.float32)).astype(
        np.float32
    )
    low = (low_f.view(np.uint32).astype(np.int64) - denorm) & 0xFF
    # normal range: rebias the exponent and round to nearest even on the 3 mantissa bits
    odd = (u >> 20) & 1
    high = ((u + ((7 - 127) << 23) + 0x7FFFF + odd) & 0xFFFFFFFF) >> 20 & 0xFF
    code = np.where(u < (121 << 23), low, high)
    code = np.where(u >= (543 << 21), 0x7E, code)
    return (code | (sign >> 24)).astype(np.uint8)


def from_fp8(code) -> np.ndarray:
    """Values of E4M3 codes (0x7F and 0xFF are NaN)."""
    c = np.asarray(code).astype(np.int64)
    e, m = (c >> 3) & 15, c & 7
    mag = np.where(e > 0, np.ldexp(1.0 + m / 8.0, e - 7), np.ldexp(m / 8.0, -6))
    mag = np.where((c & 127) == 127, np.nan, mag)
    return np.where(c & 128, -mag, mag)


def from_e8m0(code) -> np.ndarray:
    """Values of E8M0 scale codes, ``2**(code - 127)`` (255 reads as inf, as in MLX)."""
    c = np.asarray(code).astype(np.int64)
    return np.where(c == 255, np.inf, np.ldexp(1.0, c - 127))


def _fp4_codes(v: np.ndarray) -> np.ndarray:
    """The nearest E2M1 code (the first of equals, as MLX's argmin over the table)."""
    return np.argmin(np.abs(v[..., None] - FP4_VALUES), axis=-1)


# ---------------------------------------------------------------------------------------------
# quantize / dequantize


def _groups(w: np.ndarray, group_size: int) -> np.ndarray:
    return w.reshape(w.shape[:-1] + (w.shape[-1] // group_size, group_size))


def quantize(w, group_size: int, bits: int, mode: str, global_scale=None) -> list[np.ndarray]:
    """``[w_q, scales, biases]`` (affine) or ``[w_q, scales]``, as ``mx.quantize``."""
    w = np.asarray(w, dtype=np.float64)
    g = _groups(w, group_size)
    if mode == "affine":
        n_bins = float((1 << bits) - 1)
        w_max, w_min = g.max(-1), g.min(-1)
        low_edge = np.abs(w_min) > np.abs(w_max)
        scale = np.maximum((w_max - w_min) / n_bins, 1e-7)
        scale = np.where(low_edge, scale, -scale)
        edge = np.where(low_edge, w_min, w_max)
        q0 = np.rint(edge / scale)
        exact = q0 != 0
        scale = np.where(exact, edge / np.where(exact, q0, 1.0), scale)
        bias = np.where(exact, edge, 0.0)
        q = np.clip(np.rint((g - bias[..., None]) / scale[..., None]), 0, n_bins)
        return [pack(q.reshape(w.shape), bits), scale, bias]
    amax = np.abs(g).max(-1)
    if mode == "nvfp4":
        enc = 1.0 if global_scale is None else NVFP4_SCALE_ENCODE / float(np.ravel(global_scale)[0])
        s_code = to_fp8(amax / 6.0 * enc)
        with np.errstate(all="ignore"):
            v = g / from_fp8(s_code)[..., None] * enc
    else:
        maxval = 6.0 if bits == 4 else 448.0
        with np.errstate(divide="ignore"):
            e = np.where(amax == 0, 0, np.ceil(np.log2(amax / maxval))).astype(np.int64)
        v = g / np.ldexp(1.0, e)[..., None]
        s_code = (e + 127) & 0xFF
    codes = _fp4_codes(v) if bits == 4 else to_fp8(v).astype(np.int64)
    return [pack(codes.reshape(w.shape), bits), s_code.astype(np.uint8)]


def dequantize(wq, scales, biases, group_size: int, bits: int, mode: str, global_scale=None):
    """The float64 values ``mx.dequantize`` represents (before rounding to its dtype)."""
    codes = _groups(unpack(wq, bits), group_size)
    if mode == "affine":
        out = codes * np.asarray(scales)[..., None] + np.asarray(biases)[..., None]
    else:
        vals = FP4_VALUES[codes] if bits == 4 else from_fp8(codes)
        if mode == "nvfp4":
            scale = from_fp8(scales)
            if global_scale is not None:
                scale = scale * (float(np.ravel(global_scale)[0]) / NVFP4_SCALE_ENCODE)
        else:
            scale = from_e8m0(scales)
        out = vals * scale[..., None]
    return out.reshape(out.shape[:-2] + (-1,))

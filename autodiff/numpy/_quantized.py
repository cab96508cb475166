"""Quantized arrays and products: quantize, dequantize, quantized_matmul, gather_mm, gather_qmm
(the primitives of ``autodiff/ops/quantized.py``, ``quantized_matmul.py`` and ``gather_mm.py``).

Under autodiff's transforms the packed weights are integers and carry no derivative; what is
differentiable and how is in each function's docstring and in ``autodiff/ops/quantized.py``.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import dtype_name, is_float, is_int
from autodiff.numpy._core import astype, broadcast_shapes, mirror, result_type
from autodiff.numpy._linalg import matmul
from autodiff.ops import quantized_format as F
from autodiff.ops.gather_mm import default_indices
from autodiff.tracing import aval_of


def _params(mode, group_size, bits, fn):
    return F.params(mode, group_size, bits, fn)


def _check_global_scale(global_scale, mode, fn):
    if global_scale is None:
        return ()
    if mode != "nvfp4":
        raise ValueError(f"[{fn}] global_scale is only supported in 'nvfp4' mode")
    a = aval_of(global_scale)
    if a.size != 1 or a.dtype != "float32":
        raise ValueError(f"[{fn}] global_scale must be one float32 value, got {a.str_short()}")
    return (global_scale,)


def _affine_scales(fn, scales, biases, mode):
    """Scales and biases in their common float dtype (affine), or the uint8 scales."""
    if mode != "affine":
        if biases is not None:
            raise ValueError(f"[{fn}] biases must be None in '{mode}' mode")
        return scales, ()
    if biases is None:
        raise ValueError(f"[{fn}] biases must be provided for affine quantization")
    dtype = result_type(scales, biases)
    if not is_float(dtype):
        raise ValueError(f"[{fn}] scales and biases must be floats, got {dtype}")
    return astype(scales, dtype), (astype(biases, dtype),)


@mirror(mx.quantize)
def quantize(
    w,
    /,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    *,
    global_scale=None,
):
    """Quantize ``w`` along its last axis, as ``mx.quantize``: ``(w_q, scales, biases)`` in
    affine mode, ``(w_q, scales)`` in the fp modes, in MLX's packed format.

    Under autodiff's transforms ``w_q`` (uint32) and the fp modes' uint8 scales have zero
    derivative (integers); the affine scales and biases are differentiated as the
    piecewise-linear functions of each group's maximum and minimum that MLX's formula
    makes them (as ``mx.grad`` does).

    Example:
        >>> w_q, scales, biases = anp.quantize(w, group_size=64, bits=4)
    """
    gs, b = _params(mode, group_size, bits, "quantize")
    a = aval_of(w)
    if not is_float(a.dtype) or len(a.shape) < 2 or a.shape[-1] % gs:
        raise ValueError(
            f"[quantize] expects a float array with at least 2 dimensions whose last axis is "
            f"divisible by group_size={gs}, got {a.str_short()}"
        )
    extra = _check_global_scale(global_scale, mode, "quantize")
    return list(lax.quantize(w, *extra, group_size=gs, bits=b, mode=mode))


@mirror(mx.dequantize)
def dequantize(
    w,
    /,
    scales,
    biases=None,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    global_scale=None,
    dtype=None,
):
    """The floats that ``w`` (packed by :func:`quantize`) represents, as ``mx.dequantize``.

    Linear in ``scales`` and ``biases`` (affine: ``w = scales * q + biases`` per group) and
    in nvfp4's ``global_scale``: those are differentiable; ``w`` is integer.
    """
    gs, b = _params(mode, group_size, bits, "dequantize")
    if aval_of(w).dtype != "uint32" or len(aval_of(w).shape) < 2:
        raise ValueError("[dequantize] the matrix must be uint32 with at least 2 dimensions")
    scales, rest = _affine_scales("dequantize", scales, biases, mode)
    extra = _check_global_scale(global_scale, mode, "dequantize")
    default = aval_of(scales).dtype if mode == "affine" else "bfloat16"
    out = default if dtype is None else dtype_name(dtype)
    if not is_float(out):
        raise ValueError(f"[dequantize] dtype must be a float type, got {out}")
    return lax.dequantize(w, scales, *rest, *extra, group_size=gs, bits=b, mode=mode, dtype=out)


@mirror(mx.quantized_matmul)
def quantized_matmul(
    x,
    w,
    /,
    scales,
    biases=None,
    transpose: bool = True,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
):
    """``x @ dequantize(w, scales, biases).T`` (``transpose=False``: without ``.T``) with MLX's
    quantized kernel, as ``mx.quantized_matmul``.

    Differentiable in ``x`` (the transpose is ``quantized_matmul`` with ``transpose``
    flipped, so LoRA adapters on a quantized model train) and, in affine mode, in
    ``scales`` and ``biases``, to any order and under ``vmap``; ``w`` is integer. Batch axes
    of ``x`` and ``w`` broadcast when both have them.

    Example:
        >>> w_q, s, b = mx.quantize(w)
        >>> ad.grad(lambda x: anp.quantized_matmul(x, w_q, s, b).sum())(x)
    """
    gs, b = _params(mode, group_size, bits, "quantized_matmul")
    scales, rest = _affine_scales("quantized_matmul", scales, biases, mode)
    xa, wa = aval_of(x), aval_of(w)
    dtype = result_type(x, scales) if mode == "affine" else xa.dtype
    if not is_float(dtype):
        raise ValueError(f"[quantized_matmul] x must be floating point, got {xa.str_short()}")
    if mode == "affine":
        x, scales, rest = astype(x, dtype), astype(scales, dtype), (astype(rest[0], dtype),)
    if len(wa.shape) > 2:
        if len(xa.shape) <= 2:
            raise ValueError(
                "[quantized_matmul] a batched w (rank > 2) needs a batched x too (MLX returns an "
                "unbatched result here): give x the batch axes, e.g. x[None]"
            )
        batch = broadcast_shapes(xa.shape[:-2], wa.shape[:-2])
        x = lax.broadcast_to(x, batch + xa.shape[-2:])
        w, scales, *rest = (
            lax.broadcast_to(a, batch + aval_of(a).shape[-2:]) for a in (w, scales, *rest)
        )
    return lax.quantized_matmul(
        x, w, scales, *rest, transpose=bool(transpose), group_size=gs, bits=b, mode=mode
    )


def _indices(given, fn):
    if given is None:
        return None
    if not is_int(aval_of(given).dtype):
        raise ValueError(f"[{fn}] indices must be integers, got {aval_of(given).str_short()}")
    return given


def _broadcast_indices(lhs, rhs, a_shape, b_shape):
    """Both index arrays, the missing one MLX's default, broadcast to one shape."""
    shapes = [aval_of(i).shape for i in (lhs, rhs) if i is not None]
    if lhs is None:
        shapes.append(tuple(a_shape[:-2]))
    if rhs is None:
        shapes.append(tuple(b_shape[:-2]))
    out = broadcast_shapes(*shapes)
    lhs = default_indices(a_shape, out) if lhs is None else lax.broadcast_to(lhs, out)
    rhs = default_indices(b_shape, out) if rhs is None else lax.broadcast_to(rhs, out)
    return lhs, rhs


@mirror(mx.gather_mm)
def gather_mm(a, b, /, lhs_indices=None, rhs_indices=None, *, sorted_indices: bool = False):
    """``a[lhs_indices] @ b[rhs_indices]`` over the flattened batch axes of ``a`` and ``b``, with
    MLX's gathered matmul kernel, as ``mx.gather_mm`` (mixture-of-experts layers).

    Differentiable in ``a`` and ``b`` to any order (bilinear; gradients of gathered matrices
    are summed where an index repeats) and batchable; the indices are integer constants.

    Example:
        >>> ad.grad(lambda w: anp.gather_mm(x, w, None, experts).sum())(w)
    """
    if lhs_indices is None and rhs_indices is None:
        return matmul(a, b)
    a_vec, b_vec = len(aval_of(a).shape) == 1, len(aval_of(b).shape) == 1
    if not aval_of(a).shape or not aval_of(b).shape:
        raise ValueError("[gather_mm] inputs must have at least one dimension")
    dtype = result_type(a, b)
    if not is_float(dtype):
        raise ValueError(f"[gather_mm] only floating point types are supported, not {dtype}")
    a = lax.expand_dims(astype(a, dtype), (0,) if a_vec else ())
    b = lax.expand_dims(astype(b, dtype), (1,) if b_vec else ())
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if sa[-1] != sb[-2]:
        raise ValueError(f"[gather_mm] last axis of {sa} does not match axis -2 of {sb}")
    lhs = _indices(lhs_indices, "gather_mm")
    rhs = _indices(rhs_indices, "gather_mm")
    lhs, rhs = _broadcast_indices(lhs, rhs, sa, sb)
    out = lax.gather_mm(
        a,
        b,
        lhs,
        rhs,
        sorted_indices=bool(sorted_indices),
        lhs_none=lhs_indices is None,
        rhs_none=rhs_indices is None,
    )
    return _squeeze_vectors(out, a_vec, b_vec)


def _squeeze_vectors(out, a_vec, b_vec):
    n = len(aval_of(out).shape)
    return lax.squeeze(out, [n - 2] * a_vec + [n - 1] * b_vec)


@mirror(mx.gather_qmm)
def gather_qmm(
    x,
    w,
    /,
    scales,
    biases=None,
    lhs_indices=None,
    rhs_indices=None,
    transpose: bool = True,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    global_scale=None,
    *,
    sorted_indices: bool = False,
):
    """:func:`quantized_matmul` with matrix-level gather, as ``mx.gather_qmm``:
    ``x[lhs_indices] @ dequantize(w[rhs_indices]).T`` over the flattened batch axes.

    Differentiable in ``x`` and (affine) in ``scales`` and ``biases``, to any order and under
    ``vmap``; ``w`` and the indices are integers. ``global_scale`` (GPU-only in MLX) is not
    supported under autodiff's transforms.
    """
    if global_scale is not None:
        raise NotImplementedError(
            "[gather_qmm] global_scale is not supported under autodiff's transforms (MLX runs "
            "it only on the GPU); dequantize w with anp.dequantize(..., global_scale=...) and "
            "use anp.gather_mm instead"
        )
    if lhs_indices is None and rhs_indices is None:
        return quantized_matmul(x, w, scales, biases, transpose, group_size, bits, mode)
    gs, b = _params(mode, group_size, bits, "gather_qmm")
    scales, rest = _affine_scales("gather_qmm", scales, biases, mode)
    dtype = result_type(x, scales) if mode == "affine" else aval_of(x).dtype
    if not is_float(dtype):
        raise ValueError(f"[gather_qmm] x must be floating point, got {aval_of(x).str_short()}")
    x = astype(x, dtype)
    if mode == "affine":
        scales, rest = astype(scales, dtype), (astype(rest[0], dtype),)
    xs, ws = aval_of(x).shape, aval_of(w).shape
    if len(xs) < 2:
        raise ValueError(f"[gather_qmm] x must have at least 2 dimensions, got {xs}")
    lhs = _indices(lhs_indices, "gather_qmm")
    rhs = _indices(rhs_indices, "gather_qmm")
    lhs, rhs = _broadcast_indices(lhs, rhs, xs, ws)
    return lax.gather_qmm(
        x,
        w,
        scales,
        *rest,
        lhs,
        rhs,
        transpose=bool(transpose),
        group_size=gs,
        bits=b,
        mode=mode,
        sorted_indices=bool(sorted_indices),
        lhs_none=lhs_indices is None,
        rhs_none=rhs_indices is None,
    )


@mirror(mx.qqmm)
def qqmm(
    x,
    w,
    scales=None,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "nvfp4",
    global_scale_x=None,
    global_scale_w=None,
):
    """``quantize(x) @ quantize(w).T`` with MLX's kernel, as ``mx.qqmm`` (``w`` may come packed,
    with its ``scales``).

    Traceable, batchable and jit-able, but not differentiable: the on-the-fly quantization
    makes it piecewise constant (see ``autodiff/ops/qqmm.py``); differentiating raises
    NotImplementedError with what to do instead.
    """
    if mode == "affine":
        raise ValueError("[qqmm] only the fp modes (nvfp4, mxfp8, mxfp4) are supported")
    gs, b = _params(mode, group_size, bits, "qqmm")
    quantized = aval_of(w).dtype == "uint32"
    if quantized != (scales is not None):
        raise ValueError("[qqmm] scales must be given exactly when w is quantized (uint32)")
    if (global_scale_x is None) != (global_scale_w is None):
        raise ValueError("[qqmm] give both global_scale_x and global_scale_w, or neither")
    extra = _check_global_scale(global_scale_x, mode, "qqmm")
    extra += _check_global_scale(global_scale_w, mode, "qqmm")
    xs = aval_of(x).shape
    if len(xs) == 1:
        x = lax.reshape(x, (1,) + xs)
    elif len(xs) > 2:
        x = lax.reshape(x, (int(np.prod(xs[:-1])), xs[-1]))
    out = lax.qqmm(
        x,
        w,
        *([scales] if quantized else []),
        *extra,
        group_size=gs,
        bits=b,
        mode=mode,
        quantized=quantized,
    )
    n = aval_of(out).shape[-1]
    return lax.reshape(out, xs[:-1] + (n,))

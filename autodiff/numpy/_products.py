"""Structured products on MLX's kernels: block_masked_mm, segmented_mm, hadamard_transform (the
primitives of ``autodiff/ops/masked_mm.py`` and ``autodiff/ops/hadamard.py``)."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_bool, is_float, is_int
from autodiff.numpy._core import as_float, astype, broadcast_shapes, mirror, result_type
from autodiff.numpy._elementwise import multiply
from autodiff.numpy._linalg import matmul
from autodiff.tracing import aval_of


def _tiles(n, bs):
    return -(-n // bs)


@mirror(mx.block_masked_mm)
def block_masked_mm(a, b, /, block_size: int = 64, mask_out=None, mask_lhs=None, mask_rhs=None):
    """``((a * up(mask_lhs)) @ (b * up(mask_rhs))) * up(mask_out)`` with MLX's block-sparse
    kernel, as ``mx.block_masked_mm``; ``up`` repeats each mask entry over a
    ``block_size``-square block. Boolean masks select, float masks multiply.

    Differentiable in ``a``, ``b`` and the float masks (it is linear in each), to any order;
    boolean masks are constants.
    """
    if mask_out is None and mask_lhs is None and mask_rhs is None:
        return matmul(a, b)
    if block_size not in (32, 64):
        raise ValueError(f"[block_masked_mm] block_size must be 32 or 64, got {block_size}")
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if not sa or not sb:
        raise ValueError("[block_masked_mm] inputs must have at least one dimension")
    a_vec, b_vec = len(sa) == 1, len(sb) == 1
    dtype = result_type(a, b)
    if not is_float(dtype):
        raise ValueError(f"[block_masked_mm] only floating point types are supported, not {dtype}")
    a = lax.expand_dims(astype(a, dtype), (0,) if a_vec else ())
    b = lax.expand_dims(astype(b, dtype), (1,) if b_vec else ())
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if sa[-1] != sb[-2]:
        raise ValueError(f"[block_masked_mm] last axis of {sa} does not match axis -2 of {sb}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    a, b = lax.broadcast_to(a, batch + sa[-2:]), lax.broadcast_to(b, batch + sb[-2:])
    tm, tk, tn = (_tiles(d, block_size) for d in (sa[-2], sa[-1], sb[-1]))

    def prepare(mask, tiles, expand, mdtype):
        mask = lax.expand_dims(mask, expand)
        return lax.broadcast_to(astype(mask, mdtype), batch + tiles)

    mo = ml = mr = None
    if mask_out is not None:
        rank = len(aval_of(mask_out).shape) + a_vec + b_vec  # axes -2 / -1 for vector inputs
        ex = [rank - 2] * a_vec + [rank - 1] * b_vec
        mdt = "bool" if is_bool(aval_of(mask_out).dtype) else dtype
        mo = prepare(mask_out, (tm, tn), ex, mdt)
    if mask_lhs is not None or mask_rhs is not None:
        both_bool = all(m is None or is_bool(aval_of(m).dtype) for m in (mask_lhs, mask_rhs))
        mdt = "bool" if both_bool else dtype
        one = True if both_bool else 1.0
        ml = lax.full((tm, tk), one, mdt) if mask_lhs is None else mask_lhs
        mr = lax.full((tk, tn), one, mdt) if mask_rhs is None else mask_rhs
        ml = prepare(ml, (tm, tk), (len(aval_of(ml).shape) - 1,) * a_vec, mdt)
        mr = prepare(mr, (tk, tn), (len(aval_of(mr).shape),) * b_vec, mdt)
    out = lax.block_masked_mm(a, b, mo, ml, mr, block_size=block_size)
    n = len(aval_of(out).shape)
    return lax.squeeze(out, [n - 2] * a_vec + [n - 1] * b_vec)


@mirror(mx.segmented_mm)
def segmented_mm(a, b, /, segments):
    """``out[s] = a[:, start_s:end_s] @ b[start_s:end_s, :]`` for each ``(start, end)`` pair of
    ``segments`` (shape ``(..., 2)``), with MLX's kernel, as ``mx.segmented_mm``.

    Differentiable in ``a`` and ``b`` (bilinear), to any order, where MLX has no derivative;
    ``segments`` are integer constants.
    """
    if len(aval_of(a).shape) != 2 or len(aval_of(b).shape) != 2:
        raise ValueError("[segmented_mm] Batched matmul not supported: a and b must be 2-D")
    ss = aval_of(segments)
    if not is_int(ss.dtype) or not ss.shape or ss.shape[-1] != 2:
        raise ValueError(f"[segmented_mm] segments must be integers of shape (..., 2), got {ss}")
    dtype = result_type(a, b)
    if not is_float(dtype):
        raise ValueError(f"[segmented_mm] only floating point types are supported, not {dtype}")
    return lax.segmented_mm(astype(a, dtype), astype(b, dtype), segments)


@mirror(mx.hadamard_transform)
def hadamard_transform(a, scale: float | None = None):
    """The Walsh-Hadamard transform along the last axis, ``scale * H @ a`` (``scale`` defaults
    to ``1/sqrt(n)``, orthonormal), as ``mx.hadamard_transform``; ``n = m * 2**k`` with ``m``
    in (1, 12, 20, 28).

    Linear: its transpose applies ``H.T``, which differs from ``H`` for ``m`` in (20, 28)
    (where ``mx.grad`` applies ``H``).
    """
    shape = aval_of(a).shape
    if aval_of(a).size == 0:
        raise ValueError("[hadamard_transform] Does not support empty arrays.")
    n = shape[-1] if shape else 1
    s = float(np.float32(1.0 / math.sqrt(n))) if scale is None else float(np.float32(scale))
    if n == 1:
        return a if s == 1.0 else multiply(as_float(a), s)
    return lax.hadamard_transform(as_float(a), s)

"""Contractions: matmul, inner, outer, addmm, tensordot (lowered to dot_general), kron, vecdot;
einsum is in ``_einsum.py``."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_complex
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis, mirror, result_type
from autodiff.numpy._elementwise import add, multiply
from autodiff.numpy._reductions import sum as sum_
from autodiff.tracing import aval_of


def _same_dtype(a, b):
    dtype = result_type(a, b)
    return astype(a, dtype), astype(b, dtype)


@mirror(mx.matmul)
def matmul(a, b, /):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch axes, as ``mx.matmul``."""
    a, b = _same_dtype(a, b)
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if not sa or not sb:
        raise ValueError("matmul: operands must have at least one dimension; use `*` for scalars")
    na, nb = len(sa), len(sb)
    if sa[-1] != sb[max(nb - 2, 0)]:
        raise ValueError(
            f"matmul: last axis of {sa} does not match axis {-2 if nb > 1 else 0} of {sb}"
        )
    if nb == 1:
        return lax.dot_general(a, b, (((na - 1,), (0,)), ((), ())))
    if na == 1:
        return lax.dot_general(a, b, (((0,), (nb - 2,)), ((), ())))  # (batch_b.., n)
    if nb == 2:
        return lax.dot_general(a, b, (((na - 1,), (0,)), ((), ())))
    if na == 2:
        out = lax.dot_general(a, b, (((1,), (nb - 2,)), ((), ())))  # (m, batch_b.., n)
        return lax.transpose(out, list(range(1, nb - 1)) + [0, nb - 1])
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    a = lax.broadcast_to(a, batch + sa[-2:])
    b = lax.broadcast_to(b, batch + sb[-2:])
    k = len(batch)
    return lax.dot_general(a, b, (((k + 1,), (k,)), (tuple(range(k)), tuple(range(k)))))


@mirror(mx.inner)
def inner(a, b, /):
    """Sum-product over the last axes, as ``mx.inner``."""
    a, b = _same_dtype(a, b)
    na, nb = len(aval_of(a).shape), len(aval_of(b).shape)
    if na == 0 or nb == 0:
        return multiply(a, b)
    return lax.dot_general(a, b, (((na - 1,), (nb - 1,)), ((), ())))


@mirror(mx.outer)
def outer(a, b, /):
    """Outer product of the flattened inputs, as ``mx.outer``."""
    # a broadcast product, as MLX computes it: no matmul (which MLX refuses for integers)
    a, b = _same_dtype(a, b)
    return multiply(lax.reshape(a, (aval_of(a).size, 1)), lax.reshape(b, (1, aval_of(b).size)))


@mirror(mx.addmm)
def addmm(c, a, b, /, alpha: float = 1.0, beta: float = 1.0):
    """``alpha * (a @ b) + beta * c``, as ``mx.addmm``."""
    ab = matmul(a, b)
    return add(multiply(ab, alpha) if alpha != 1.0 else ab, multiply(c, beta) if beta != 1.0 else c)


@mirror(mx.tensordot)
def tensordot(a, b, /, axes=2):
    """Contract ``axes`` of ``a`` with ``axes`` of ``b``, as ``mx.tensordot``."""
    a, b = _same_dtype(a, b)
    na, nb = len(aval_of(a).shape), len(aval_of(b).shape)
    if isinstance(axes, int):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = ([x] if isinstance(x, int) else list(x) for x in axes)
    ax_a = tuple(canonical_axis(x, na, "tensordot") for x in ax_a)
    ax_b = tuple(canonical_axis(x, nb, "tensordot") for x in ax_b)
    return lax.dot_general(a, b, ((ax_a, ax_b), ((), ())))


@mirror(mx.kron)
def kron(a, b):
    """The Kronecker product, as ``mx.kron``: ``a``'s axes and ``b``'s (aligned at the end)
    interleaved by broadcasting and merged."""
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if aval_of(a).size == 0 or aval_of(b).size == 0:
        raise ValueError("[kron] Input arrays cannot be empty.")
    nd = max(len(sa), len(sb))
    pa, pb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a2 = lax.reshape(a, [d for i in range(nd) for d in (pa[i], 1)])
    b2 = lax.reshape(b, [d for i in range(nd) for d in (1, pb[i])])
    return lax.reshape(multiply(a2, b2), [x * y for x, y in zip(pa, pb)])


@mirror(mx.vecdot)
def vecdot(a, b, /, *, axis: int = -1):
    """Dot products of the vectors along ``axis`` (the other axes broadcast), as
    ``mx.vecdot``; both inputs must have that axis, counted alike from their ends."""
    sa, sb = aval_of(a).shape, aval_of(b).shape
    if not sa or not sb:
        raise ValueError("[vecdot] inputs must be at least 1D.")
    ax = axis + len(sa) if axis < 0 else axis
    if not 0 <= ax < len(sa) or (axis + len(sb) != ax if axis < 0 else axis >= len(sb)):
        raise ValueError("[vecdot] axis is out of bounds.")
    if sa[ax] != sb[ax]:
        raise ValueError("[vecdot] a and b must have the same size along axis.")
    if is_complex(result_type(a, b)):
        raise NotImplementedError("vecdot of complex arrays is not supported on traced values")
    return sum_(multiply(a, b), axis=ax)

"""``cross`` and ``norm`` of ``autodiff.numpy.linalg``: composites of MLX's own operations
(the singular values for the 2, -2 and nuclear matrix norms), so traced values equal MLX's."""

from __future__ import annotations

import math

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_float
from autodiff.numpy import _elementwise as E
from autodiff.numpy import _reductions as R
from autodiff.numpy import _shape as S
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis, mirror, result_type
from autodiff.numpy._creation import zeros_like
from autodiff.tracing import aval_of


def _shape(x):
    return aval_of(x).shape


def _float_dtype(x) -> str:
    """MLX's ``at_least_float``: integers and bools become float32."""
    d = aval_of(x).dtype
    return d if is_float(d) else "float32"


@mirror(mx.linalg.cross)
def cross(a, b, axis: int = -1):
    """The cross product along ``axis`` (size 2 or 3; size 2 means a zero third component),
    as ``mx.linalg.cross``, built from the same operations; differentiable (bilinear)."""
    for x in (a, b):
        s = _shape(x)
        ax = canonical_axis(axis, len(s), "[linalg::cross]")
        if s[ax] not in (2, 3):
            raise ValueError("[linalg::cross] The specified axis must have size 2 or 3.")
    sa, sb = list(_shape(a)), list(_shape(b))
    a2, b2 = sa[axis] == 2, sb[axis] == 2
    dt = result_type(a, b)
    sa[axis], sb[axis] = 3, 3
    out = list(broadcast_shapes(sa, sb))
    ax = axis % len(out)
    out[ax] = 2 if a2 else 3
    a_ = S.broadcast_to(astype(a, dt), out)
    out[ax] = 2 if b2 else 3
    b_ = S.broadcast_to(astype(b, dt), out)
    x = S.split(a_, 2 if a2 else 3, axis=ax)
    y = S.split(b_, 2 if b2 else 3, axis=ax)
    mul, sub = E.multiply, E.subtract
    if a2 and b2:
        z = zeros_like(x[0])
        parts = [z, z]
    elif b2:
        parts = [E.negative(mul(x[2], y[1])), mul(x[2], y[0])]
    elif a2:
        parts = [mul(x[1], y[2]), E.negative(mul(x[0], y[2]))]
    else:
        parts = [sub(mul(x[1], y[2]), mul(x[2], y[1])), sub(mul(x[2], y[0]), mul(x[0], y[2]))]
    parts.append(sub(mul(x[0], y[1]), mul(x[1], y[0])))
    return S.concatenate(parts, axis=ax)


def _l2(a, axes, keepdims):
    return E.sqrt(R.sum(E.square(a), axis=axes, keepdims=keepdims))


def _vector_norm(a, ord, axes, keepdims):
    dt = _float_dtype(a)
    if ord == 0:
        return astype(R.sum(E.not_equal(a, 0), axis=axes, keepdims=keepdims), dt)
    if ord == 1:
        return astype(R.sum(E.abs(a), axis=axes, keepdims=keepdims), dt)
    if ord == 2:
        return _l2(a, axes, keepdims)
    if ord == math.inf:
        return astype(R.max(E.abs(a), axis=axes, keepdims=keepdims), dt)
    if ord == -math.inf:
        return astype(R.min(E.abs(a), axis=axes, keepdims=keepdims), dt)
    powered = E.power(E.abs(a), astype(mx.array(ord), dt))
    return E.power(R.sum(powered, axis=axes, keepdims=keepdims), astype(mx.array(1.0 / ord), dt))


def _singular_values(a, row, col, keepdims):
    """The singular values of the matrices in axes (row, col), as MLX moves them."""
    if row > col:
        m = S.moveaxis(S.moveaxis(a, row, -1), col, -1)
    else:
        m = S.moveaxis(S.moveaxis(a, col, -1), row, -2)
    return lax.svd(m, False, False)[0]


def _matrix_norm(a, ord, axes, keepdims):
    nd = len(_shape(a))
    row, col = (x % nd for x in axes)
    dt = _float_dtype(a)
    if ord in ("f", "fro"):
        return _l2(a, axes, keepdims)
    if ord in ("nuc", 2, -2):
        s = _singular_values(a, row, col, keepdims)
        out = R.sum(s, axis=-1) if ord == "nuc" else (R.max if ord == 2 else R.min)(s, axis=-1)
        if keepdims:
            out = S.expand_dims(out, sorted((row, col)))
        return out if ord == "nuc" else astype(out, dt)
    if isinstance(ord, str):
        raise ValueError(f"[linalg::norm] Invalid ord value '{ord}' for matrix norm.")
    if ord in (1, -1):
        col -= (not keepdims) and col > row and col > 0
        pick = R.max if ord == 1 else R.min
        return astype(
            pick(R.sum(E.abs(a), axis=row, keepdims=keepdims), axis=col, keepdims=keepdims), dt
        )
    if ord in (math.inf, -math.inf):
        row -= (not keepdims) and row > col and row > 0
        pick = R.max if ord > 0 else R.min
        return astype(
            pick(R.sum(E.abs(a), axis=col, keepdims=keepdims), axis=row, keepdims=keepdims), dt
        )
    raise ValueError(f"[linalg::norm] Invalid ord {float(ord)} for matrix norm.")


def _norm(a, ord=None, axis=None, keepdims: bool = False):
    nd = len(_shape(a))
    if ord is None and axis is None:
        out = _l2(S.flatten(a), [0], keepdims)
        return S.reshape(out, (1,) * nd) if keepdims else out
    axes = list(range(nd)) if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    if len(axes) > 2 or not axes:
        raise ValueError("[linalg::norm] Received too many axes for norm.")
    if ord is None:
        return _l2(a, axes, keepdims)
    if isinstance(ord, str) and len(axes) != 2:
        raise ValueError(
            f"[linalg::norm] Norm '{ord}' only supported for matrices, but received "
            f"{len(axes)} axis/axes."
        )
    if len(axes) == 1:
        return _vector_norm(a, ord, axes, keepdims)
    return _matrix_norm(a, ord, axes, keepdims)


_mx_norm = mirror(mx.linalg.norm)(_norm)


def norm(a, /, ord=None, axis=None, keepdims: bool = False, *, stream=None):
    """Vector and matrix norms, as ``mx.linalg.norm`` (see its table of ``ord``s), built from
    the same operations (and, for ``ord`` 2, -2 and 'nuc' of matrices, the singular values,
    on the CPU stream).

    Derivatives, to any order, are those of the operations: the 2-norm and Frobenius norm
    have derivative ``a / norm`` (nan at zero, as ``sqrt``), ``ord=inf``/``1``... follow
    ``abs`` (``abs'(0) = 1``) and ``max``/``min`` (ties share the derivative), the
    nuclear norm ``U @ Vt`` (defined while the matrix has full rank), ``ord=2``/``-2`` the
    singular vectors of the largest/smallest singular value (not defined where it is
    repeated).

    Example:
        >>> ad.grad(lambda x: anp.linalg.norm(x, ord="nuc"))(mx.random.normal((3, 2)))
    """
    if stream is None and ord in ("nuc", 2, -2):
        two_axes = (
            len(_shape(a)) == 2 if axis is None else not isinstance(axis, int) and len(axis) == 2
        )
        if two_axes:
            stream = mx.cpu  # MLX computes these norms with svd, which runs on the CPU only
    return _mx_norm(a, ord, axis, keepdims, stream=stream)


norm.traced = _norm

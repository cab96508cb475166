"""``autodiff.numpy.linalg``: mlx.core.linalg's functions, traceable and differentiable.

Each function has MLX's name, signature and defaults. On concrete arrays it calls MLX; on
traced ones it records the primitives of ``autodiff/ops/linalg.py``, ``lu.py`` and
``spectral.py`` (or, where MLX composes its result from other operations, the same
composition), so traced results equal MLX's.

**Streams.** MLX runs its linalg kernels on the CPU stream only and raises on a GPU stream.
These functions (all but ``cross``, and ``norm`` except its singular-value orders) therefore
default to ``stream=mx.cpu`` when called eagerly without a stream, and lowered programs place
them on ``mx.cpu`` too, so a program that mixes linalg with GPU work runs unchanged on a GPU
build. On the CPU build this is exactly MLX's default.

**Derivatives** (MLX has none for inv, tri_inv, cholesky, cholesky_inv, solve,
solve_triangular, qr, svd, eigh, eigvalsh, eig, eigvals, lu, lu_factor, pinv, nor for
det/slogdet of matrices larger than 3x3 or the 2, -2 and 'nuc' norms): every function here is
differentiable to any order in forward and reverse mode (eig and eigvals with complex
tangents, JAX's convention), and batches under ``vmap``. Where a derivative is not defined the
docstring says what is returned.

**Differences from MLX.** Index results (``lu``'s pivots and permutation) are int32 (MLX:
uint32). ``solve`` broadcasts batch axes and takes a 1-D ``b`` with batched ``a`` (MLX
requires ``b`` of ``a``'s rank). Complex inputs (MLX's svd and eigh accept complex64) are not
supported while tracing.

This module holds the inverses and solves; the factorisations and what is computed from them
(eigenvalues, determinants) are in ``autodiff/numpy/_linalg_factor.py``, re-exported here.
"""

from __future__ import annotations

import functools

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_float
from autodiff.numpy import _shape as S
from autodiff.numpy._core import astype, broadcast_shapes, mirror, result_type
from autodiff.numpy._linalg import matmul
from autodiff.numpy._norm import cross, norm  # noqa: F401  (public here, as in mx.linalg)
from autodiff.tracing import aval_of

__all__ = [
    "cholesky",
    "cholesky_inv",
    "cross",
    "det",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "inv",
    "lu",
    "lu_factor",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "tri_inv",
]


def _on_cpu(f):
    """Eager calls without ``stream=`` run on ``mx.cpu``, the only stream MLX's linalg runs on
    (MLX itself would raise where the default device is a GPU)."""

    @functools.wraps(f)
    def g(*args, stream=None, **kwargs):
        return f(*args, stream=mx.cpu if stream is None else stream, **kwargs)

    return g


def _shape(x):
    return aval_of(x).shape


def _float_dtype(x) -> str:
    """MLX's ``at_least_float``: integers and bools become float32."""
    d = aval_of(x).dtype
    return d if is_float(d) else "float32"


def _float(x):
    return astype(x, _float_dtype(x))


# ---------------------------------------------------------------------------------------------
# inverses and solves


@_on_cpu
@mirror(mx.linalg.inv)
def inv(a):
    """The inverse of a square matrix (batched over leading axes), as ``mx.linalg.inv``.

    Derivative ``-inv(a) @ da @ inv(a)``, to any order. A singular matrix raises (MLX's LAPACK
    call fails), in the value and in the derivative.

    Example:
        >>> a = mx.array([[2.0, 1.0], [1.0, 3.0]])
        >>> ad.grad(lambda a: anp.linalg.inv(a).sum())(a)
    """
    return lax.inv(a)


@_on_cpu
@mirror(mx.linalg.tri_inv)
def tri_inv(a, upper: bool = False):
    """The inverse of a triangular matrix, as ``mx.linalg.tri_inv``: only the lower (or, with
    ``upper``, upper) triangle is read, so the derivative in the other triangle is zero."""
    return lax.tri_inv(a, upper)


@_on_cpu
@mirror(mx.linalg.cholesky)
def cholesky(a, upper: bool = False):
    """The Cholesky factor of a symmetric positive-definite matrix, as ``mx.linalg.cholesky``:
    ``L`` with ``L @ L.T == a`` (``U`` with ``U.T @ U == a`` if ``upper``).

    Only the lower (upper) triangle of ``a`` is read: the derivative is that of the symmetric
    matrix it defines, zero in the other triangle. For ``a`` built symmetric (``x @ x.T``) this
    is the usual derivative. Not defined where ``a`` is not positive definite (MLX returns
    garbage there, without an error).

    Example:
        >>> x = mx.random.normal((3, 3)); spd = lambda x: x @ x.T + 3 * mx.eye(3)
        >>> ad.grad(lambda x: anp.log(anp.linalg.cholesky(spd(x)).sum()))(x)
    """
    return lax.cholesky(a, upper)


@_on_cpu
@mirror(mx.linalg.cholesky_inv)
def cholesky_inv(a, upper: bool = False):
    """``inv(L @ L.T)`` from the Cholesky factor ``L`` (``inv(U.T @ U)`` if ``upper``), as
    ``mx.linalg.cholesky_inv``, built as MLX does from ``tri_inv``; only the factor's
    triangle is read."""
    linv = lax.tri_inv(a, upper)
    lt = S.swapaxes(linv, -1, -2)
    return matmul(linv, lt) if upper else matmul(lt, linv)


@_on_cpu
@mirror(mx.linalg.solve)
def solve(a, b):
    """``x`` with ``a @ x == b``, as ``mx.linalg.solve``: ``b`` is a vector ``(n,)`` or
    matrices ``(..., n, k)``; batch axes broadcast (MLX requires equal ranks).

    Derivative ``solve(a, db - da @ x)``, to any order; the gradient in ``b`` is
    ``solve(a.T, g)``. A singular ``a`` raises.
    """
    dt = result_type(a, b)
    if not is_float(dt) or dt not in ("float32", "float64"):
        raise ValueError(
            f"[linalg::solve] Input arrays must promote to float32 or float64, got {dt}"
        )
    a, b = astype(a, dt), astype(b, dt)
    sa, sb = _shape(a), _shape(b)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError(f"[linalg::solve] First input must be a square matrix, got {sa}")
    vector = len(sb) == 1
    if vector:
        b = S.expand_dims(b, -1)
        sb = _shape(b)
    if sb[-2] != sa[-1]:
        raise ValueError(f"[linalg::solve] Last dimension of a {sa} must match b {sb}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    a = S.broadcast_to(a, batch + sa[-2:])
    b = S.broadcast_to(b, batch + sb[-2:])
    x = lax.solve(a, b)
    return lax.squeeze(x, [len(batch) + 1]) if vector else x


@_on_cpu
@mirror(mx.linalg.solve_triangular)
def solve_triangular(a, b, *, upper: bool = False):
    """``x`` with ``a @ x == b`` for a triangular ``a``, as ``mx.linalg.solve_triangular``
    (which is ``tri_inv(a, upper) @ b``); only ``a``'s triangle is read. Differentiable in
    both operands."""
    return matmul(lax.tri_inv(a, upper), b)


@_on_cpu
@mirror(mx.linalg.pinv)
def pinv(a):
    """The Moore-Penrose pseudo-inverse, as ``mx.linalg.pinv`` (singular values at most
    ``10 max(m, n) eps`` times the largest count as zero).

    The derivative (Golub and Pereyra's formula) holds where the rank is locally constant,
    which is where the pseudo-inverse is differentiable; across a rank change it jumps.
    """
    return lax.pinv(a)


# The factorisations (they use the helpers above): autodiff/numpy/_linalg_factor.py
from autodiff.numpy._linalg_factor import (  # noqa: E402
    det,
    eig,
    eigh,
    eigvals,
    eigvalsh,
    lu,
    lu_factor,
    qr,
    slogdet,
    svd,
)

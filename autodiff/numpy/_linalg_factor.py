"""``anp.linalg``'s factorisations (``qr``, ``svd``, ``eigh``, ``eig``, ``lu``, ``lu_factor``) and
what is computed from them (``eigvalsh``, ``eigvals``, ``det``, ``slogdet``). Re-exported by
``autodiff/numpy/linalg.py``, whose docstring says how these functions place, differentiate
and differ from MLX's, and whose helpers they use.
"""

from __future__ import annotations

import functools

import mlx.core as mx

from autodiff import lax
from autodiff.numpy import _elementwise as E
from autodiff.numpy import _shape as S
from autodiff.numpy._core import mirror
from autodiff.numpy._creation import eye
from autodiff.numpy._sorting import argsort
from autodiff.numpy.linalg import _float, _on_cpu, _shape


@_on_cpu
@mirror(mx.linalg.qr)
def qr(a):
    """The reduced QR factorisation ``(Q, R)``, ``Q @ R == a``, as ``mx.linalg.qr``.

    Differentiable for tall, square and wide matrices where ``R`` (its leading square block)
    is invertible, i.e. ``a`` has full rank; not defined at rank-deficient matrices.
    """
    return tuple(lax.qr(a))


@_on_cpu
@mirror(mx.linalg.svd)
def svd(a, compute_uv: bool = True):
    """The singular value decomposition ``(U, S, Vt)`` (or ``S``), ``a == U @ diag(S) @ Vt``
    with full ``U`` and ``Vt``, as ``mx.linalg.svd``.

    Singular values are differentiable everywhere except where two cross (where the
    derivative is that of the branch LAPACK returns). Singular vectors need distinct nonzero
    singular values: at repeated ones the derivative divides by zero (inf or nan), as in JAX.
    With ``compute_uv=True`` derivatives need a square ``a``: the extra columns of ``U`` (rows
    of ``Vt``) of a non-square matrix are an arbitrary basis with no derivative, and
    differentiating raises; use ``compute_uv=False`` or ``autodiff.lax.svd(a,
    full_matrices=False)`` (the thin factors) there.
    """
    if not compute_uv:
        return lax.svd(a, False, False)[0]
    return tuple(lax.svd(a, True, True))


def _uplo(UPLO: str) -> bool:
    if UPLO not in ("L", "U"):
        raise ValueError(f"[linalg::eigh] UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO == "L"


@_on_cpu
@mirror(mx.linalg.eigh)
def eigh(a, UPLO: str = "L"):
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix, as
    ``mx.linalg.eigh``; only the ``UPLO`` triangle is read (the derivative is that of the
    symmetric matrix it defines).

    Eigenvalue derivatives are defined everywhere but where two cross. Eigenvector
    derivatives need distinct eigenvalues: at repeated ones the eigenvectors are not unique
    and the derivative divides by zero (inf or nan), as in JAX.

    Example:
        >>> x = mx.random.normal((3, 3))
        >>> ad.grad(lambda x: anp.linalg.eigh(x + x.T)[0][-1])(x)  # the top eigenvalue
    """
    return tuple(lax.eigh(a, _uplo(UPLO), True))


@_on_cpu
@mirror(mx.linalg.eigvalsh)
def eigvalsh(a, UPLO: str = "L"):
    """Eigenvalues (ascending) of a symmetric matrix, as ``mx.linalg.eigvalsh``;
    differentiable (see :func:`eigh`)."""
    return lax.eigh(a, _uplo(UPLO), False)[0]


@_on_cpu
@mirror(mx.linalg.eig)
def eig(a):
    """Eigenvalues and right eigenvectors (columns) of a general square matrix, complex64, as
    ``mx.linalg.eig``: each eigenvector has unit norm and its largest-modulus entry real
    (LAPACK's choice, which fixes it up to sign for a real eigenvalue).

    Differentiable (complex tangents; ``ad.grad`` of a real function of the results is
    ``d/dRe - i d/dIm``, as in JAX), the eigenvectors through that normalisation. Needs
    distinct eigenvalues: at repeated ones the eigenvector derivative divides by zero (inf or
    nan), and where the eigenvector matrix is singular (a defective matrix) MLX's inverse in
    the derivative raises. Use :func:`eigh` for symmetric matrices.

    Example:
        >>> a = mx.array([[1.0, 2.0], [-2.0, 1.0]])  # eigenvalues 1 +- 2i
        >>> ad.grad(lambda a: anp.imag(anp.linalg.eigvals(a)[0]))(a)
    """
    return tuple(lax.eig(a, True))


@_on_cpu
@mirror(mx.linalg.eigvals)
def eigvals(a):
    """Eigenvalues of a general square matrix, complex64, as ``mx.linalg.eigvals`` (in
    LAPACK's order); differentiable where they are distinct (see :func:`eig`)."""
    return lax.eig(a, False)[0]


@_on_cpu
@mirror(mx.linalg.lu)
def lu(a):
    """``(p, L, U)`` with ``a == L[p] @ U`` (row ``i`` of ``a`` is row ``p[i]`` of ``L @ U``),
    as ``mx.linalg.lu``; ``p`` is int32 here (MLX: uint32).

    ``L`` and ``U`` are differentiable where the leading ``min(m, n)`` pivots are nonzero;
    at a singular matrix the derivative divides by zero (MLX's triangular inverse raises).
    """
    packed, _, perm = lax.lu(a)
    m, n = _shape(a)[-2:]
    k = min(m, n)
    lower = S.tril(packed, -1)
    upper = S.triu(packed)
    if n != k:
        lower = lower[..., :k]
    elif m != k:
        upper = upper[..., :k, :]
    return argsort(perm, axis=-1), E.add(lower, eye(m, k, dtype=lower.dtype)), upper


@_on_cpu
@mirror(mx.linalg.lu_factor)
def lu_factor(a):
    """``(LU, pivots)``: both factors packed in one matrix and LAPACK's 0-based row swaps
    (int32 here, MLX: uint32), as ``mx.linalg.lu_factor``; ``LU`` is differentiable as in
    :func:`lu`."""
    packed, pivots, _ = lax.lu(a)
    return packed, pivots


def _elem(a, i, j):
    s = _shape(a)
    nb = len(s) - 2
    x = lax.slice_(a, [0] * nb + [i, j], list(s[:-2]) + [i + 1, j + 1])
    return lax.reshape(x, s[:-2])


def _det_small(a):
    """MLX's closed form for n <= 3: a polynomial, so its derivatives are exact everywhere,
    singular matrices included."""
    n = _shape(a)[-1]
    if n == 0:
        return S.broadcast_to(mx.array(1.0, dtype=a.dtype), _shape(a)[:-2])
    e = functools.partial(_elem, a)
    mul, sub = E.multiply, E.subtract
    if n == 1:
        return e(0, 0)
    if n == 2:
        return sub(mul(e(0, 0), e(1, 1)), mul(e(0, 1), e(1, 0)))
    minor = lambda i, j, k, l: sub(mul(e(1, i), e(2, j)), mul(e(1, k), e(2, l)))
    return E.add(
        sub(mul(e(0, 0), minor(1, 2, 2, 1)), mul(e(0, 1), minor(0, 2, 2, 0))),
        mul(e(0, 2), minor(0, 1, 1, 0)),
    )


def _check_det(a, name):
    s = _shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"[linalg::{name}] expects square matrices (at least 2-D), got {s}")
    return _float(a)


@_on_cpu
@mirror(mx.linalg.det)
def det(a):
    """The determinant, as ``mx.linalg.det`` (a closed form up to 3x3, LU beyond).

    Differentiable to any order. The derivative ``tr(adj(a) da)`` is taken from the LU
    factors in a form that stays finite at singular matrices: exact at rank ``n - 1`` (when
    the LU has one zero pivot, the generic case) and zero at lower rank. Up to 3x3 the
    closed form is exact everywhere, to any order; beyond, second derivatives at a singular
    matrix raise (MLX's triangular inverse fails).

    Example:
        >>> ad.grad(anp.linalg.det)(mx.array([[1.0, 2.0], [2.0, 4.0]]))  # singular: adj^T
    """
    a = _check_det(a, "det")
    return _det_small(a) if _shape(a)[-1] <= 3 else lax.det(a)


@_on_cpu
@mirror(mx.linalg.slogdet)
def slogdet(a):
    """``(sign, log|det|)``, as ``mx.linalg.slogdet`` (0 and -inf for a singular matrix).

    ``log|det|`` has derivative ``inv(a).T``; the sign is piecewise constant. At a singular
    matrix the log is -inf and its derivative is not defined (inf, or MLX's inverse raises).
    """
    a = _check_det(a, "slogdet")
    if _shape(a)[-1] > 3:
        return tuple(lax.slogdet(a))
    raw = _det_small(a)
    return E.sign(raw), E.log(E.abs(raw))

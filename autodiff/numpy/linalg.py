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
"""

from __future__ import annotations

import functools

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_float
from autodiff.numpy import _elementwise as E
from autodiff.numpy import _shape as S
from autodiff.numpy._core import astype, broadcast_shapes, mirror, result_type
from autodiff.numpy._creation import eye
from autodiff.numpy._linalg import matmul
from autodiff.numpy._norm import cross, norm  # noqa: F401  (public here, as in mx.linalg)
from autodiff.numpy._sorting import argsort
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


# ---------------------------------------------------------------------------------------------
# factorisations


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

"""Rows for autodiff/ops/spectral.py: qr, svd, eigh, eigvalsh, eig, eigvals, and the norms built on
the singular values (plus cross and the other norms, composites of MLX's own operations).

Singular values and eigenvalues are kept apart (vectors' derivatives need distinct ones): the
inputs are ``H (D + 0.05 x) H'`` for a fixed diagonal ``D = diag(2, 4, 6, ...)`` and fixed
reflections ``H``, ``H'``, so the spectrum stays separated and the vectors are not trivial.
"""

import itertools

import mlx.core as mx
import numpy as np
from hypothesis import strategies as st
from rowlib import Row

import autodiff.numpy as anp
from autodiff.testing.strategies import arrays

LA = anp.linalg

# This file's own salts (rowlib's arrays_s counts globally): its draws leave the data the
# other families' rows draw unchanged.
_salts = itertools.count(9000)


def arrays_s(shape, **kw):
    return arrays(shape, salt=next(_salts), **kw)


SQUARE = st.tuples(st.integers(0, 2), st.integers(1, 4))
NO_MX = dict(mx_grad=False)  # MLX has no derivatives here (it has vmap rules)
NO_VMAP = dict(mx_grad=False, mx_vmap=False)  # MLX has no vmap rule for QR either


def mat(s, rows=None, cols=None):
    b, n = s
    return arrays_s(((b,) if b else ()) + (rows or n, cols or n), low=-1.0, high=1.0)


def _reflection(n, seed):
    v = np.random.default_rng(seed).standard_normal((n, 1))
    return mx.array((np.eye(n) - 2 * v @ v.T / (v.T @ v)).astype(np.float32))


def separated(x, symmetric=False):
    """``H (D + 0.05 x) H'`` (``H = H'`` and ``x`` symmetrised if ``symmetric``)."""
    m, n = x.shape[-2:]
    d = mx.array(np.diag(2.0 * np.arange(1, min(m, n) + 1)).astype(np.float32))
    d = mx.pad(d, [(0, m - min(m, n)), (0, n - min(m, n))])
    if symmetric:
        x = x + mx.swapaxes(x, -1, -2)
    h1, h2 = _reflection(m, m), _reflection(n, n + 1)
    return h1 @ (d + 0.05 * x) @ (h1 if symmetric else h2)


def signed(v):
    """Columns of ``v`` with their largest-magnitude entry made positive, and those signs.

    LAPACK fixes singular and eigen vectors only up to sign, and float32 (MLX) and float64
    (the reference interpreter) runs can disagree on it near a sign decision, so rows compare
    sign-normalised vectors; derivatives are unaffected (the signs are piecewise constant)."""
    big = anp.argmax(anp.abs(v), axis=-2, keepdims=True)
    sign = anp.sign(anp.take_along_axis(v, big, axis=-2))
    return v * sign, sign


def eigh_signed(a, UPLO="L"):
    w, v = LA.eigh(a, UPLO=UPLO)
    return w, signed(v)[0]


def svd_signed(a):
    u, s, vt = LA.svd(a)
    u, sign = signed(u)
    return u, s, vt * mx.swapaxes(sign, -1, -2)


def mixed_signs(x):
    """``x`` (positive, drawn without the clamping that makes ties) with alternating signs:
    abs is away from its kink and max/min have no ties (where MLX and JAX/autodiff split the
    derivative differently)."""
    return x * mx.array(np.resize([1.0, -1.0, -1.0], x.shape).astype(np.float32))


def rotation_block(x):
    """``triu(x)`` with ``[[., +2], [-2, .]]`` added at the top left: a complex pair, then real
    eigenvalues on the diagonal."""
    r = np.zeros(x.shape[-2:], np.float32)
    if x.shape[-1] >= 2:
        r[0, 1], r[1, 0] = 2.0, -2.0
    return anp.triu(x) + mx.array(r)


def spread_spectrum(x):
    """``H (D + 0.05 x) H`` with ``D`` = diag(1.5, 3, 4.5, ...) but for a rotation block
    ``[[1.5, 2], [-2, 3]]`` (a complex pair): distinct, well-separated eigenvalues."""
    n = x.shape[-1]
    d = np.diag(1.5 * np.arange(1, n + 1)).astype(np.float32)
    if n >= 2:
        d[0, 1], d[1, 0] = 2.0, -2.0
    h = _reflection(n, n)
    return h @ (mx.array(d) + 0.05 * x) @ h


def complex_parts(w, v):
    """Real outputs of eig: the eigenvalues' parts and the phase-free |v|^2."""
    return anp.real(w), anp.imag(w), anp.real(v * anp.conj(v))


def full_rank(x):
    """``x`` plus a multiple of the (rectangular) identity: full rank, and each Householder
    reflection's sign decision (on the leading entry of the column it reflects) stays far
    from zero, where the factors jump."""
    m, n = x.shape[-2:]
    return x + 3.0 * max(m, n) * mx.eye(m, n)


ROWS = [
    Row("linalg_qr", lambda x: LA.qr(full_rank(x)), (mat,), shapes=SQUARE, **NO_VMAP),
    Row(
        "linalg_qr_tall",
        lambda x: LA.qr(full_rank(x)),
        (lambda s: mat(s, rows=s[1] + 2),),
        shapes=SQUARE,
        **NO_VMAP,
    ),
    Row(
        "linalg_qr_wide",
        lambda x: LA.qr(full_rank(x)),
        (lambda s: mat(s, cols=s[1] + 2),),
        shapes=SQUARE,
        **NO_VMAP,
    ),
    Row("linalg_svd", lambda x: svd_signed(separated(x)), (mat,), shapes=SQUARE, **NO_MX),
    Row(
        "linalg_svd_values",
        lambda x: LA.svd(separated(x), compute_uv=False),
        (lambda s: mat(s, rows=s[1] + 1),),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_eigh",
        lambda x: eigh_signed(separated(x, True) + anp.triu(x, 1)),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_eigh_upper",
        lambda x: eigh_signed(separated(x, True) - anp.tril(x, -1), UPLO="U"),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_eigvalsh",
        lambda x: LA.eigvalsh(separated(x, True)),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    # Complex results. LAPACK's eigenvalue order can differ between float32 and float64 for a
    # general matrix, so the inputs have a spectrum it orders the same way in both, and the
    # eigenvectors enter through |v|^2 (their phase is LAPACK's choice, up to sign).
    Row(
        "linalg_eigvals",
        lambda x: LA.eigvals(rotation_block(x)),
        (mat,),
        shapes=SQUARE,
        diff=None,
    ),
    Row(
        "linalg_eig",
        lambda x: complex_parts(*LA.eig(spread_spectrum(x))),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_norm_singular_values",
        lambda x: (
            LA.norm(separated(x), ord="nuc")
            + LA.norm(separated(x), ord=2)
            + LA.norm(separated(x), ord=-2)
        ),
        (lambda s: mat(s, cols=s[1] + 1),),
        shapes=st.tuples(st.just(0), st.integers(1, 4)),
        **NO_MX,
    ),
    Row(
        "linalg_norm_matrix",
        lambda x: (
            LA.norm(mixed_signs(x), ord="fro", axis=(-1, 0), keepdims=True)
            + LA.norm(mixed_signs(x), ord=1, axis=(0, -1), keepdims=True)
            + LA.norm(mixed_signs(x), ord=float("inf"), axis=(0, -1), keepdims=True)
            + LA.norm(mixed_signs(x), ord=-1, axis=(0, -1), keepdims=True)
            + LA.norm(mixed_signs(x), ord=float("-inf"), axis=(0, -1), keepdims=True)
        ),
        (lambda s: arrays_s(s, low=0.2, high=3.0),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    ),
    Row(
        "linalg_norm_vector",
        lambda x: (
            LA.norm(mixed_signs(x))
            + LA.norm(mixed_signs(x), axis=-1)[..., None]
            + LA.norm(mixed_signs(x), ord=1, axis=0)
            + LA.norm(mixed_signs(x), ord=3, axis=-1, keepdims=True)
            + LA.norm(mixed_signs(x), ord=float("inf"), axis=0)
            + LA.norm(mixed_signs(x), ord=float("-inf"), axis=-1, keepdims=True)
        ),
        (lambda s: arrays_s(s, low=0.2, high=3.0),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 4)),
    ),
    Row(
        "linalg_cross",
        lambda a, b: LA.cross(a, b) + LA.cross(a[..., :2], b) + LA.cross(b[..., :2], a[..., :2]),
        (lambda s: arrays_s(s + (3,)), lambda s: arrays_s((3,))),
        shapes=st.tuples(st.integers(1, 3)),
        diff=(0, 1),
    ),
]

"""Orthogonal factorisations and eigenproblems: ``qr``, ``svd``, ``eigh`` and ``eig``, lowered
to MLX's kernels on the CPU stream.

Derivatives (the standard rules; see JAX's ``lax.linalg`` and the references there):

- ``qr`` (reduced, ``A = Q R``): for ``m >= n``, with ``C = Q^T dA R^-1`` and ``O = tril(C, -1)
  - tril(C, -1)^T``: ``dQ = Q (O - C) + dA R^-1`` and ``dR = (C - O) R``. For ``m < n`` the
  first ``m`` columns ``X`` determine ``Q`` and ``R_1`` as above and the rest follow from
  ``R_2 = Q^T Y``: ``dR_2 = dQ^T Y + Q^T dY``. Needs ``R`` (its leading block) invertible.
- ``svd``: ``ds = diag(U^T dA V)``; the singular vectors with ``F_ij = 1 / (s_j^2 - s_i^2)``
  (zero on the diagonal) and ``dP = U^T dA V``: ``dU = U (F o (dP S + S dP^T)) + (I - U U^T)
  dA V S^-1`` and ``dV = V (F o (S dP + dP^T S)) + (I - V V^T) dA^T U S^-1``. Singular
  values are differentiable but where two cross or one reaches zero (kinks); the singular
  vectors need distinct singular values (the thin factors of a non-square matrix also nonzero
  ones): at repeated ones ``F`` divides by zero (inf or nan), as in JAX. MLX
  returns full ``U`` and ``Vt``; for a non-square matrix their extra columns (rows) are an
  arbitrary basis of a complement, with no derivative, so derivatives of ``svd(a)`` with
  vectors need a square ``a`` (the thin factors, ``autodiff.lax.svd(a, full_matrices=False)``,
  are differentiable for any shape).
- ``eigh``: ``dw = diag(V^T dA V)`` and ``dV = V (F o V^T dA V)`` with ``F_ij = 1 / (w_j -
  w_i)``, ``dA`` symmetrised from the triangle the kernel reads. Eigenvalue derivatives are
  defined everywhere (kinks where they cross); eigenvector derivatives need distinct
  eigenvalues (inf or nan at repeated ones).
- ``eig`` (complex64 results): in ``autodiff/ops/eig.py``, re-exported here.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax as L
from autodiff.extend import Zero, bind, def_primitive, impls, jvp_rules, lowerings
from autodiff.lower_mlx import helpers
from autodiff.ops._matrix import (
    along_cols,
    along_rows,
    check_matrix,
    diagonal,
    dtype,
    eye,
    front_batching,
    mm,
    mT,
    shape,
    sym_from,
    tril,
)
from autodiff.ops.linalg import tri_inv

# ---------------------------------------------------------------------------------------------
# qr


def _qr_rule(a):
    check_matrix("qr", a, square=False)
    m, n = a.shape[-2:]
    k = min(m, n)
    return [a.update(shape=a.shape[:-2] + (m, k)), a.update(shape=a.shape[:-2] + (k, n))]


qr_p = def_primitive("qr", "spectral", _qr_rule, multiple_results=True)


def qr(a):
    """``[Q, R]``, the reduced QR factorisation of ``a (..., m, n)``."""
    return bind(qr_p, a)


def _qr_square_or_tall(q, r, t):
    rinv = tri_inv(r, upper=True)
    t_rinv = mm(t, rinv)
    c = mm(mT(q), t_rinv)
    low = tril(c, -1)
    omega = L.sub(low, mT(low))
    dq = L.add(mm(q, L.sub(omega, c)), t_rinv)
    dr = mm(L.sub(c, omega), r)
    return dq, dr


def _split_cols(x, k):
    *batch, m, n = shape(x)
    z = [0] * (len(batch) + 2)
    head = L.slice_(x, z, batch + [m, k])
    tail = L.slice_(x, z[:-1] + [k], batch + [m, n])
    return head, tail


def _qr_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    q, r = qr(a)
    if type(t) is Zero:
        return [q, r], [Zero(q.aval), Zero(r.aval)]
    m, n = shape(a)[-2:]
    if m >= n:
        return [q, r], list(_qr_square_or_tall(q, r, t))
    r1, _ = _split_cols(r, m)
    _, y = _split_cols(a, m)
    tx, ty = _split_cols(t, m)
    dq, dr1 = _qr_square_or_tall(q, r1, tx)
    dr2 = L.add(mm(mT(dq), y), mm(mT(q), ty))
    return [q, r], [dq, L.concatenate([dr1, dr2], len(shape(a)) - 1)]


jvp_rules[qr_p] = _qr_jvp
lowerings[qr_p] = lambda a, ins, outs: f"mx.linalg.qr({a[0]}, stream=mx.cpu)"
impls[qr_p] = lambda a: tuple(np.linalg.qr(a))

# ---------------------------------------------------------------------------------------------
# svd


def _svd_rule(a, *, compute_uv, full_matrices):
    check_matrix("svd", a, square=False)
    *batch, m, n = a.shape
    k = min(m, n)
    s = a.update(shape=tuple(batch) + (k,))
    if not compute_uv:
        return [s]
    mu, nv = (m, n) if full_matrices else (k, k)
    return [a.update(shape=tuple(batch) + (m, mu)), s, a.update(shape=tuple(batch) + (nv, n))]


svd_p = def_primitive("svd", "spectral", _svd_rule, multiple_results=True)


def svd(a, compute_uv: bool = True, full_matrices: bool = True):
    """``[U, s, Vt]`` (or ``[s]`` without ``compute_uv``) with ``a == U diag(s) Vt``; MLX's
    ``svd`` is ``full_matrices=True``, the thin factors keep ``min(m, n)`` columns (rows)."""
    return bind(svd_p, a, compute_uv=compute_uv, full_matrices=full_matrices)


def _svd_jvp(primals, tangents, compute_uv, full_matrices):
    (a,), (t,) = primals, tangents
    *batch, m, n = shape(a)
    k = min(m, n)
    if compute_uv and full_matrices and m != n and type(t) is not Zero:
        raise NotImplementedError(
            f"derivatives of svd(a) with compute_uv=True are defined for square matrices only "
            f"(got {m}x{n}): MLX returns full U and Vt, whose extra {'columns of U' if m > n else 'rows of Vt'} "
            "are an arbitrary basis with no derivative. Use svd(a, compute_uv=False) for the "
            "singular values, or autodiff.lax.svd(a, full_matrices=False) for the thin factors, "
            "whose derivatives are defined"
        )
    if type(t) is Zero:
        outs = svd(a, compute_uv, full_matrices)
        return outs, [Zero(o.aval) for o in outs]
    # the derivative needs the vectors: one decomposition with them gives the values too
    outs = svd(a, True, full_matrices and m == n)
    u, s, vt = outs
    v = mT(vt)
    dp = mm(mm(mT(u), t), v)  # (k, k)
    ds = diagonal(dp)
    if not compute_uv:
        return [s], [ds]
    s_j, s_i = along_rows(s, k), along_cols(s, k)
    i_k = eye(k, k, dtype(a), tuple(batch))
    f = L.sub(L.reciprocal(L.add(L.mul(L.sub(s_j, s_i), L.add(s_j, s_i)), i_k)), i_k)
    dp_s = L.mul(dp, s_j)  # dP S
    s_dp = L.mul(s_i, dp)  # S dP
    du = mm(u, L.mul(f, L.add(dp_s, mT(dp_s))))
    dv = mm(v, L.mul(f, L.add(s_dp, mT(s_dp))))
    if m > k:
        tv = mm(t, v)
        du = L.add(du, L.div(L.sub(tv, mm(u, dp)), along_rows(s, m)))
    if n > k:
        tu = mm(mT(t), u)
        dv = L.add(dv, L.div(L.sub(tu, mm(v, mT(dp))), along_rows(s, n)))
    return outs, [du, ds, mT(dv)]


def _svd_thin(a):
    u, s, vt = mx.linalg.svd(a, stream=mx.cpu)
    k = s.shape[-1]
    return u[..., :k], s, vt[..., :k, :]


def _svd_lowering(args, ins, outs, compute_uv, full_matrices):
    if not compute_uv:
        return f"(mx.linalg.svd({args[0]}, compute_uv=False, stream=mx.cpu),)"
    if full_matrices:
        return f"mx.linalg.svd({args[0]}, stream=mx.cpu)"
    return f"_svd_thin({args[0]})"


def _svd_np(a, compute_uv, full_matrices):
    # MLX hands LAPACK the row-major buffer, i.e. a^T in column-major order; NumPy's svd of
    # a^T calls gesdd on that same buffer, so the singular vectors get MLX's signs.
    at = np.swapaxes(a, -1, -2)
    if not compute_uv:
        return (np.linalg.svd(at, compute_uv=False),)
    u2, s, vt2 = np.linalg.svd(at, full_matrices=full_matrices)
    return np.swapaxes(vt2, -1, -2), s, np.swapaxes(u2, -1, -2)


jvp_rules[svd_p] = _svd_jvp
helpers["_svd_thin"] = _svd_thin
lowerings[svd_p] = _svd_lowering
impls[svd_p] = _svd_np

# ---------------------------------------------------------------------------------------------
# eigh


def _eigh_rule(a, *, lower, compute_v):
    check_matrix("eigh", a)
    w = a.update(shape=a.shape[:-1])
    return [w, a] if compute_v else [w]


eigh_p = def_primitive("eigh", "spectral", _eigh_rule, multiple_results=True)


def eigh(a, lower: bool = True, compute_v: bool = True):
    """``[w, V]`` (or ``[w]``): eigenvalues ascending and eigenvectors (columns) of
    symmetric matrices, reading only the ``lower`` (or upper) triangle."""
    return bind(eigh_p, a, lower=lower, compute_v=compute_v)


def _eigh_jvp(primals, tangents, lower, compute_v):
    (a,), (t,) = primals, tangents
    if type(t) is Zero:
        outs = eigh(a, lower, compute_v)
        return outs, [Zero(o.aval) for o in outs]
    # the derivative needs the vectors: one decomposition with them gives the values too
    outs = w, v = eigh(a, lower, True)
    vtv = mm(mm(mT(v), sym_from(t, lower)), v)
    dw = diagonal(vtv)
    if not compute_v:
        return [w], [dw]
    n = shape(w)[-1]
    i_n = eye(n, n, dtype(a), shape(w)[:-1])
    f = L.sub(L.reciprocal(L.add(L.sub(along_rows(w, n), along_cols(w, n)), i_n)), i_n)
    return outs, [dw, mm(v, L.mul(f, vtv))]


def _eigh_np(a, lower, compute_v):
    # MLX reads the row-major buffer as column-major (a^T) with the other triangle flag;
    # NumPy's eigh of a^T with that flag calls syevd on the same buffer (same signs).
    at = np.swapaxes(a, -1, -2)
    uplo = "U" if lower else "L"
    if not compute_v:
        return (np.linalg.eigvalsh(at, UPLO=uplo),)
    w, v = np.linalg.eigh(at, UPLO=uplo)
    return w, v


def _eigh_lowering(args, ins, outs, lower, compute_v):
    uplo = "L" if lower else "U"
    if compute_v:
        return f"mx.linalg.eigh({args[0]}, UPLO={uplo!r}, stream=mx.cpu)"
    return f"(mx.linalg.eigvalsh({args[0]}, UPLO={uplo!r}, stream=mx.cpu),)"


jvp_rules[eigh_p] = _eigh_jvp
lowerings[eigh_p] = _eigh_lowering
impls[eigh_p] = _eigh_np


# The general eigenproblem: autodiff/ops/eig.py
from autodiff.ops.eig import (  # noqa: E402, F401  (re-exported)
    eig,
    eig_p,
)

for _p in (qr_p, svd_p, eigh_p, eig_p):
    front_batching(_p)

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
- ``eig`` (complex64 results, tangents complex as in JAX): with ``P = V^-1 dA V``, ``dw =
  diag(P)`` and ``du = V (F o P)``, ``F_ij = 1 / (w_j - w_i)``; then ``dv_j = du_j + c_j v_j``
  with the ``c_j`` that keep LAPACK's normalisation (unit columns whose largest-modulus entry
  is real): ``c_j = -Re(v_j^H du_j) - i Im(du_kj) / v_kj``. ``V^-1`` comes from MLX's real
  ``inv`` of the real form ``[[X, -Y], [Y, X]]`` of ``V = X + iY``. Needs distinct eigenvalues
  (at repeated ones ``F`` divides by zero, and a defective ``V`` is singular, so ``inv``
  raises) and a unique largest-modulus entry in each eigenvector.
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
from autodiff.ops.linalg import inv, tri_inv

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

# ---------------------------------------------------------------------------------------------
# eig


def _eig_rule(a, *, compute_v):
    check_matrix("eig", a)
    w = a.update(shape=a.shape[:-1], dtype="complex64")
    return [w, a.update(dtype="complex64")] if compute_v else [w]


eig_p = def_primitive("eig", "spectral", _eig_rule, multiple_results=True)


def eig(a, compute_v: bool = True):
    """``[w, V]`` (or ``[w]``): the complex64 eigenvalues and right eigenvectors of general
    square matrices, as MLX's ``eig``/``eigvals``. Not differentiable yet."""
    return bind(eig_p, a, compute_v=compute_v)


def _eig_np(a, compute_v):
    # MLX runs geev on a^T (its row-major buffer) for left eigenvectors, conjugated: right
    # eigenvectors of a in the eigenvalue order of geev on a^T, which NumPy's eig of a^T
    # reproduces. The vectors come from NumPy's eig of a, put in that order; LAPACK fixes
    # their phase only up to sign, so they may differ from MLX's by a sign (or phase).
    w = np.linalg.eigvals(np.swapaxes(a, -1, -2))
    if not compute_v:
        return (w,)
    w2, v2 = np.linalg.eig(a)
    w_flat, w2_flat = w.reshape(-1, w.shape[-1]), w2.reshape(-1, w.shape[-1])
    v_flat = v2.reshape((-1,) + v2.shape[-2:])
    out = np.empty_like(v_flat)
    for b in range(len(w_flat)):
        free = list(range(w.shape[-1]))
        for i, lam in enumerate(w_flat[b]):
            j = min(free, key=lambda j: abs(w2_flat[b, j] - lam))
            free.remove(j)
            vec = v_flat[b, :, j]
            big = vec[np.argmax(np.abs(vec))]
            out[b, :, i] = vec * (abs(big) / big if big != 0 else 1)
    return w, out.reshape(v2.shape)


def _complex_inv(v):
    """``V^-1`` of complex matrices (MLX's inverse takes real ones only): the real form
    ``[[X, -Y], [Y, X]]`` of ``V = X + iY`` has the inverse ``[[P, -Q], [Q, P]]`` with
    ``V^-1 = P + iQ``."""
    *batch, n, _ = shape(v)
    nd = len(batch) + 2
    x, y = L.real(v), L.imag(v)
    big = L.concatenate(
        [L.concatenate([x, L.neg(y)], nd - 1), L.concatenate([y, x], nd - 1)], nd - 2
    )
    big_inv = inv(big)
    z = [0] * nd
    p = L.slice_(big_inv, z, batch + [n, n])
    q = L.slice_(big_inv, z[:-2] + [n, 0], batch + [2 * n, n])
    return L.add(L.convert(p, "complex64"), L.mul(L.convert(q, "complex64"), 1j))


def _pick_rows(x, onehot):
    """``x[..., k_j, j]`` for the row ``k_j`` that ``onehot`` marks in each column."""
    return L.reduce_sum(L.mul(x, onehot), [len(shape(x)) - 2])


def _eig_jvp(primals, tangents, compute_v):
    (a,), (t,) = primals, tangents
    if type(t) is Zero:
        outs = eig(a, compute_v)
        return outs, [Zero(o.aval) for o in outs]
    outs = w, v = eig(a, True)
    *batch, n, _ = shape(a)
    c64 = "complex64"
    vinv_dv = mm(_complex_inv(v), mm(L.convert(t, c64), v))
    dw = diagonal(vinv_dv)
    if not compute_v:
        return [w], [dw]
    i_n = eye(n, n, c64, tuple(batch))
    f = L.sub(L.reciprocal(L.add(L.sub(along_rows(w, n), along_cols(w, n)), i_n)), i_n)
    du = mm(v, L.mul(f, vinv_dv))
    # LAPACK's normalisation: unit columns whose largest-modulus entry v_k is real. Adding
    # c_j v_j keeps both: Re(c_j) = -Re(v_j^H du_j), Im(c_j) = -Im(du_kj) / v_kj.
    big = L.argmax(L.abs_(v), len(batch))
    rows = L.iota("int32", tuple(batch) + (n, n), len(batch))
    onehot = L.convert(L.eq(rows, L.broadcast_in_dim(big, shape(rows), _skip(len(batch)))), c64)
    v_k = L.real(_pick_rows(v, onehot))
    along = L.real(L.reduce_sum(L.mul(L.conj(v), du), [len(batch)]))
    im = L.div(L.imag(_pick_rows(du, onehot)), v_k)
    c = L.neg(L.add(L.convert(along, c64), L.mul(L.convert(im, c64), 1j)))
    return outs, [dw, L.add(du, L.mul(v, along_rows(c, n)))]


def _skip(nb):
    """The dims of a ``(..., n)`` operand in a ``(..., n, n)`` result: all but the rows."""
    return list(range(nb)) + [nb + 1]


jvp_rules[eig_p] = _eig_jvp
lowerings[eig_p] = lambda a, ins, outs, compute_v: (
    f"mx.linalg.eig({a[0]}, stream=mx.cpu)"
    if compute_v
    else f"(mx.linalg.eigvals({a[0]}, stream=mx.cpu),)"
)
impls[eig_p] = _eig_np

for _p in (qr_p, svd_p, eigh_p, eig_p):
    front_batching(_p)

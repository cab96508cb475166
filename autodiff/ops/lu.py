"""LU factorisation and determinants: ``lu`` (three results, as ``jax.lax.linalg.lu``),
``det`` and ``slogdet`` (two results), lowered to MLX's kernels on the CPU stream.

``lu(a)`` gives ``[lu, pivots, permutation]`` for ``a (..., m, n)``: ``lu`` packs the unit
lower factor (below the diagonal) and the upper factor, ``pivots`` are LAPACK's row swaps
(0-based, ``k = min(m, n)`` of them) and ``permutation`` the rows they select, so that
``a[..., permutation, :] == L @ U`` (MLX's ``lu`` returns the inverse permutation). Both index
arrays are int32 (MLX: uint32).

Derivatives:

- ``lu``: with ``P A = L U``, ``X = L^-1 P dA U^-1`` (the factors padded to square), ``dL = L
  tril(X, -1)`` and ``dU = triu(X) U``: the standard rule, for square and rectangular
  matrices, defined where the leading ``k x k`` block of ``U`` is invertible.
- ``det``: ``d det(A) = tr(adj(A) dA)``, the adjugate taken from the LU factors as
  ``sign(P) adj(U) L^-1 P``, where ``adj(U)`` is a polynomial in ``U`` computed with the
  smallest pivot ``u_r`` set apart, so it stays finite when ``u_r == 0``. The derivative is
  therefore exact at nonsingular matrices and at singular ones of rank ``n - 1`` whose LU has
  a single zero pivot (the generic case); at rank ``n - 2`` or less (two or more zero pivots)
  it is zero, which is right for rank ``<= n - 2``. Second derivatives at singular matrices go
  through MLX's triangular inverse of the singular ``U``, which raises.
- ``slogdet``: ``d log|det A| = tr(A^-1 dA)``; the sign is piecewise constant. Undefined at
  singular matrices (MLX's ``inv`` raises there).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax as L
from autodiff.extend import Zero, bind, def_primitive, impls, jvp_rules, lowerings
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import helpers
from autodiff.ops._matrix import (
    along_cols,
    along_rows,
    check_matrix,
    diag_embed,
    diagonal,
    dtype,
    eye,
    front_batching,
    matrix_sum,
    mm,
    mT,
    shape,
    take_rows,
    tril,
    triu,
)
from autodiff.ops.linalg import inv, tri_inv

# ---------------------------------------------------------------------------------------------
# lu


def _lu_rule(a):
    check_matrix("lu", a, square=False)
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    return [a, ShapedArray(batch + (min(m, n),), "int32"), ShapedArray(batch + (m,), "int32")]


lu_p = def_primitive("lu", "lu", _lu_rule, multiple_results=True)


def lu(a):
    """``[lu, pivots, permutation]`` of ``a (..., m, n)``, with ``a[..., permutation, :] ==
    L @ U`` (see the module docstring)."""
    return bind(lu_p, a)


def _lu_factors(lu_):
    """The unit lower factor padded to ``(m, m)`` and the upper one padded to ``(n, n)``
    (identity in the padding), both invertible where the factorisation is."""
    *batch, m, n = shape(lu_)
    k = min(m, n)
    dt = dtype(lu_)
    nb = len(batch)
    lo = tril(L.slice_(lu_, [0] * (nb + 2), batch + [m, k]), -1)
    lo = L.pad(lo, 0.0, [(0, 0, 0)] * (nb + 1) + [(0, m - k, 0)])
    lo = L.add(lo, eye(m, m, dt, tuple(batch)))
    up = triu(L.slice_(lu_, [0] * (nb + 2), batch + [k, n]))
    up = L.pad(up, 0.0, [(0, 0, 0)] * nb + [(0, n - k, 0), (0, 0, 0)])
    if n > k:
        corner = L.pad(eye(n - k, n - k, dt, tuple(batch)), 0.0, [(0, 0, 0)] * nb + [(k, 0, 0)] * 2)
        up = L.add(up, corner)
    return lo, up


def _lu_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    lu_, piv, perm = lu(a)
    zeros = [Zero(piv.aval), Zero(perm.aval)]
    if type(t) is Zero:
        return [lu_, piv, perm], [Zero(lu_.aval)] + zeros
    lo, up = _lu_factors(lu_)
    x = mm(mm(tri_inv(lo, upper=False), take_rows(t, perm)), tri_inv(up, upper=True))
    d_lu = L.add(mm(lo, tril(x, -1)), mm(triu(x), up))
    return [lu_, piv, perm], [d_lu] + zeros


def _perm_from_pivots(piv, m):
    """The permutation LAPACK's row swaps make, ``T_0 o T_1 o ... o T_{k-1}`` for the
    transpositions ``T_i = (i piv[i])`` as index arrays, composed pairwise in log2(k) rounds
    of ``take_along_axis`` (so it stays vectorised and compilable)."""
    batch, k = piv.shape[:-1], piv.shape[-1]
    j = mx.arange(m, dtype=mx.int32)
    if k == 0:
        return mx.broadcast_to(j, batch + (m,))
    i = mx.arange(k, dtype=mx.int32)[:, None]
    p = piv[..., :, None]
    t = mx.where(j == i, p, mx.where(j == p, i, j))  # (..., k, m)
    while t.shape[-2] > 1:
        if t.shape[-2] % 2:
            t = mx.concatenate([t, mx.broadcast_to(j, batch + (1, m))], axis=-2)
        t = mx.take_along_axis(t[..., 0::2, :], t[..., 1::2, :], axis=-1)
    return t[..., 0, :]


def _lu_mlx(a):
    lu_, piv = mx.linalg.lu_factor(a, stream=mx.cpu)
    piv = piv.astype(mx.int32)
    return lu_, piv, _perm_from_pivots(piv, a.shape[-2])


def _lu_np(a):
    """Partial pivoting as LAPACK's getrf: the first largest |entry| of the column pivots."""
    *batch, m, n = a.shape
    k = min(m, n)
    flat = np.array(a, dtype=np.float64).reshape(-1, m, n)
    piv = np.zeros((flat.shape[0], k), np.int32)
    perm = np.tile(np.arange(m, dtype=np.int32), (flat.shape[0], 1))
    for b, x in enumerate(flat):
        for j in range(k):
            p = j + int(np.argmax(np.abs(x[j:, j])))
            piv[b, j] = p
            x[[j, p]] = x[[p, j]]
            perm[b, [j, p]] = perm[b, [p, j]]
            if x[j, j] != 0:
                x[j + 1 :, j] /= x[j, j]
            x[j + 1 :, j + 1 :] -= np.outer(x[j + 1 :, j], x[j, j + 1 :])
    return flat.reshape(a.shape), piv.reshape(*batch, k), perm.reshape(*batch, m)


jvp_rules[lu_p] = _lu_jvp
helpers["_lu"] = _lu_mlx
lowerings[lu_p] = lambda a, ins, outs: f"_lu({a[0]})"
impls[lu_p] = _lu_np

# ---------------------------------------------------------------------------------------------
# det, slogdet


def _det_rule(a):
    check_matrix("det", a)
    return [a.update(shape=a.shape[:-2])]


def _slogdet_rule(a):
    check_matrix("slogdet", a)
    out = a.update(shape=a.shape[:-2])
    return [out, out]


det_p = def_primitive("det", "lu", _det_rule)
slogdet_p = def_primitive("slogdet", "lu", _slogdet_rule, multiple_results=True)


def det(a):
    """The determinant of square matrices."""
    return bind(det_p, a)


def slogdet(a):
    """``[sign, log|det|]`` of square matrices (0 and -inf for singular ones)."""
    return bind(slogdet_p, a)


def _scale(x, s):
    """``x (..., n, m)`` times ``s (...)``."""
    return L.mul(x, L.broadcast_in_dim(s, shape(x), range(len(shape(s)))))


def _adjugate_times_p(a):
    """``(G, perm)`` with ``adj(A) = G P``, i.e. ``tr(adj(A) dA) = sum(G^T * dA[perm])``.

    With ``P A = L U`` and ``s = sign(P)``: ``adj(A) = s adj(U) L^-1 P``. For the smallest
    pivot ``u_r`` and ``U'`` = ``U`` with every zero pivot and ``u_r`` replaced by 1,
    ``adj(U) = c (u_r W - (u_r - 1) W e_r e_r^T W)`` with ``W = U'^-1`` and ``c`` the product
    of the other pivots (Sherman-Morrison on the rank-one change of ``u_r``): finite when
    ``u_r == 0``, and zero when another pivot is zero too.
    """
    lu_, piv, perm = lu(a)
    *batch, n, _ = shape(lu_)
    dt = dtype(a)
    d = diagonal(lu_)
    vshape = tuple(batch) + (n,)
    idx = L.iota("int32", vshape, len(batch))
    r = L.argmin(L.abs_(d), len(batch))
    is_r = L.eq(idx, L.broadcast_in_dim(r, vshape, range(len(batch))))
    e = L.convert(is_r, dt)
    swaps = L.reduce_sum(L.convert(L.ne(piv, idx), "int32"), [len(batch)])
    sign = L.sub(1.0, L.mul(L.convert(L.rem(swaps, 2), dt), 2.0))
    c = L.mul(sign, L.reduce_prod(L.select(is_r, 1.0, d), [len(batch)]))
    u_r = L.reduce_sum(L.mul(d, e), [len(batch)])
    safe = L.select(L.logical_or(is_r, L.eq(d, 0.0)), L.full(vshape, 1.0, dt), d)
    w = tri_inv(L.add(triu(lu_, 1), diag_embed(safe)), upper=True)
    w_col = L.reduce_sum(L.mul(w, along_rows(e, n)), [len(batch) + 1])  # W e_r
    w_row = L.reduce_sum(L.mul(w, along_cols(e, n)), [len(batch)])  # e_r^T W
    outer = L.mul(along_cols(w_col, n), along_rows(w_row, n))
    adj_u = _scale(L.sub(_scale(w, u_r), _scale(outer, L.sub(u_r, 1.0))), c)
    unit_lower = L.add(tril(lu_, -1), eye(n, n, dt, tuple(batch)))
    return mm(adj_u, tri_inv(unit_lower, upper=False)), perm


def _det_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    out = det(a)
    if type(t) is Zero:
        return out, Zero(out.aval)
    g, perm = _adjugate_times_p(a)
    return out, matrix_sum(L.mul(mT(g), take_rows(t, perm)))


def _slogdet_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    sign, logabs = slogdet(a)
    if type(t) is Zero:
        return [sign, logabs], [Zero(sign.aval), Zero(logabs.aval)]
    return [sign, logabs], [Zero(sign.aval), matrix_sum(L.mul(mT(inv(a)), t))]


jvp_rules[det_p] = _det_jvp
jvp_rules[slogdet_p] = _slogdet_jvp
lowerings[det_p] = lambda a, ins, outs: f"mx.linalg.det({a[0]}, stream=mx.cpu)"
lowerings[slogdet_p] = lambda a, ins, outs: f"mx.linalg.slogdet({a[0]}, stream=mx.cpu)"
impls[det_p] = lambda a: np.linalg.det(a)
impls[slogdet_p] = lambda a: tuple(np.linalg.slogdet(a))

for _p in (lu_p, det_p, slogdet_p):
    front_batching(_p)

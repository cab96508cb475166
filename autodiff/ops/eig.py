"""The general (non-symmetric) eigenproblem: ``eig``, with complex64 results, lowered to MLX's
kernel on the CPU stream; ``autodiff/ops/spectral.py`` re-exports it.

Derivative (tangents complex as in JAX): with ``P = V^-1 dA V``, ``dw = diag(P)`` and ``du = V
(F o P)``, ``F_ij = 1 / (w_j - w_i)``; then ``dv_j = du_j + c_j v_j`` with the ``c_j`` that keep
LAPACK's normalisation (unit columns whose largest-modulus entry is real): ``c_j = -Re(v_j^H
du_j) - i Im(du_kj) / v_kj``. ``V^-1`` comes from MLX's real ``inv`` of the real form ``[[X, -Y],
[Y, X]]`` of ``V = X + iY``. Needs distinct eigenvalues (at repeated ones ``F`` divides by zero,
and a defective ``V`` is singular, so ``inv`` raises) and a unique largest-modulus entry in each
eigenvector.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.extend import Zero, bind, def_primitive, impls, jvp_rules, lowerings
from autodiff.ops._matrix import (
    along_cols,
    along_rows,
    check_matrix,
    diagonal,
    eye,
    mm,
    shape,
)
from autodiff.ops.linalg import inv

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

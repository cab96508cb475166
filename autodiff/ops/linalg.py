"""Inverses and solves: ``inv``, ``tri_inv``, ``cholesky``, ``solve`` and ``pinv``, each lowered
to MLX's kernel of the same name on the CPU stream (MLX runs its linalg there only).

Derivatives (the standard ones; JAX's ``lax.linalg`` has the same):

- ``inv``: ``dX = -X dA X``; ``tri_inv``: the same with ``dA`` restricted to the triangle the
  kernel reads (the other triangle of the input is ignored, so its derivative is zero).
- ``cholesky``: with ``A = L L^T`` and ``dA`` symmetrised from the triangle the kernel reads,
  ``dL = L Phi(L^-1 dA L^-T)``, ``Phi`` taking the lower triangle with the diagonal halved.
- ``solve``: ``dX = solve(A, dB - dA X)``; linear in ``B``, whose transpose is
  ``solve(A^T, ct)``.
- ``pinv``: Golub and Pereyra's formula, valid where the rank does not change:
  ``dA+ = -A+ dA A+ + A+ A+^T dA^T (I - A A+) + (I - A+ A) dA^T A+^T A+``.

Each rule is written with these primitives, so derivatives of any order follow. At a singular
matrix MLX's ``inv``, ``tri_inv`` and ``solve`` raise (their LAPACK routines fail), and so do
the derivatives that use them.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.extend import (
    Zero,
    add_tangents,
    batch_rules,
    bind,
    def_primitive,
    impls,
    instantiate,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.ops._matrix import (
    check_matrix,
    dtype,
    eye_like,
    front_batching,
    mm,
    mT,
    shape,
    sym_from,
    tril,
    triu,
)


def _square_rule(name):
    def rule(a, **_):
        check_matrix(name, a)
        return [a]

    return rule


# ---------------------------------------------------------------------------------------------
# inv, tri_inv

inv_p = def_primitive("inv", "linalg", _square_rule("inv"))
tri_inv_p = def_primitive("tri_inv", "linalg", _square_rule("tri_inv"))


def inv(a):
    """The inverse of square matrices (batched over leading axes)."""
    return bind(inv_p, a)


def tri_inv(a, upper: bool = False):
    """The inverse of triangular matrices; only the ``upper`` or lower triangle is read."""
    return bind(tri_inv_p, a, upper=upper)


def _inv_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    x = inv(a)
    if type(t) is Zero:
        return x, Zero(x.aval)
    return x, L.neg(mm(mm(x, t), x))


def _tri_inv_jvp(primals, tangents, upper):
    (a,), (t,) = primals, tangents
    x = tri_inv(a, upper)
    if type(t) is Zero:
        return x, Zero(x.aval)
    t = triu(t) if upper else tril(t)
    return x, L.neg(mm(mm(x, t), x))


jvp_rules[inv_p] = _inv_jvp
jvp_rules[tri_inv_p] = _tri_inv_jvp
lowerings[inv_p] = lambda a, ins, outs: f"mx.linalg.inv({a[0]}, stream=mx.cpu)"
lowerings[tri_inv_p] = lambda a, ins, outs, upper: (
    f"mx.linalg.tri_inv({a[0]}, upper={upper}, stream=mx.cpu)"
)
impls[inv_p] = lambda a: np.linalg.inv(a)
impls[tri_inv_p] = lambda a, upper: np.linalg.inv(np.triu(a) if upper else np.tril(a))

# ---------------------------------------------------------------------------------------------
# cholesky

cholesky_p = def_primitive("cholesky", "linalg", _square_rule("cholesky"))


def cholesky(a, upper: bool = False):
    """The Cholesky factor of symmetric positive-definite matrices, reading only the lower
    (or, with ``upper``, the upper) triangle: ``L`` with ``L @ L.T == A``, or ``U`` with
    ``U.T @ U == A``."""
    return bind(cholesky_p, a, upper=upper)


def _cholesky_jvp(primals, tangents, upper):
    (a,), (t,) = primals, tangents
    c = cholesky(a, upper)
    if type(t) is Zero:
        return c, Zero(c.aval)
    lo = mT(c) if upper else c
    linv = tri_inv(lo, upper=False)
    m = mm(mm(linv, sym_from(t, lower=not upper)), mT(linv))
    phi = L.add(tril(m, -1), L.mul(L.mul(m, eye_like(m)), 0.5))
    dl = mm(lo, phi)
    return c, mT(dl) if upper else dl


def _cholesky_np(a, upper):
    if upper:
        s = np.triu(a) + np.swapaxes(np.triu(a, 1), -1, -2)
    else:
        s = np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2)
    c = np.linalg.cholesky(s)
    return np.swapaxes(c, -1, -2) if upper else c


jvp_rules[cholesky_p] = _cholesky_jvp
lowerings[cholesky_p] = lambda a, ins, outs, upper: (
    f"mx.linalg.cholesky({a[0]}, upper={upper}, stream=mx.cpu)"
)
impls[cholesky_p] = _cholesky_np

# ---------------------------------------------------------------------------------------------
# solve


def _solve_rule(a, b):
    check_matrix("solve", a)
    if b.dtype != a.dtype:
        raise TypeError(f"solve: operand dtypes differ: {a.str_short()} and {b.str_short()}")
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
        raise ValueError(
            f"solve: expects b of shape (..., {a.shape[-1]}, k) with the batch axes of "
            f"a {a.str_short()}, got {b.str_short()}"
        )
    return [b]


solve_p = def_primitive("solve", "linalg", _solve_rule)


def solve(a, b):
    """``X`` with ``A X = B`` for square ``A (..., n, n)`` and ``B (..., n, k)`` with equal
    batch axes (``autodiff.numpy.linalg.solve`` takes MLX's broadcasting and 1-D ``b``)."""
    return bind(solve_p, a, b)


def _solve_jvp(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    x = solve(a, b)
    rhs = tb
    if type(ta) is not Zero:
        rhs = add_tangents(rhs, L.neg(mm(ta, x)))
    return x, Zero(x.aval) if type(rhs) is Zero else solve(a, rhs)


def _solve_t(ct, a, b):
    if is_undefined(a):
        raise TypeError("solve is linear in b only; a must be known when transposing it")
    return [None, solve(mT(a), instantiate(ct))]


def _solve_batch(size, args, dims):
    (a, b), (da, db) = args, dims
    if da is None:
        # one matrix for the whole batch: the batch becomes more right-hand sides (one solve)
        b0 = moveaxis(b, db, len(shape(b)) - 1)  # (..., n, k, B)
        s = shape(b0)
        x = solve(a, L.reshape(b0, s[:-2] + (s[-2] * s[-1],)))
        return L.reshape(x, s), len(s) - 1
    return solve(to_front(a, da, size), to_front(b, db, size)), 0


jvp_rules[solve_p] = _solve_jvp
mark_linear(solve_p)
transpose_rules[solve_p] = _solve_t
batch_rules[solve_p] = _solve_batch
lowerings[solve_p] = lambda a, ins, outs: f"mx.linalg.solve({a[0]}, {a[1]}, stream=mx.cpu)"
impls[solve_p] = lambda a, b: np.linalg.solve(a, b)

# ---------------------------------------------------------------------------------------------
# pinv


def _pinv_rule(a, *, rcond):
    check_matrix("pinv", a, square=False)
    return [a.update(shape=a.shape[:-2] + (a.shape[-1], a.shape[-2]))]


pinv_p = def_primitive("pinv", "linalg", _pinv_rule)


def pinv(a):
    """The Moore-Penrose pseudo-inverse, with MLX's cutoff: singular values at most
    ``rcond * max(s)`` (``rcond = 10 max(m, n) eps``) count as zero."""
    s = shape(a)
    eps = float(np.finfo(dtype(a)).eps)
    return bind(pinv_p, a, rcond=10.0 * max(s[-2], s[-1]) * eps)


def _pinv_jvp(primals, tangents, rcond):
    (a,), (t,) = primals, tangents
    p = bind(pinv_p, a, rcond=rcond)
    if type(t) is Zero:
        return p, Zero(p.aval)
    tT = mT(t)
    out = L.neg(mm(mm(p, t), p))
    proj_a = L.sub(eye_like(mm(a, p)), mm(a, p))  # I - A A+ (m x m)
    proj_p = L.sub(eye_like(mm(p, a)), mm(p, a))  # I - A+ A (n x n)
    out = L.add(out, mm(mm(p, mT(p)), mm(tT, proj_a)))
    out = L.add(out, mm(proj_p, mm(tT, mm(mT(p), p))))
    return p, out


def _pinv_np(a, rcond):
    if a.size == 0:
        return np.zeros(a.shape[:-2] + (a.shape[-1], a.shape[-2]))
    return np.linalg.pinv(a, rcond=rcond)


jvp_rules[pinv_p] = _pinv_jvp
# rcond is MLX's own cutoff, which mx.linalg.pinv applies itself (the interpreter needs it)
lowerings[pinv_p] = lambda a, ins, outs, rcond: f"mx.linalg.pinv({a[0]}, stream=mx.cpu)"
impls[pinv_p] = _pinv_np

for _p in (inv_p, tri_inv_p, cholesky_p, pinv_p):
    front_batching(_p)

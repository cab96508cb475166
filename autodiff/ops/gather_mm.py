"""Matrix products with matrix-level gather: ``gather_mm`` and its quantized form ``gather_qmm``
(mixture-of-experts layers), lowered to MLX's kernels.

``out[i] = A[lhs[i]] @ B[rhs[i]]`` where ``A`` and ``B`` are the operands with their batch axes
flattened and ``lhs``, ``rhs`` integer arrays of one (broadcast) shape. Index arrays are
constants (integers). ``gather_mm`` is bilinear in ``(a, b)``; ``gather_qmm`` in ``x`` and the
affine ``(scales, biases)``. Transposes: the other operand's product gathered by the same
indices, then scattered back (summed where an index repeats).

``lhs_none``/``rhs_none`` record that the index was not given (MLX then uses the operand's own
batch positions and may take a faster path with ``sorted_indices``): the operand holds those
default indices for the interpreter and the rules, and the lowering passes ``None``.

``gather_qmm`` lives in ``autodiff/ops/gather_qmm.py``, re-exported here.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_float, is_int
from autodiff.extend import (
    Zero,
    add_tangents,
    batch_rules,
    bind,
    def_primitive,
    impls,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.tracing import aval_of


def batch_size(shape) -> int:
    return int(np.prod(shape[:-2], dtype=np.int64))


def _check_indices(fn, lhs, rhs):
    if not (is_int(lhs.dtype) and is_int(rhs.dtype)) or lhs.shape != rhs.shape:
        raise TypeError(f"[{fn}] indices must be integer arrays of one shape, got {lhs}, {rhs}")


def default_indices(operand_shape, out_batch, dtype="uint32"):
    """MLX's indices when none are given: each batch position of the operand, broadcast."""
    batch = tuple(operand_shape[:-2])
    n = int(np.prod(batch, dtype=np.int64))
    idx = L.reshape(L.iota(dtype, (n,), 0), batch) if batch else L.full((), 0, dtype)
    return L.broadcast_to(idx, tuple(out_batch))


def scatter_back(g, idx, shape):
    """Sum the gathered matrices ``g`` (idx.shape + (r, c)) into an operand of ``shape``."""
    r, c = shape[-2:]
    n = int(np.prod(aval_of(idx).shape, dtype=np.int64))
    flat = L.full((batch_size(shape), r, c), 0.0, aval_of(g).dtype)
    out = L.scatter_add(flat, L.reshape(idx, (n,)), L.reshape(g, (n, r, c)), 0)
    return L.reshape(out, shape)


def fold(x, d, idx, di, size):
    """vmap helper: ``x``'s batch axis folded into its flat batch positions and the indices
    offset to match; returns ``(x', idx')`` with ``idx'`` of shape ``(size, ...)``."""
    idx = to_front(idx, di, size)
    if d is None:
        return x, idx
    x0 = moveaxis(x, d, 0)
    s = aval_of(x0).shape
    n = batch_size(s[1:])
    offs = L.iota(aval_of(idx).dtype, aval_of(idx).shape, 0)
    return L.reshape(x0, (s[0] * n,) + s[-2:]), L.add(idx, L.mul(offs, n) if n != 1 else offs)


# ---------------------------------------------------------------------------------------------
# gather_mm


def _gather_mm_rule(a, b, lhs, rhs, *, sorted_indices, lhs_none, rhs_none):
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim < 2 or b.ndim < 2:
        raise TypeError(f"[gather_mm] expects float matrices of one dtype, got {a}, {b}")
    if a.shape[-1] != b.shape[-2]:
        raise TypeError(f"[gather_mm] cannot multiply {a.str_short()} by {b.str_short()}")
    _check_indices("gather_mm", lhs, rhs)
    return [a.update(shape=lhs.shape + (a.shape[-2], b.shape[-1]))]


gather_mm_p = def_primitive("gather_mm", "gather_mm", _gather_mm_rule)


def gather_mm(a, b, lhs, rhs, *, sorted_indices=False, lhs_none=False, rhs_none=False):
    return bind(
        gather_mm_p,
        a,
        b,
        lhs,
        rhs,
        sorted_indices=sorted_indices,
        lhs_none=lhs_none,
        rhs_none=rhs_none,
    )


def _gather_mm_jvp(primals, tangents, **p):
    a, b, lhs, rhs = primals
    ta, tb = tangents[:2]
    out = gather_mm(*primals, **p)
    t = Zero(aval_of(out))
    if type(ta) is not Zero:
        t = gather_mm(ta, b, lhs, rhs, **p)
    if type(tb) is not Zero:
        t = add_tangents(t, gather_mm(a, tb, lhs, rhs, **p))
    return out, t


jvp_rules[gather_mm_p] = _gather_mm_jvp


def _swap(x):
    n = len(aval_of(x).shape)
    return L.transpose(x, list(range(n - 2)) + [n - 1, n - 2])


def _gather_mm_t(ct, a, b, lhs, rhs, sorted_indices, lhs_none, rhs_none):
    if is_undefined(a) and is_undefined(b):
        raise TypeError("gather_mm of two linear operands is not linear")
    out_batch = aval_of(ct).shape[:-2]
    own = default_indices(aval_of(ct).shape, out_batch)
    if is_undefined(a):  # ct @ B[rhs].T, scattered to lhs
        g = gather_mm(
            ct,
            _swap(b),
            own,
            rhs,
            sorted_indices=sorted_indices and lhs_none,
            lhs_none=True,
            rhs_none=rhs_none,
        )
        return [_scatter(g, lhs, a.aval.shape, lhs_none), None, None, None]
    g = gather_mm(
        _swap(a),
        ct,
        lhs,
        own,
        sorted_indices=sorted_indices and rhs_none,
        lhs_none=lhs_none,
        rhs_none=True,
    )
    return [None, _scatter(g, rhs, b.aval.shape, rhs_none), None, None]


def _scatter(g, idx, shape, was_default):
    if was_default and aval_of(g).shape[:-2] == tuple(shape[:-2]):
        return g  # the default indices are the identity: nothing to scatter
    return scatter_back(g, idx, shape)


transpose_rules[gather_mm_p] = _gather_mm_t
mark_linear(gather_mm_p)


def _gather_mm_batch(size, args, dims, **p):
    (a, b, lhs, rhs), (da, db, dl, dr) = args, dims
    a1, lhs1 = fold(a, da, lhs, dl, size)
    b1, rhs1 = fold(b, db, rhs, dr, size)
    return gather_mm(a1, b1, lhs1, rhs1), 0


batch_rules[gather_mm_p] = _gather_mm_batch


def _index_args(args, lhs_none, rhs_none):
    # both None would make MLX multiply without gathering: pass the right indices then
    return ("None" if lhs_none else args[0]), ("None" if rhs_none and not lhs_none else args[1])


def _gather_mm_mlx(args, ins, outs, sorted_indices, lhs_none, rhs_none):
    lhs, rhs = _index_args(args[2:], lhs_none, rhs_none)
    return f"mx.gather_mm({args[0]}, {args[1]}, {lhs}, {rhs}, sorted_indices={sorted_indices})"


lowerings[gather_mm_p] = _gather_mm_mlx


def _gather_np(a, b, lhs, rhs):
    a = a.reshape((-1,) + a.shape[-2:])
    b = b.reshape((-1,) + b.shape[-2:])
    return np.matmul(a[lhs.astype(np.int64)], b[rhs.astype(np.int64)])


impls[gather_mm_p] = lambda a, b, lhs, rhs, **_: _gather_np(a, b, lhs, rhs)


# The quantized form: autodiff/ops/gather_qmm.py
from autodiff.ops.gather_qmm import (  # noqa: E402, F401  (re-exported)
    gather_qmm,
    gather_qmm_p,
)

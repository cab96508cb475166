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
    instantiate,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.ops.quantized import check_packed, codes, group_sums
from autodiff.ops.quantized_matmul import dequantized, qmm_dims
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

# ---------------------------------------------------------------------------------------------
# gather_qmm


def _split(args, mode):
    """``(x, w, scales, biases tuple, lhs, rhs)``."""
    n = 4 if mode == "affine" else 3
    return args[0], args[1], args[2], tuple(args[3:n]), args[n], args[n + 1]


def _gather_qmm_rule(*args, transpose, group_size, bits, mode, sorted_indices, lhs_none, rhs_none):
    x, w, s, b, lhs, rhs = _split(args, mode)
    check_packed("gather_qmm", w, s, b[0] if b else None, group_size, bits, mode)
    inner, outer = qmm_dims(w, transpose, bits)
    if not is_float(x.dtype) or x.ndim < 2 or x.shape[-1] != inner:
        raise TypeError(f"[gather_qmm] x {x.str_short()} does not match ({inner}, {outer})")
    if mode == "affine" and s.dtype != x.dtype:
        raise TypeError(f"[gather_qmm] x {x.str_short()} and scales {s.str_short()} differ")
    _check_indices("gather_qmm", lhs, rhs)
    return [x.update(shape=lhs.shape + (x.shape[-2], outer))]


gather_qmm_p = def_primitive("gather_qmm", "gather_mm", _gather_qmm_rule)


def gather_qmm(
    x,
    w,
    scales,
    *rest,
    transpose,
    group_size,
    bits,
    mode,
    sorted_indices=False,
    lhs_none=False,
    rhs_none=False,
):
    """``rest`` is ``(biases, lhs, rhs)`` in affine mode, ``(lhs, rhs)`` otherwise."""
    return bind(
        gather_qmm_p,
        x,
        w,
        scales,
        *rest,
        transpose=transpose,
        group_size=group_size,
        bits=bits,
        mode=mode,
        sorted_indices=sorted_indices,
        lhs_none=lhs_none,
        rhs_none=rhs_none,
    )


def _gather_qmm_jvp(primals, tangents, **p):
    x, w, s, b, lhs, rhs = _split(primals, p["mode"])
    out = gather_qmm(*primals, **p)
    t = Zero(aval_of(out))
    if type(tangents[0]) is not Zero:
        t = gather_qmm(tangents[0], *primals[1:], **p)
    tsb = tangents[2 : 2 + 1 + len(b)] if p["mode"] == "affine" else ()
    if any(type(d) is not Zero for d in tsb):
        ts, tb = (instantiate(d) for d in tsb)
        t = add_tangents(t, gather_qmm(x, w, ts, tb, lhs, rhs, **p))
    return out, t


jvp_rules[gather_qmm_p] = _gather_qmm_jvp


def _gather_qmm_t(ct, *args, transpose, group_size, bits, mode, sorted_indices, lhs_none, rhs_none):
    x, w, s, b, lhs, rhs = _split(args, mode)
    p = dict(group_size=group_size, bits=bits, mode=mode)
    out_batch = aval_of(ct).shape[:-2]
    own = default_indices(aval_of(ct).shape, out_batch)
    if is_undefined(x):
        if is_undefined(s) or (b and is_undefined(b[0])):
            raise TypeError("gather_qmm of x and scales/biases both linear is not linear")
        g = gather_qmm(
            ct,
            w,
            s,
            *b,
            own,
            rhs,
            transpose=not transpose,
            sorted_indices=sorted_indices and lhs_none,
            lhs_none=True,
            rhs_none=rhs_none,
            **p,
        )
        return [_scatter(g, lhs, x.aval.shape, lhs_none)] + [None] * (len(args) - 1)
    # d(dequantized w)[e] = sum over i with rhs[i] == e of ct_i.T @ X[lhs_i] (or X[lhs_i].T @ ct_i)
    if transpose:
        dw = gather_mm(_swap(ct), x, own, lhs, lhs_none=True)
    else:
        dw = gather_mm(_swap(x), ct, lhs, own, rhs_none=True)
    sa = aval_of(s)
    dw = L.convert(
        scatter_back(dw, rhs, aval_of(w).shape[:-1] + (aval_of(dw).shape[-1],)), sa.dtype
    )
    ct_s = group_sums(L.mul(dw, codes(w, sa, group_size, bits)), group_size)
    ct_b = group_sums(dw, group_size) if is_undefined(b[0]) else None
    return [None, None, ct_s if is_undefined(s) else None, ct_b, None, None]


transpose_rules[gather_qmm_p] = _gather_qmm_t
mark_linear(gather_qmm_p)


def _gather_qmm_batch(size, args, dims, **p):
    x, w, s, b, lhs, rhs = _split(args, p["mode"])
    dx, dw, ds, db, dl, dr = _split(dims, p["mode"])
    x1, lhs1 = fold(x, dx, lhs, dl, size)
    mats, mdims = (w, s, *b), (dw, ds, *db)
    if all(d is None for d in mdims):
        rhs1 = to_front(rhs, dr, size)
    else:  # fold the batch of w, scales and biases together
        mats = [to_front(m, d, size) for m, d in zip(mats, mdims)]
        rhs1 = None
        for i, m in enumerate(mats):
            mats[i], r = fold(m, 0, rhs, dr, size)
            rhs1 = r if rhs1 is None else rhs1
    p = dict(p, sorted_indices=False, lhs_none=False, rhs_none=False)
    return gather_qmm(x1, *mats, lhs1, rhs1, **p), 0


batch_rules[gather_qmm_p] = _gather_qmm_batch


def _gather_qmm_mlx(
    args, ins, outs, transpose, group_size, bits, mode, sorted_indices, lhs_none, rhs_none
):
    x, w, s, b, lhs, rhs = _split(args, mode)
    lhs, rhs = _index_args((lhs, rhs), lhs_none, rhs_none)
    return (
        f"mx.gather_qmm({x}, {w}, {s}, {b[0] if b else None}, {lhs}, {rhs}, "
        f"transpose={transpose}, group_size={group_size}, bits={bits}, mode={mode!r}, "
        f"sorted_indices={sorted_indices})"
    )


lowerings[gather_qmm_p] = _gather_qmm_mlx


def _gather_qmm_np(*args, transpose, group_size, bits, mode, **_):
    x, w, s, b, lhs, rhs = _split(args, mode)
    return _gather_np(
        x, dequantized(w, s, b[0] if b else None, group_size, bits, mode, transpose), lhs, rhs
    )


impls[gather_qmm_p] = _gather_qmm_np

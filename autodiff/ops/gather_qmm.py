"""The quantized matrix product with matrix-level gather, ``gather_qmm`` (mixture-of-experts
layers over quantized experts), lowered to MLX's kernel: linear in ``x`` and in the affine
``(scales, biases)``, with the helpers of ``autodiff/ops/gather_mm.py``, whose docstring
describes both and which re-exports it.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.dtypes import is_float
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
    to_front,
    transpose_rules,
)
from autodiff.ops.gather_mm import (
    _check_indices,
    _gather_np,
    _index_args,
    _scatter,
    _swap,
    default_indices,
    fold,
    gather_mm,
    scatter_back,
)
from autodiff.ops.quantized import check_packed, codes, group_sums
from autodiff.ops.quantized_matmul import dequantized, qmm_dims
from autodiff.tracing import aval_of

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

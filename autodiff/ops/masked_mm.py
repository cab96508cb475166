"""Structured matrix products on MLX's kernels: ``block_masked_mm`` and ``segmented_mm``.

``block_masked_mm(a, b, mo, ml, mr) = ((a * up(ml)) @ (b * up(mr))) * up(mo)``, where ``up``
repeats each mask entry over its ``block_size`` square (cropped at the edges); boolean masks
select, float masks multiply. It is multilinear in ``a``, ``b`` and the float masks (each
appears once), so its JVP is a sum of products with one operand replaced by its tangent and
its transposes are block-masked products again (plus block sums for the masks). Boolean masks
are constants.

``segmented_mm(a, b, segments)[s] = a[:, s0:s1] @ b[s0:s1, :]`` is bilinear in ``(a, b)``;
``segments`` are integer constants. Its transposes are written with the segment masks
(``S`` times the forward's work for ``S`` segments): MLX has no transposed kernel.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_bool, is_float, is_int
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
from autodiff.ops.quantized import unrolled
from autodiff.tracing import aval_of


def _tiles(n, bs):
    return -(-n // bs)


def _masks(masks, has_out, has_operands):
    """``(mask_out | None, mask_lhs | None, mask_rhs | None)`` from the operand list."""
    mo = masks[0] if has_out else None
    ml, mr = masks[-2:] if has_operands else (None, None)
    return mo, ml, mr


def _bmm_rule(a, b, *masks, block_size, has_out, has_operands):
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim < 2 or a.shape[:-2] != b.shape[:-2]:
        raise TypeError(f"[block_masked_mm] expects float matrices of one batch shape: {a}, {b}")
    (m, k), n = a.shape[-2:], b.shape[-1]
    if b.shape[-2] != k or len(masks) != has_out + 2 * has_operands:
        raise TypeError(f"[block_masked_mm] cannot multiply {a.str_short()} by {b.str_short()}")
    tm, tk, tn = (_tiles(d, block_size) for d in (m, k, n))
    mo, ml, mr = _masks(masks, has_out, has_operands)
    for mask, tiles in ((mo, (tm, tn)), (ml, (tm, tk)), (mr, (tk, tn))):
        if mask is not None and (
            mask.shape != a.shape[:-2] + tiles or mask.dtype not in ("bool", a.dtype)
        ):
            raise TypeError(
                f"[block_masked_mm] mask {mask} should be bool or {a.dtype}, "
                f"of shape {a.shape[:-2] + tiles}"
            )
    if ml is not None and ml.dtype != mr.dtype:
        raise TypeError("[block_masked_mm] operand masks must have one dtype")
    return [a.update(shape=a.shape[:-1] + (n,))]


block_masked_mm_p = def_primitive("block_masked_mm", "masked_mm", _bmm_rule)


def block_masked_mm(a, b, mask_out=None, mask_lhs=None, mask_rhs=None, *, block_size):
    """Masks already broadcast; a missing operand mask is filled with ones of the other's
    dtype (MLX's convention)."""
    if (mask_lhs is None) != (mask_rhs is None):
        given = mask_lhs if mask_rhs is None else mask_rhs
        sa, sb, dt = aval_of(a).shape, aval_of(b).shape, aval_of(given).dtype
        tm, tk, tn = (_tiles(d, block_size) for d in (sa[-2], sa[-1], sb[-1]))
        one = True if is_bool(dt) else 1.0
        if mask_lhs is None:
            mask_lhs = L.full(sa[:-2] + (tm, tk), one, dt)
        else:
            mask_rhs = L.full(sa[:-2] + (tk, tn), one, dt)
    if mask_lhs is not None and aval_of(mask_lhs).dtype != aval_of(mask_rhs).dtype:
        dt = aval_of(a).dtype
        mask_lhs, mask_rhs = L.convert(mask_lhs, dt), L.convert(mask_rhs, dt)
    masks = [m for m in (mask_out, mask_lhs, mask_rhs) if m is not None]
    return bind(
        block_masked_mm_p,
        a,
        b,
        *masks,
        block_size=block_size,
        has_out=mask_out is not None,
        has_operands=mask_lhs is not None,
    )


def _bmm_jvp(primals, tangents, **p):
    out = bind(block_masked_mm_p, *primals, **p)
    t = Zero(aval_of(out))
    for i, ti in enumerate(tangents):
        if type(ti) is not Zero:
            args = list(primals)
            args[i] = ti
            t = add_tangents(t, bind(block_masked_mm_p, *args, **p))
    return out, t


jvp_rules[block_masked_mm_p] = _bmm_jvp


def _swap(x):
    if x is None:
        return None
    n = len(aval_of(x).shape)
    return L.transpose(x, list(range(n - 2)) + [n - 1, n - 2])


def block_sums(x, bs, dtype):
    """Sums of ``x`` over its ``bs``-square blocks (partial at the edges), as ``dtype``."""
    shape = aval_of(x).shape
    r, c = shape[-2:]
    tr, tc = _tiles(r, bs), _tiles(c, bs)
    x = L.pad(x, 0.0, [(0, 0, 0)] * (len(shape) - 2) + [(0, tr * bs - r, 0), (0, tc * bs - c, 0)])
    x = L.reshape(x, shape[:-2] + (tr, bs, tc, bs))
    return L.convert(L.reduce_sum(x, (len(shape) - 1, len(shape) + 1)), dtype)


def _bmm_t(ct, a, b, *masks, block_size, has_out, has_operands):
    mo, ml, mr = _masks(masks, has_out, has_operands)
    bmm = lambda x, y, o, lhs, rhs: block_masked_mm(x, y, o, lhs, rhs, block_size=block_size)
    und = [is_undefined(x) for x in (a, b, mo, ml, mr)]
    if sum(und) != 1:
        raise TypeError("block_masked_mm is linear in one operand at a time")
    cts = [None] * (2 + len(masks))
    if und[0]:
        cts[0] = bmm(ct, _swap(b), ml, mo, _swap(mr))
    elif und[1]:
        cts[1] = bmm(_swap(a), ct, mr, _swap(ml), mo)
    else:
        i = und.index(True)  # a float mask
        dt = aval_of((mo, ml, mr)[i - 2]).dtype
        if i == 2:
            prod = L.mul(ct, bmm(a, b, None, ml, mr))
        elif i == 3:
            prod = L.mul(a, bmm(ct, _swap(b), None, mo, _swap(mr)))
        else:
            prod = L.mul(b, bmm(_swap(a), ct, None, _swap(ml), mo))
        # operand position: mask_out first, then mask_lhs, mask_rhs
        pos = 2 if i == 2 else 2 + int(has_out) + i - 3
        cts[pos] = block_sums(prod, block_size, dt)
    return cts


transpose_rules[block_masked_mm_p] = _bmm_t
mark_linear(block_masked_mm_p)


def _bmm_batch(size, args, dims, **p):
    return bind(block_masked_mm_p, *[to_front(x, d, size) for x, d in zip(args, dims)], **p), 0


batch_rules[block_masked_mm_p] = _bmm_batch


def _bmm_mlx(args, ins, outs, block_size, has_out, has_operands):
    mo, ml, mr = _masks(args[2:], has_out, has_operands)
    return f"mx.block_masked_mm({args[0]}, {args[1]}, {block_size}, {mo}, {ml}, {mr})"


lowerings[block_masked_mm_p] = _bmm_mlx


def _up(mask, r, c, bs):
    m = np.repeat(np.repeat(np.asarray(mask, np.float64), bs, -2), bs, -1)
    return m[..., :r, :c]


def _bmm_np(a, b, *masks, block_size, has_out, has_operands):
    mo, ml, mr = _masks(masks, has_out, has_operands)
    (m, k), n = a.shape[-2:], b.shape[-1]
    if ml is not None:
        a, b = a * _up(ml, m, k, block_size), b * _up(mr, k, n, block_size)
    out = a @ b
    return out * _up(mo, m, n, block_size) if mo is not None else out


impls[block_masked_mm_p] = _bmm_np

# ---------------------------------------------------------------------------------------------
# segmented_mm


def _seg_rule(a, b, segments):
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim != 2 or b.ndim != 2:
        raise TypeError(f"[segmented_mm] expects two float matrices of one dtype: {a}, {b}")
    if a.shape[1] != b.shape[0]:
        raise TypeError(f"[segmented_mm] cannot multiply {a.str_short()} by {b.str_short()}")
    if not is_int(segments.dtype) or segments.ndim < 1 or segments.shape[-1] != 2:
        raise TypeError(f"[segmented_mm] segments must be integers of shape (..., 2): {segments}")
    return [a.update(shape=segments.shape[:-1] + (a.shape[0], b.shape[1]))]


segmented_mm_p = def_primitive("segmented_mm", "masked_mm", _seg_rule)


def segmented_mm(a, b, segments):
    return bind(segmented_mm_p, a, b, segments)


def _seg_jvp(primals, tangents):
    a, b, seg = primals
    out = segmented_mm(a, b, seg)
    t = Zero(aval_of(out))
    if type(tangents[0]) is not Zero:
        t = segmented_mm(tangents[0], b, seg)
    if type(tangents[1]) is not Zero:
        t = add_tangents(t, segmented_mm(a, tangents[1], seg))
    return out, t


jvp_rules[segmented_mm_p] = _seg_jvp


def segment_masks(segments, k, dtype):
    """``(..., k)``: 1 where position ``j`` lies in ``[start, end)`` of each segment."""
    shape = aval_of(segments).shape[:-1]
    nd = len(shape)
    idt = aval_of(segments).dtype
    j = L.iota(idt, shape + (k,), nd)
    start = L.broadcast_in_dim(
        L.squeeze(L.slice_in_dim(segments, 0, 1, 1, nd), (nd,)), shape + (k,), range(nd)
    )
    end = L.broadcast_in_dim(
        L.squeeze(L.slice_in_dim(segments, 1, 2, 1, nd), (nd,)), shape + (k,), range(nd)
    )
    return L.convert(L.logical_and(L.ge(j, start), L.lt(j, end)), dtype)


def _seg_t(ct, a, b, seg):
    if is_undefined(a) and is_undefined(b):
        raise TypeError("segmented_mm of two linear operands is not linear")
    cs = aval_of(ct).shape
    ns = len(cs) - 2
    segs = tuple(range(ns))
    if is_undefined(a):
        (m, k), dt = a.aval.shape, a.aval.dtype
        t = L.dot_general(ct, b, (((ns + 1,), (1,)), ((), ())))  # (S.., M, K)
        mask = L.broadcast_in_dim(segment_masks(seg, k, dt), cs[:-2] + (m, k), segs + (ns + 1,))
        return [L.reduce_sum(L.mul(t, mask), segs), None, None]
    (k, n), dt = b.aval.shape, b.aval.dtype
    t = L.dot_general(a, ct, (((0,), (ns,)), ((), ())))  # (K, S.., N)
    t = L.transpose(t, tuple(range(1, ns + 1)) + (0, ns + 1))  # (S.., K, N)
    mask = L.broadcast_in_dim(segment_masks(seg, k, dt), cs[:-2] + (k, n), segs + (ns,))
    return [None, L.reduce_sum(L.mul(t, mask), segs), None]


transpose_rules[segmented_mm_p] = _seg_t
mark_linear(segmented_mm_p)


def _seg_batch(size, args, dims):
    (a, b, seg), (da, db, ds) = args, dims
    if ds is not None or (da is not None and db is not None):
        return unrolled(segmented_mm_p, size, args, dims, {})
    ns = len(aval_of(seg).shape) - 1
    if da is not None:  # fold the batch into a's rows
        a0 = moveaxis(a, da, 0)
        bsz, m, k = aval_of(a0).shape
        out = segmented_mm(L.reshape(a0, (bsz * m, k)), b, seg)
        return L.reshape(out, aval_of(out).shape[:-2] + (bsz, m, aval_of(b).shape[1])), ns
    b0 = moveaxis(b, db, 1)  # (K, B, N): fold the batch into b's columns
    k, bsz, n = aval_of(b0).shape
    out = segmented_mm(a, L.reshape(b0, (k, bsz * n)), seg)
    out = L.reshape(out, aval_of(out).shape[:-1] + (bsz, n))
    return out, ns + 1


batch_rules[segmented_mm_p] = _seg_batch
lowerings[segmented_mm_p] = lambda a, ins, outs: f"mx.segmented_mm({a[0]}, {a[1]}, {a[2]})"


def _seg_np(a, b, segments):
    seg = segments.astype(np.int64).reshape(-1, 2)
    out = [a[:, s:e] @ b[s:e, :] if e > s else np.zeros((a.shape[0], b.shape[1])) for s, e in seg]
    return np.stack(out).reshape(segments.shape[:-1] + (a.shape[0], b.shape[1]))


impls[segmented_mm_p] = _seg_np

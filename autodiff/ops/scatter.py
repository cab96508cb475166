"""Scatters: ``scatter`` (set), ``scatter_mul``, ``scatter_max``, ``scatter_min``, the
companions of the core ``scatter_add``; ``x.at[idx]``, ``x[idx] = y`` and ``put_along_axis``
in ``autodiff.numpy`` are built on them.

All take ``(x, indices, updates, axis)`` shaped as ``take``: ``updates`` has the shape of
``take(x, indices, axis)``, and ``updates[..., j, ...]`` goes to ``x[..., indices[j], ...]``.
Indices must lie in ``[0, x.shape[axis])`` (MLX does not check them): ``autodiff.numpy``
wraps negative indices and routes out-of-range ones to a slot past the end that it drops.

Repeated indices: ``scatter`` keeps the last update (MLX's CPU kernels apply updates in order;
on a GPU MLX does not specify the order, and the derivative still assumes the last one won);
``scatter_mul`` multiplies all of them in, ``scatter_max``/``scatter_min`` take the extreme of
the operand and all updates.

Derivatives (MLX has no JVP for any scatter, and no VJP for ``scatter_prod``):

- ``scatter`` is linear in ``(x, updates)`` jointly; its transpose gives each update the
  cotangent of its slot only if it won the slot.
- ``scatter_mul(x, i, u) = x * S`` with ``S`` the product of the updates per slot; ``dS``
  comes from the product of the *other* updates of the slot, computed without division by
  zero (by counting zeros). Exact to first order everywhere and to any order away from zero
  updates; at a zero update, second derivatives in it and another update of its slot come
  out 0 (``reduce_prod`` uses a product tree instead, which a scatter cannot).
- ``scatter_max``/``scatter_min`` split the tangent equally between the operand and the
  updates that attain the extreme, as ``reduce_max`` does.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff import primitives as P
from autodiff.extend import (
    Zero,
    add_tangents,
    batch_rules,
    bind,
    def_primitive,
    deflinear,
    impls,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.lower_mlx import helpers
from autodiff.tracing import aval_of


def _scatter_rule(x, idx, updates, *, axis):
    (expected,) = P.take.abstract_eval(x, idx, axis=axis)
    if updates != expected:
        raise TypeError(f"updates must be {expected.str_short()}, got {updates.str_short()}")
    return [x]


scatter_p = def_primitive("scatter", "scatter", _scatter_rule)
scatter_mul_p = def_primitive("scatter_mul", "scatter", _scatter_rule)
scatter_max_p = def_primitive("scatter_max", "scatter", _scatter_rule)
scatter_min_p = def_primitive("scatter_min", "scatter", _scatter_rule)


def scatter(x, indices, updates, axis: int):
    """``x`` with ``updates`` written at ``indices`` along ``axis`` (the last one wins)."""
    return bind(scatter_p, x, indices, updates, axis=axis)


def scatter_mul(x, indices, updates, axis: int):
    """``x`` with its slots at ``indices`` multiplied by ``updates`` (all of them)."""
    return bind(scatter_mul_p, x, indices, updates, axis=axis)


def scatter_max(x, indices, updates, axis: int):
    """``x`` with its slots at ``indices`` raised to the largest of themselves and ``updates``."""
    return bind(scatter_max_p, x, indices, updates, axis=axis)


def scatter_min(x, indices, updates, axis: int):
    """``x`` with its slots at ``indices`` lowered to the least of themselves and ``updates``."""
    return bind(scatter_min_p, x, indices, updates, axis=axis)


# ---------------------------------------------------------------------------------------------
# Derivatives


def _idx_dims(x_aval, idx, axis):
    """The axes of the updates that the index dimensions occupy."""
    return tuple(range(axis, axis + len(aval_of(idx).shape)))


def _expand_idx(mask, u_aval, dims):
    """An index-shaped array broadcast to the updates' shape."""
    return L.broadcast_in_dim(mask, u_aval.shape, dims)


def _winners(idx, n):
    """True where an update is the last one written to its slot (so it is what ``scatter``
    leaves there): the largest update number per slot, by a ``scatter_max`` of an iota."""
    shape = aval_of(idx).shape
    k = int(np.prod(shape))
    flat = L.reshape(idx, (k,))
    order = L.iota("int32", (k,), 0)
    last = scatter_max(L.full((n,), -1, "int32"), flat, order, 0)
    return L.reshape(L.eq(L.take(last, flat, 0), order), shape)


deflinear(scatter_p, linear_argnums=(0, 2))


def _scatter_t(ct, x, idx, u, axis):
    ct_x = ct_u = None
    if is_undefined(x):
        ct_x = scatter(ct, idx, L.zeros_like_aval(u.aval), axis)
    if is_undefined(u):
        won = _winners(idx, aval_of(ct).shape[axis])
        won = _expand_idx(won, u.aval, _idx_dims(x, idx, axis))
        ct_u = L.select(won, L.take(ct, idx, axis), 0.0)
    return [ct_x, None, ct_u]


transpose_rules[scatter_p] = _scatter_t


def _scatter_mul_jvp(primals, tangents, axis):
    (x, idx, u), (tx, _, tu) = primals, tangents
    out = scatter_mul(x, idx, u, axis)
    t_out = Zero(aval_of(out))
    if type(tx) is not Zero:
        t_out = scatter_mul(tx, idx, u, axis)
    if type(tu) is not Zero:
        t_out = add_tangents(
            t_out,
            L.mul(
                x,
                L.scatter_add(
                    L.zeros_like_aval(aval_of(x)), idx, L.mul(tu, _others(x, idx, u, axis)), axis
                ),
            ),
        )
    return out, t_out


def _others(x, idx, u, axis):
    """Per update, the product of the other updates to its slot, without dividing by zero:
    with ``nz`` zeros in the slot and ``p`` the product of its nonzero updates, it is
    ``p / u`` (no zeros), ``p`` for the one zero (exactly one), else 0."""
    xa, ua = aval_of(x), aval_of(u)
    zero = L.eq(u, 0.0)
    zeros = L.take(
        L.scatter_add(L.zeros_like_aval(xa), idx, L.convert(zero, xa.dtype), axis), idx, axis
    )
    safe = L.select(zero, L.full(ua.shape, 1.0, ua.dtype), u)
    prod = L.take(scatter_mul(L.full(xa.shape, 1.0, xa.dtype), idx, safe, axis), idx, axis)
    nil = L.full(ua.shape, 0.0, ua.dtype)
    return L.select(
        zero,
        L.select(L.eq(zeros, 1.0), prod, nil),
        L.select(L.eq(zeros, 0.0), L.div(prod, safe), nil),
    )


jvp_rules[scatter_mul_p] = _scatter_mul_jvp
mark_linear(scatter_mul_p)


def _scatter_mul_t(ct, x, idx, u, axis):
    if is_undefined(u):
        raise TypeError("scatter_mul is not linear in its updates")
    return [scatter_mul(ct, idx, u, axis), None, None]


transpose_rules[scatter_mul_p] = _scatter_mul_t


def _extreme_jvp(prim):
    def rule(primals, tangents, axis):
        (x, idx, u), (tx, _, tu) = primals, tangents
        out = bind(prim, x, idx, u, axis=axis)
        if type(tx) is Zero and type(tu) is Zero:
            return out, Zero(aval_of(out))
        dtype = aval_of(x).dtype
        at_x = L.convert(L.eq(x, out), dtype)
        at_u = L.convert(L.eq(u, L.take(out, idx, axis)), dtype)
        zeros = L.zeros_like_aval(aval_of(x))
        count = L.add(at_x, L.scatter_add(zeros, idx, at_u, axis))
        t = Zero(aval_of(out))
        if type(tx) is not Zero:
            t = L.mul(tx, at_x)
        if type(tu) is not Zero:
            t = add_tangents(t, L.scatter_add(zeros, idx, L.mul(tu, at_u), axis))
        return out, L.div(t, count)

    jvp_rules[prim] = rule


_extreme_jvp(scatter_max_p)
_extreme_jvp(scatter_min_p)

# ---------------------------------------------------------------------------------------------
# Batching: the batch axis goes first; batched indices fold it into the scattered axis.


def _batch(prim):
    def rule(size, args, dims, axis):
        (x, idx, u), (dx, di, du) = args, dims
        x0, u0 = to_front(x, dx, size), to_front(u, du, size)
        if di is None:
            return bind(prim, x0, idx, u0, axis=axis + 1), 0
        shape = aval_of(x0).shape
        n, pre, post = shape[axis + 1], shape[1 : axis + 1], shape[axis + 2 :]
        # x0 (B, pre, n, post) -> (B*n, pre, post); index b*n + i; updates to (B, I, pre, post)
        xt = L.transpose(x0, [0, axis + 1, *range(1, axis + 1), *range(axis + 2, len(shape))])
        xr = L.reshape(xt, (shape[0] * n,) + pre + post)
        i0 = moveaxis(idx, di, 0)
        ia = aval_of(i0)
        i0 = L.add(i0, L.mul(L.iota(ia.dtype, ia.shape, 0), n))
        ni, npre, npost = len(ia.shape) - 1, len(pre), len(post)
        perm = [0, *range(1 + npre, 1 + npre + ni), *range(1, 1 + npre)]
        perm += list(range(1 + npre + ni, 1 + npre + ni + npost))
        out = bind(prim, xr, i0, L.transpose(u0, perm), axis=0)
        out = L.reshape(out, (shape[0], n) + pre + post)
        back = [0, *range(2, 2 + npre), 1, *range(2 + npre, 2 + npre + npost)]
        return L.transpose(out, back), 0

    batch_rules[prim] = rule


for _p in (scatter_p, scatter_mul_p, scatter_max_p, scatter_min_p):
    _batch(_p)

# ---------------------------------------------------------------------------------------------
# Lowering and the float64 reference


def _scatter_mlx(x, idx, u, axis):
    """Set: ``mx.put_along_axis`` with the indices spread over the other axes (MLX's ``.at``
    has no ``set``; its kernels apply repeated indices in order)."""
    import mlx.core as mx

    pre, post, k = x.shape[:axis], x.shape[axis + 1 :], idx.size
    shape = pre + (k,) + post
    i = mx.reshape(idx, (1,) * len(pre) + (k,) + (1,) * len(post))
    return mx.put_along_axis(x, mx.broadcast_to(i, shape), mx.reshape(u, shape), axis=axis)


helpers["_scatter"] = _scatter_mlx
lowerings[scatter_p] = lambda a, ins, outs, axis: f"_scatter({a[0]}, {a[1]}, {a[2]}, {axis})"
for _p, _method in (
    (scatter_mul_p, "multiply"),
    (scatter_max_p, "maximum"),
    (scatter_min_p, "minimum"),
):
    lowerings[_p] = (
        lambda m: lambda a, ins, outs, axis: f"{a[0]}.at[{':, ' * axis}{a[1]}].{m}({a[2]})"
    )(_method)


def _scatter_np(x, idx, u, axis):
    out = np.array(x, copy=True)
    out_m, u_m = np.moveaxis(out, axis, 0), np.moveaxis(u, axis, 0)
    u_m = u_m.reshape((idx.size,) + out_m.shape[1:])
    for j, i in enumerate(idx.reshape(-1)):  # in order: the last update wins
        out_m[i] = u_m[j]
    return out


def _ufunc_at(ufunc):
    def impl(x, idx, u, axis):
        out = np.array(x, copy=True)
        ufunc.at(out, (slice(None),) * axis + (idx,), u)
        return out

    return impl


impls[scatter_p] = _scatter_np
impls[scatter_mul_p] = _ufunc_at(np.multiply)
impls[scatter_max_p] = _ufunc_at(np.maximum)
impls[scatter_min_p] = _ufunc_at(np.minimum)

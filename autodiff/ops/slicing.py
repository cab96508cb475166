"""Slices with traced starts, and reversal: ``dynamic_slice``, ``dynamic_update_slice``
(``mx.slice`` and ``mx.slice_update``, and the update of ``x[1:3] = y``), ``rev`` (``flip``
and negative-step slices).

``dynamic_slice(x, *starts, slice_sizes)`` takes one rank-0 integer start per axis (a literal
where it is static, as in ``jax.lax``). Starts are clamped so that the window lies inside
``x``, as ``jax.lax.dynamic_slice`` does: MLX does not check them (an out-of-range start reads
or writes outside the array), so this is where a traced program and eager MLX may differ.
Static starts lower to plain slicing; traced ones to ``mx.slice``/``mx.slice_update``.

Both are linear (in ``x``, and in ``(x, update)``); each transposes to the other. A batched
start turns the slice into a gather (``take_along_axis`` per sliced axis) and the update into
a ``scatter``, which MLX cannot batch (``mx.vmap`` rejects batched starts).
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_int
from autodiff.extend import (
    batch_rules,
    bind,
    def_primitive,
    deffront,
    deflinear,
    impls,
    is_undefined,
    lowerings,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.ir import Literal
from autodiff.lower_mlx import helpers
from autodiff.tracing import aval_of


def _check_starts(prim, x, starts):
    if len(starts) != x.ndim:
        raise ValueError(f"{prim}: one start per axis ({x.ndim}), got {len(starts)}")
    for s in starts:
        if s.shape != () or not is_int(s.dtype):
            raise TypeError(f"{prim}: starts must be integer scalars, got {s.str_short()}")


def _dynamic_slice_rule(x, *starts, slice_sizes):
    _check_starts("dynamic_slice", x, starts)
    if len(slice_sizes) != x.ndim or any(not 0 <= n <= d for n, d in zip(slice_sizes, x.shape)):
        raise ValueError(f"slice sizes {slice_sizes} do not fit in {x.str_short()}")
    return [x.update(shape=tuple(slice_sizes))]


def _dynamic_update_slice_rule(x, update, *starts):
    _check_starts("dynamic_update_slice", x, starts)
    if update.dtype != x.dtype or update.ndim != x.ndim:
        raise TypeError(f"update {update.str_short()} must have the dtype and rank of {x}")
    if any(n > d for n, d in zip(update.shape, x.shape)):
        raise ValueError(f"update {update.str_short()} does not fit in {x.str_short()}")
    return [x]


def _rev_rule(x, *, dimensions):
    if any(not 0 <= d < x.ndim for d in dimensions) or len(set(dimensions)) != len(dimensions):
        raise ValueError(f"bad dimensions {dimensions} for {x.str_short()}")
    return [x]


dynamic_slice_p = def_primitive("dynamic_slice", "slicing", _dynamic_slice_rule)
dynamic_update_slice_p = def_primitive(
    "dynamic_update_slice", "slicing", _dynamic_update_slice_rule
)
rev_p = def_primitive("rev", "slicing", _rev_rule)


def _start(s):
    return L.convert(s, "int32") if type(s) is not int else s


def dynamic_slice(x, starts, slice_sizes):
    """The window of ``x`` of size ``slice_sizes`` at ``starts`` (one per axis, clamped)."""
    starts = [_start(s) for s in starts]
    return bind(dynamic_slice_p, x, *starts, slice_sizes=tuple(slice_sizes))


def dynamic_update_slice(x, update, starts):
    """``x`` with the window at ``starts`` (one per axis, clamped) replaced by ``update``."""
    starts = [_start(s) for s in starts]
    return bind(dynamic_update_slice_p, x, update, *starts)


def rev(x, dimensions):
    """``x`` reversed along ``dimensions``."""
    dimensions = tuple(sorted(dimensions))
    return bind(rev_p, x, dimensions=dimensions) if dimensions else x


# ---------------------------------------------------------------------------------------------
# Derivatives: linear, each the transpose of the other.

deflinear(dynamic_slice_p, linear_argnums=(0,))
deflinear(dynamic_update_slice_p, linear_argnums=(0, 1))
deflinear(rev_p)


def _dynamic_slice_t(ct, x, *starts, slice_sizes):
    zeros = L.zeros_like_aval(x.aval)
    return [dynamic_update_slice(zeros, ct, starts)] + [None] * len(starts)


def _dynamic_update_slice_t(ct, x, u, *starts):
    ct_x = ct_u = None
    if is_undefined(x):
        ct_x = dynamic_update_slice(ct, L.zeros_like_aval(u.aval), starts)
    if is_undefined(u):
        ct_u = dynamic_slice(ct, starts, u.aval.shape)
    return [ct_x, ct_u] + [None] * len(starts)


transpose_rules[dynamic_slice_p] = _dynamic_slice_t
transpose_rules[dynamic_update_slice_p] = _dynamic_update_slice_t
transpose_rules[rev_p] = lambda ct, x, dimensions: [rev(ct, dimensions)]

# ---------------------------------------------------------------------------------------------
# Batching


def _clamped(s, bound):
    return L.max_(L.min_(s, bound), 0)


def _dynamic_slice_batch(size, args, dims, slice_sizes):
    (x, *starts), (dx, *ds) = args, dims
    if all(d is None for d in ds):
        return dynamic_slice(moveaxis(x, dx, 0), [0, *starts], (size, *slice_sizes)), 0
    # Batched starts: one gather (take_along_axis) per sliced axis.
    out = to_front(x, dx, size)
    for k, (s, d, n) in enumerate(zip(starts, ds, slice_sizes)):
        shape = aval_of(out).shape
        dim = shape[k + 1]
        if d is None:
            sizes = shape[: k + 1] + (n,) + shape[k + 2 :]
            zero = [0] * len(shape)
            out = dynamic_slice(out, zero[: k + 1] + [s] + zero[k + 2 :], sizes)
            continue
        s = _clamped(moveaxis(_start(s), d, 0), dim - n)  # (B,)
        pos = L.add(L.broadcast_in_dim(s, (size, n), (0,)), L.iota("int32", (size, n), 1))
        target = shape[: k + 1] + (n,) + shape[k + 2 :]
        out = L.take_along_axis(out, L.broadcast_in_dim(pos, target, (0, k + 1)), k + 1)
    return out, 0


def _dynamic_update_slice_batch(size, args, dims):
    (x, u, *starts), (dx, du, *ds) = args, dims
    x0, u0 = to_front(x, dx, size), to_front(u, du, size)
    if all(d is None for d in ds):
        return dynamic_update_slice(x0, u0, [0, *starts]), 0
    # Batched starts: a scatter of the update's elements to their flat positions in x0.
    from autodiff.ops.scatter import scatter

    xs, us = aval_of(x0).shape, aval_of(u0).shape
    strides = [int(np.prod(xs[k + 1 :])) for k in range(len(xs))]
    pos = L.mul(L.iota("int32", us, 0), strides[0])
    for k, (s, d) in enumerate(zip(starts, ds)):
        coord = L.iota("int32", us, k + 1)
        if not (type(s) is Literal and s.val == 0):
            s = _start(s)
            if d is None:
                s = L.broadcast_in_dim(_clamped(s, xs[k + 1] - us[k + 1]), us, ())
            else:
                s = _clamped(moveaxis(s, d, 0), xs[k + 1] - us[k + 1])
                s = L.broadcast_in_dim(s, us, (0,))
            coord = L.add(coord, s)
        pos = L.add(pos, L.mul(coord, strides[k + 1]) if strides[k + 1] != 1 else coord)
    n, m = int(np.prod(xs)), int(np.prod(us))
    flat = scatter(L.reshape(x0, (n,)), L.reshape(pos, (m,)), L.reshape(u0, (m,)), 0)
    return L.reshape(flat, xs), 0


batch_rules[dynamic_slice_p] = _dynamic_slice_batch
batch_rules[dynamic_update_slice_p] = _dynamic_update_slice_batch
deffront(rev_p, lambda n, dimensions: dict(dimensions=tuple(d + 1 for d in dimensions)))

# ---------------------------------------------------------------------------------------------
# Lowering and the float64 reference


def _is_literal(src: str) -> bool:
    return src.lstrip("-").isdigit()


def _static_starts(args, shape, sizes):
    return [min(max(int(a), 0), d - n) for a, d, n in zip(args, shape, sizes)]


def _dynamic_starts(starts, shape, sizes):
    """The clamped start array and its axes, for ``mx.slice``/``mx.slice_update``."""
    import mlx.core as mx

    axes = [k for k, s in enumerate(starts) if not (type(s) is int and s == 0)]
    parts = [
        mx.array(starts[k], dtype=mx.int32) if type(starts[k]) is int else starts[k] for k in axes
    ]
    bounds = mx.array([shape[k] - sizes[k] for k in axes], dtype=mx.int32)
    return mx.clip(mx.stack(parts).astype(mx.int32), 0, bounds), axes


def _dynamic_slice_mlx(x, starts, sizes):
    import mlx.core as mx

    start, axes = _dynamic_starts(starts, x.shape, sizes)
    return mx.slice(x, start, axes, sizes)


def _dynamic_update_slice_mlx(x, u, starts):
    import mlx.core as mx

    start, axes = _dynamic_starts(starts, x.shape, u.shape)
    return mx.slice_update(x, u, start, axes)


def _dynamic_slice_lower(args, ins, outs, slice_sizes):
    x, starts = args[0], args[1:]
    shape = ins[0].shape
    if not shape:
        return x
    if all(_is_literal(s) for s in starts):
        st = _static_starts(starts, shape, slice_sizes)
        idx = ", ".join(f"{s}:{s + n}" for s, n in zip(st, slice_sizes))
        return f"{x}[{idx}]"
    return f"_dynamic_slice({x}, ({', '.join(starts)},), {tuple(slice_sizes)})"


def _dynamic_update_slice_lower(args, ins, outs):
    x, u, starts = args[0], args[1], args[2:]
    if not starts:
        return u
    if all(_is_literal(s) for s in starts):
        st = _static_starts(starts, ins[0].shape, ins[1].shape)
        axes = tuple(range(len(st)))
        return f"mx.slice_update({x}, {u}, mx.array({st}, dtype=mx.int32), {axes})"
    return f"_dynamic_update_slice({x}, {u}, ({', '.join(starts)},))"


def _rev_lower(args, ins, outs, dimensions):
    idx = ", ".join("::-1" if k in dimensions else ":" for k in range(ins[0].ndim))
    return f"{args[0]}[{idx}]"


helpers["_dynamic_slice"] = _dynamic_slice_mlx
helpers["_dynamic_update_slice"] = _dynamic_update_slice_mlx
lowerings[dynamic_slice_p] = _dynamic_slice_lower
lowerings[dynamic_update_slice_p] = _dynamic_update_slice_lower
lowerings[rev_p] = _rev_lower


def _window(shape, starts, sizes):
    return tuple(
        slice(s, s + n)
        for s, n in zip(
            (min(max(int(s), 0), d - n) for s, d, n in zip(starts, shape, sizes)), sizes
        )
    )


def _dynamic_update_slice_np(x, u, *starts):
    out = np.array(x, copy=True)
    out[_window(x.shape, starts, u.shape)] = u
    return out


impls[dynamic_slice_p] = lambda x, *starts, slice_sizes: x[_window(x.shape, starts, slice_sizes)]
impls[dynamic_update_slice_p] = _dynamic_update_slice_np
impls[rev_p] = lambda x, dimensions: np.flip(x, dimensions)

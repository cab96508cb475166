"""Batching: ``vmap_jaxpr`` and one batching rule per primitive.

Rule contract: ``batch_rules[prim](axis_size, args, dims, **params) -> (out, out_dim)`` where
``dims[i]`` is the batch axis of ``args[i]`` or None if it is unbatched (lists of outs and
dims for a primitive with several results). Rules are written with
``autodiff.lax``. Unbatched operands stay unbatched unless a primitive needs equal shapes
(elementwise ops broadcast them; the lowering drops broadcasts MLX does implicitly). Most rules
move the batch axis to the front; elementwise rules keep the first batched operand's axis.

Named axes (``vmap(f, axis_name="i")``, as JAX's BatchTrace with its axis name): a collective
over ``"i"`` (``psum``, ``all_gather``, ``axis_index``..., ``autodiff/ops/collectives.py``)
acts over the vmapped axis itself, so it needs a rule that knows it is *this* axis:
``named_batch_rules[prim](axis_size, args, dims, **params)``, same contract, called for every
equation whose ``axis_name`` param is the name this ``vmap_eval`` binds, even when no operand is
batched (``psum`` of an unbatched ``x`` is ``axis_size * x``; ``axis_index`` has no operands).
A collective over another name is batched by its ordinary ``batch_rules`` entry, like any
primitive. An equation with sub-jaxprs (cond, scan...) that mentions the name somewhere inside
is batched even when its operands are not. The batch rules of such primitives call
``vmap_jaxpr``/``vmap_eval`` on their sub-jaxprs; those calls inherit the name of the
``vmap_eval`` running them (a thread-local stack of the names being batched), so a ``psum``
inside a loop body is batched over the same axis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from autodiff import lax as L
from autodiff import primitives as P
from autodiff.ir import ClosedJaxpr, Literal, sub_jaxprs
from autodiff.tracing import aval_of, bind, read, trace_flat
from autodiff.transforms import optimize

batch_rules: dict[P.Primitive, Callable] = {}
# Collectives over the axis the current vmap binds by name (see the module docstring).
named_batch_rules: dict[P.Primitive, Callable] = {}


def moveaxis(x, src: int, dst: int):
    if src == dst:
        return x
    perm = [i for i in range(len(aval_of(x).shape)) if i != src]
    perm.insert(dst, src)
    return L.transpose(x, perm)


def to_front(x, d: int | None, size: int):
    """``x`` with its batch axis first, broadcasting an unbatched ``x`` along a new one."""
    if d is None:
        shape = aval_of(x).shape
        return L.broadcast_in_dim(x, (size,) + shape, range(1, len(shape) + 1))
    return moveaxis(x, d, 0)


def _shift(axes, by=1):
    return tuple(a + by for a in axes)


# ---------------------------------------------------------------------------------------------


def defelementwise(prim):
    def rule(size, args, dims, **params):
        logical = [
            aval_of(a).shape if d is None else _unbatched_shape(a, d) for a, d in zip(args, dims)
        ]
        shape = max(logical, key=len)  # operands agree, up to rank-0 literals and predicates
        bd = min(next(d for d in dims if d is not None), len(shape))
        full = shape[:bd] + (size,) + shape[bd:]
        out = []
        for a, d, s in zip(args, dims, logical):
            if d is not None:
                a = moveaxis(a, d, bd) if s == shape else L.broadcast_in_dim(a, full, (bd,))
            elif type(a) is not Literal and not (s == () and shape != ()):
                a = L.broadcast_in_dim(a, full, [i for i in range(len(full)) if i != bd])
            out.append(a)
        if prim is P.select and all(aval_of(a).shape == () for a in out[1:]):
            out[1] = L.broadcast_in_dim(out[1], full, ())
        return bind(prim, *out, **params), bd

    batch_rules[prim] = rule


def _unbatched_shape(x, d):
    s = aval_of(x).shape
    return s[:d] + s[d + 1 :]


for _p in list(P.PRIMITIVES.values()):
    if not P.is_elementwise(_p):
        continue
    defelementwise(_p)


def deffront(prim, adjust: Callable):
    """Move the (single) batched operand's axis to the front and shift the params."""

    def rule(size, args, dims, **params):
        (x,), (d,) = args, dims
        return bind(prim, moveaxis(x, d, 0), **adjust(size, **params)), 0

    batch_rules[prim] = rule


deffront(
    P.broadcast_in_dim,
    lambda n, shape, broadcast_dimensions: dict(
        shape=(n,) + shape, broadcast_dimensions=(0,) + _shift(broadcast_dimensions)
    ),
)
deffront(P.reshape, lambda n, new_sizes: dict(new_sizes=(n,) + new_sizes))
deffront(P.transpose, lambda n, permutation: dict(permutation=(0,) + _shift(permutation)))
deffront(P.squeeze, lambda n, dimensions: dict(dimensions=_shift(dimensions)))
deffront(P.expand_dims, lambda n, dimensions: dict(dimensions=_shift(dimensions)))
for _p in P.family("reduce"):
    deffront(_p, lambda n, axes: dict(axes=_shift(axes)))
for _p in P.family("arg_reduce"):
    deffront(_p, lambda n, axis: dict(axis=axis + 1))
deffront(P.cumsum, lambda n, axis, reverse: dict(axis=axis + 1, reverse=reverse))


def _slice_rule(size, args, dims, start_indices, limit_indices, strides):
    (x,), (d,) = args, dims
    ins = lambda t, v: t[:d] + (v,) + t[d:]
    return L.slice_(x, ins(start_indices, 0), ins(limit_indices, size), ins(strides, 1)), d


def _pad_rule(size, args, dims, padding_config):
    (x, v), (dx, dv) = args, dims
    config = ((0, 0, 0),) + padding_config
    if dv is None:
        return L.pad(to_front(x, dx, size), v, config), 0
    # A per-example padding value: pad with zeros, then fill the padding with a select.
    x0 = to_front(x, dx, size)
    out = L.pad(x0, 0.0, config)
    mask = L.pad(L.full(aval_of(x0).shape, True, "bool"), False, config)
    vb = L.broadcast_in_dim(moveaxis(v, dv, 0), aval_of(out).shape, (0,))
    return L.select(mask, out, vb), 0


def _concatenate_rule(size, args, dims, dimension):
    return L.concatenate([to_front(x, d, size) for x, d in zip(args, dims)], dimension + 1), 0


def _take_rule(size, args, dims, axis):
    (x, idx), (dx, di) = args, dims
    if di is None:
        return L.take(moveaxis(x, dx, 0), idx, axis + 1), 0
    if dx is None:
        return L.take(x, idx, axis), axis + di
    # Both batched: fold the batch into the indexed axis and offset the indices per example.
    x0 = moveaxis(x, dx, 0)
    xr, pre, post = _fold_batch_into_axis(x0, axis)
    idx0 = _offset_indices(moveaxis(idx, di, 0), aval_of(x0).shape[axis + 1])
    out = L.take(xr, idx0, 0)  # (B, I.., pre.., post..)
    ni = len(aval_of(idx0).shape) - 1
    perm = (
        [0]
        + list(range(1 + ni, 1 + ni + pre))
        + list(range(1, 1 + ni))
        + list(range(1 + ni + pre, 1 + ni + pre + post))
    )
    return L.transpose(out, perm), 0


def _fold_batch_into_axis(x0, axis):
    """(B, pre.., n, post..) -> (B*n, pre.., post..); returns it and len(pre), len(post)."""
    shape = aval_of(x0).shape
    b, n = shape[0], shape[axis + 1]
    pre, post = shape[1 : axis + 1], shape[axis + 2 :]
    xt = L.transpose(
        x0, [0, axis + 1] + list(range(1, axis + 1)) + list(range(axis + 2, len(shape)))
    )
    return L.reshape(xt, (b * n,) + pre + post), len(pre), len(post)


def _offset_indices(idx0, n):
    """Indices (B, ...) into rows b*n + i of a batch-folded axis."""
    shape, dtype = aval_of(idx0).shape, aval_of(idx0).dtype
    base = L.mul(L.iota(dtype, shape, 0), n) if n != 1 else L.iota(dtype, shape, 0)
    return L.add(idx0, base)


def _take_along_axis_rule(size, args, dims, axis):
    (x, idx), (dx, di) = args, dims
    return L.take_along_axis(to_front(x, dx, size), to_front(idx, di, size), axis + 1), 0


def _scatter_add_rule(size, args, dims, axis):
    (x, idx, u), (dx, di, du) = args, dims
    x0, u0 = to_front(x, dx, size), to_front(u, du, size)
    if di is None:
        return L.scatter_add(x0, idx, u0, axis + 1), 0
    shape = aval_of(x0).shape
    xr, pre, post = _fold_batch_into_axis(x0, axis)
    idx0 = _offset_indices(moveaxis(idx, di, 0), shape[axis + 1])
    ni = len(aval_of(idx0).shape) - 1
    # updates (B, pre, I, post) -> (B, I, pre, post), matching take(xr, idx0, 0)
    perm = (
        [0]
        + list(range(1 + pre, 1 + pre + ni))
        + list(range(1, 1 + pre))
        + list(range(1 + pre + ni, 1 + pre + ni + post))
    )
    out = L.scatter_add(xr, idx0, L.transpose(u0, perm), 0)
    out = L.reshape(out, (shape[0], shape[axis + 1]) + shape[1 : axis + 1] + shape[axis + 2 :])
    back = [0] + list(range(2, 2 + pre)) + [1] + list(range(2 + pre, 2 + pre + post))
    return L.transpose(out, back), 0


def _dot_general_rule(size, args, dims, dimension_numbers):
    (x, y), (dx, dy) = args, dims
    (xc, yc), (xb, yb) = dimension_numbers
    if dx is not None and dy is not None:
        dn = ((_shift(xc), _shift(yc)), ((0,) + _shift(xb), (0,) + _shift(yb)))
        return L.dot_general(moveaxis(x, dx, 0), moveaxis(y, dy, 0), dn), 0
    if dx is not None:
        dn = ((_shift(xc), yc), (_shift(xb), yb))
        return L.dot_general(moveaxis(x, dx, 0), y, dn), len(xb)
    dn = ((xc, _shift(yc)), (xb, _shift(yb)))
    x_free = len(aval_of(x).shape) - len(xc) - len(xb)
    return L.dot_general(x, moveaxis(y, dy, 0), dn), len(xb) + x_free


batch_rules[P.slice_] = _slice_rule
batch_rules[P.pad] = _pad_rule
batch_rules[P.concatenate] = _concatenate_rule
batch_rules[P.take] = _take_rule
batch_rules[P.take_along_axis] = _take_along_axis_rule
batch_rules[P.scatter_add] = _scatter_add_rule
batch_rules[P.dot_general] = _dot_general_rule
NO_BATCH_RULE = {P.iota: "has no operands, so it is never batched"}


# ---------------------------------------------------------------------------------------------


class _Naming(threading.local):
    def __init__(self):
        self.names: list = []  # the axis names of the vmap_evals running, innermost last


_naming = _Naming()
INHERIT = object()  # vmap_eval/vmap_jaxpr's default axis_name: that of the running vmap_eval


def mentions(eqn, name) -> bool:
    """Whether ``eqn`` is, or contains in a sub-jaxpr, a collective over axis ``name``."""
    if eqn.prim in named_batch_rules and eqn.params["axis_name"] == name:
        return True
    return any(mentions(e, name) for j in sub_jaxprs(eqn.params) for e in j.jaxpr.eqns)


def vmap_eval(
    closed: ClosedJaxpr, args: Sequence, dims: Sequence[int | None], size: int, axis_name=INHERIT
):
    """Evaluate ``closed`` on batched ``args`` in the current trace; returns (outs, out_dims).

    ``axis_name`` names the batched axis for the collectives in ``closed`` (None: unnamed);
    by default, that of the ``vmap_eval`` whose batch rule is calling this one."""
    if axis_name is INHERIT:
        axis_name = _naming.names[-1] if _naming.names else None
    _naming.names.append(axis_name)
    try:
        return _vmap_eval(closed, args, dims, size, axis_name)
    finally:
        _naming.names.pop()


def _vmap_eval(closed, args, dims, size, axis_name):
    jaxpr = closed.jaxpr
    env = dict(zip(jaxpr.constvars, closed.consts))
    denv: dict = {}
    env.update(zip(jaxpr.invars, args))
    for v, d in zip(jaxpr.invars, dims):
        if d is not None:
            denv[v] = d
    for eqn in jaxpr.eqns:
        vals = [read(env, a) for a in eqn.inputs]
        ds = [denv.get(a) if type(a) is not Literal else None for a in eqn.inputs]
        multiple = eqn.prim.multiple_results
        if axis_name is not None and mentions(eqn, axis_name):
            own = eqn.prim in named_batch_rules and eqn.params["axis_name"] == axis_name
            rule = (named_batch_rules if own else batch_rules).get(eqn.prim)
        elif all(d is None for d in ds):
            out = bind(eqn.prim, *vals, **eqn.params)
            env.update(zip(eqn.outputs, out if multiple else [out]))
            continue
        else:
            rule = batch_rules.get(eqn.prim)
        if rule is None:
            raise NotImplementedError(f"batching rule for '{eqn.prim.name}' is not implemented")
        out, d = rule(size, vals, ds, **eqn.params)
        env.update(zip(eqn.outputs, out if multiple else [out]))
        denv.update(zip(eqn.outputs, d if multiple else [d]))
    outs = [read(env, a) for a in jaxpr.outvars]
    return outs, [denv.get(a) if type(a) is not Literal else None for a in jaxpr.outvars]


def move_out(x, d: int | None, target: int | None, size: int):
    """Put an output's batch axis at ``target`` (broadcasting an unbatched output)."""
    if target is None:
        if d is not None:
            raise ValueError(
                "[vmap] an output depends on the mapped inputs, but its out_axes is None; use "
                "an int out_axes for it (None is only for outputs that are the same for every "
                "element of the batch)"
            )
        return x
    if d is None:
        x = to_front(x, None, size)
        d = 0
    return moveaxis(x, d, target)


def vmap_jaxpr(
    closed: ClosedJaxpr,
    in_axes: Sequence[int | None],
    axis_size: int,
    out_axes: Sequence[int | None] | None = None,
    axis_name=INHERIT,
):
    """Batch ``closed`` over ``in_axes`` (None: unbatched input).

    With ``out_axes`` the outputs are moved there (unbatched ones broadcast) and those are
    returned as the out axes; otherwise each output keeps the axis its rules gave it (None for
    an unbatched output). ``axis_name`` as for :func:`vmap_eval`. Returns ``(optimised closed
    jaxpr, out_axes)``.
    """
    if axis_name is INHERIT:
        axis_name = _naming.names[-1] if _naming.names else None
    avals = []
    for a, d in zip(closed.in_avals, in_axes):
        avals.append(a if d is None else a.update(shape=a.shape[:d] + (axis_size,) + a.shape[d:]))

    def fun(*args):
        outs, dims = vmap_eval(closed, args, in_axes, axis_size, axis_name)
        if out_axes is None:
            return outs, dims
        return [move_out(o, d, t, axis_size) for o, d, t in zip(outs, dims, out_axes)], list(
            out_axes
        )

    new, dims = trace_flat(fun, avals, "vmap_jaxpr", "vmap")
    return optimize(new), dims

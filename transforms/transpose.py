"""Transposition of linear jaxprs: the backward pass of reverse mode.

Rule contract: ``transpose_rules[prim](ct, *args, **params) -> list`` with one cotangent per
operand (None where the operand is not linear or gets nothing). Linear operands arrive as
:class:`UndefinedPrimal` (only their aval is known); the others are values (residuals). For a
primitive with several results ``ct`` is a list (with :class:`Zero` for results that got no
cotangent). Exactly the primitives linear in some operand have rules (``jvp.LINEAR``);
cotangents of unused values stay symbolic zeros. Unbroadcasting happens in one place: the
transpose of ``broadcast_in_dim``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autodiff import lax as L
from autodiff import primitives as P
from autodiff.ir import ClosedJaxpr, ShapedArray, Var
from autodiff.tracing import aval_of, bind, read, trace_flat
from autodiff.transforms import optimize
from autodiff.transforms.jvp import Zero, instantiate


class UndefinedPrimal:
    """A linear input of an equation being transposed."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


def is_undefined(x) -> bool:
    return type(x) is UndefinedPrimal


transpose_rules: dict[P.Primitive, Callable] = {}


def _add_t(ct, x, y):
    return [ct if is_undefined(x) else None, ct if is_undefined(y) else None]


def _sub_t(ct, x, y):
    return [ct if is_undefined(x) else None, L.neg(ct) if is_undefined(y) else None]


def _mul_t(ct, x, y):
    if is_undefined(x) and is_undefined(y):
        raise TypeError("mul of two linear values is not linear")
    return [L.mul(ct, y), None] if is_undefined(x) else [None, L.mul(x, ct)]


def _div_t(ct, x, y):
    if is_undefined(y):
        raise TypeError("division by a linear value is not linear")
    return [L.div(ct, y), None]


def _select_t(ct, p, x, y):
    return [
        None,
        L.select(p, ct, 0.0) if is_undefined(x) else None,
        L.select(p, 0.0, ct) if is_undefined(y) else None,
    ]


def _broadcast_in_dim_t(ct, x, shape, broadcast_dimensions):
    xshape = x.aval.shape
    unit = [od for d, od in zip(xshape, broadcast_dimensions) if d == 1 and shape[od] != 1]
    summed = [i for i in range(len(shape)) if i not in broadcast_dimensions] + unit
    return [L.reshape(L.reduce_sum(ct, summed), xshape)]


def _reduce_sum_t(ct, x, axes):
    shape = x.aval.shape
    return [L.broadcast_in_dim(ct, shape, [i for i in range(len(shape)) if i not in axes])]


def _slice_t(ct, x, start_indices, limit_indices, strides):
    shape = x.aval.shape
    if 0 in aval_of(ct).shape:
        return [L.zeros_like_aval(x.aval)]
    config = []
    for d, s, n, st in zip(shape, start_indices, aval_of(ct).shape, strides):
        last = s + (n - 1) * st
        config.append((s, d - last - 1, st - 1))
    return [L.pad(ct, 0.0, config)]


def _pad_t(ct, x, v, padding_config):
    starts = [lo for lo, _, _ in padding_config]
    limits = [
        lo + (d - 1) * (i + 1) + 1 if d else lo
        for d, (lo, _, i) in zip(x.aval.shape, padding_config)
    ]
    strides = [i + 1 for _, _, i in padding_config]
    ct_x = L.slice_(ct, starts, limits, strides)
    ct_v = None
    if is_undefined(v):
        ndim = len(aval_of(ct).shape)
        total = L.reduce_sum(ct, range(ndim))
        ct_v = L.sub(total, L.reduce_sum(ct_x, range(ndim)))
    return [ct_x if is_undefined(x) else None, ct_v]


def _concatenate_t(ct, *xs, dimension):
    out, start = [], 0
    for x in xs:
        n = aval_of(x).shape[dimension]
        out.append(L.slice_in_dim(ct, start, start + n, 1, dimension) if is_undefined(x) else None)
        start += n
    return out


def _take_t(ct, x, idx, axis):
    return [L.scatter_add(L.zeros_like_aval(x.aval), idx, ct, axis), None]


def _take_along_axis_t(ct, x, idx, axis):
    # Scatter into the flattened operand at the positions the indices select.
    shape, ishape = x.aval.shape, aval_of(idx).shape
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    strides.reverse()
    pos = None
    for k in range(len(shape)):
        coord = L.convert(idx, "int32") if k == axis else L.iota("int32", ishape, k)
        term = coord if strides[k] == 1 else L.mul(coord, strides[k])
        pos = term if pos is None else L.add(pos, term)
    n = aval_of(ct).size
    flat = L.scatter_add(
        L.full((s,), 0, x.aval.dtype), L.reshape(pos, (n,)), L.reshape(ct, (n,)), 0
    )
    return [L.reshape(flat, shape), None]


def _scatter_add_t(ct, x, idx, u, axis):
    return [
        ct if is_undefined(x) else None,
        None,
        L.take(ct, idx, axis) if is_undefined(u) else None,
    ]


def _dot_general_t(ct, x, y, dimension_numbers):
    (xc, yc), (xb, yb) = dimension_numbers
    nb = len(xb)
    ct_x = ct_y = None
    if is_undefined(x):
        ct_x = _dot_transpose_operand(ct, y, x.aval, xc, yc, xb, yb, nb, lhs=True)
    if is_undefined(y):
        ct_y = _dot_transpose_operand(ct, x, y.aval, yc, xc, yb, xb, nb, lhs=False)
    return [ct_x, ct_y]


def _dot_transpose_operand(ct, other, aval, c, oc, b, ob, nb, lhs):
    """Cotangent of one dot_general operand (``c``/``b`` its dims, ``oc``/``ob`` the other's):
    ``ct`` contracted with ``other`` over the other's free dims, in whichever operand order
    gives the operand's own layout without a transpose (``ct @ y.T`` and ``x.T @ ct``)."""
    ndim, ondim = len(aval.shape), len(aval_of(other).shape)
    free = [i for i in range(ndim) if i not in c + b]
    ofree = [i for i in range(ondim) if i not in oc + ob]
    # ct's layout is (batch, lhs free, rhs free).
    start = nb + len(free) if lhs else nb
    ct_other = tuple(range(start, start + len(ofree)))
    rest = [c[oc.index(d)] for d in sorted(oc)]  # self's contracted dims, in other's order
    ct_first = list(b) + free + rest
    other_first = list(b) + rest + free
    if other_first == sorted(other_first) and ct_first != sorted(ct_first):
        r = L.dot_general(other, ct, ((tuple(ofree), ct_other), (tuple(ob), tuple(range(nb)))))
        axes_of_r = other_first
    else:
        r = L.dot_general(ct, other, ((ct_other, tuple(ofree)), (tuple(range(nb)), tuple(ob))))
        axes_of_r = ct_first
    return L.transpose(r, sorted(range(ndim), key=lambda i: axes_of_r[i]))


transpose_rules[P.add] = _add_t
transpose_rules[P.sub] = _sub_t
transpose_rules[P.neg] = lambda ct, x: [L.neg(ct)]
transpose_rules[P.mul] = _mul_t
transpose_rules[P.div] = _div_t
transpose_rules[P.select] = _select_t
transpose_rules[P.convert] = lambda ct, x, new_dtype: [L.convert(ct, x.aval.dtype)]
transpose_rules[P.broadcast_in_dim] = _broadcast_in_dim_t
transpose_rules[P.reduce_sum] = _reduce_sum_t
transpose_rules[P.reshape] = lambda ct, x, new_sizes: [L.reshape(ct, x.aval.shape)]
transpose_rules[P.transpose] = lambda ct, x, permutation: [
    L.transpose(ct, [permutation.index(i) for i in range(len(permutation))])
]
transpose_rules[P.squeeze] = lambda ct, x, dimensions: [L.expand_dims(ct, dimensions)]
transpose_rules[P.expand_dims] = lambda ct, x, dimensions: [L.squeeze(ct, dimensions)]
transpose_rules[P.slice_] = _slice_t
transpose_rules[P.pad] = _pad_t
transpose_rules[P.concatenate] = _concatenate_t
transpose_rules[P.take] = _take_t
transpose_rules[P.take_along_axis] = _take_along_axis_t
transpose_rules[P.scatter_add] = _scatter_add_t
transpose_rules[P.cumsum] = lambda ct, x, axis, reverse: [L.cumsum(ct, axis, not reverse)]
transpose_rules[P.dot_general] = _dot_general_t


# ---------------------------------------------------------------------------------------------


def backward_pass(closed: ClosedJaxpr, args: Sequence, cts: Sequence) -> list:
    """Cotangents of the linear inputs (``UndefinedPrimal`` in ``args``) given output ``cts``
    (None or Zero for outputs without a cotangent). Runs in the current trace."""
    jaxpr = closed.jaxpr
    env = dict(zip(jaxpr.constvars, closed.consts))
    linear: set[Var] = set()
    for v, a in zip(jaxpr.invars, args):
        if is_undefined(a):
            linear.add(v)
        else:
            env[v] = a
    lin_eqns = []
    for eqn in jaxpr.eqns:  # forward: the non-linear equations
        if any(type(a) is Var and a in linear for a in eqn.inputs):
            lin_eqns.append(eqn)
            linear.update(eqn.outputs)
        else:
            outs = bind(eqn.prim, *[read(env, a) for a in eqn.inputs], **eqn.params)
            env.update(zip(eqn.outputs, outs if eqn.prim.multiple_results else [outs]))
    ct_env: dict[Var, object] = {}

    def accumulate(v, ct):
        if ct is None or type(ct) is Zero:
            return
        prev = ct_env.get(v)
        ct_env[v] = ct if prev is None else L.add(prev, ct)

    for v, ct in zip(jaxpr.outvars, cts):
        if type(v) is Var and v in linear:
            accumulate(v, ct)
    for eqn in reversed(lin_eqns):
        if eqn.prim.multiple_results:  # the rule gets a list, Zero where nothing flowed back
            ct = [ct_env.pop(v, None) for v in eqn.outputs]
            if all(c is None for c in ct):
                continue
            ct = [Zero(v.aval) if c is None else c for v, c in zip(eqn.outputs, ct)]
        else:
            ct = ct_env.pop(eqn.outputs[0], None)
            if ct is None:
                continue
        ins = [
            UndefinedPrimal(a.aval) if type(a) is Var and a in linear else read(env, a)
            for a in eqn.inputs
        ]
        rule = transpose_rules.get(eqn.prim)
        if rule is None:
            raise NotImplementedError(f"transpose rule for '{eqn.prim.name}' is not implemented")
        for a, x, c in zip(eqn.inputs, ins, rule(ct, *ins, **eqn.params)):
            if is_undefined(x):
                accumulate(a, c)
    return [
        ct_env.get(v, Zero(v.aval)) if is_undefined(a) else None for v, a in zip(jaxpr.invars, args)
    ]


def transpose_jaxpr(closed: ClosedJaxpr, linear: Sequence[bool]) -> ClosedJaxpr:
    """``(non-linear inputs..., output cotangents...) -> cotangents of the linear inputs``.

    Cotangents that are symbolically zero are materialised as zeros.
    """
    in_avals = closed.in_avals
    nonlin = [a for a, lin in zip(in_avals, linear) if not lin]
    n = len(nonlin)

    def fun(*args):
        it = iter(args[:n])
        primals = [UndefinedPrimal(a) if lin else next(it) for a, lin in zip(in_avals, linear)]
        cts_in = backward_pass(closed, primals, args[n:])
        return [instantiate(ct) for ct, lin in zip(cts_in, linear) if lin], None

    new, _ = trace_flat(fun, nonlin + list(closed.out_avals), "transpose_jaxpr", "transpose")
    return optimize(new)

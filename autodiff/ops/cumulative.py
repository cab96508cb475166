"""Cumulative scans besides ``cumsum``: ``cumprod``, ``cummax``, ``cummin``, ``logcumsumexp``.

Each primitive lowers to MLX's scan kernel (``mx.cumprod`` and the rest). Their derivatives
are those of the parallel prefix scan (:func:`associative_scan`) of the binary operation, the
scheme of ``jax.lax.associative_scan`` and of JAX's own JVP rules for these scans, on (value,
tangent) pairs:

- ``cumprod``: the product rule at every combine, so the derivative is exact where elements
  are zero (no division by the input) and costs O(n) work in O(log n) depth.
- ``cummax``/``cummin``: the tangent follows the element holding the running extreme; tied
  elements share it as ``max``/``min`` split a tie, combined along the same tree as JAX, so
  the Jacobian equals ``jax.lax.cummax``'s, ties included.
- ``logcumsumexp``: the tangent is ``sum_j t_j exp(x_j - y_i)`` with every weight computed
  as a ratio at most 1, so nothing overflows; ``-inf`` inputs give zero weights (or 1/2
  each where all are ``-inf``, the limit of equal operands).

The tangent is linear in the input tangent and built from ``autodiff.lax`` ops, so it
transposes, batches and differentiates again (to any order) with the existing rules.
Exclusive scans (``inclusive=False``) are shifted inclusive ones (``autodiff.numpy``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_bool, is_float
from autodiff.extend import (
    Zero,
    bind,
    def_primitive,
    deffront,
    impls,
    jvp_rules,
    lowerings,
)
from autodiff.tracing import aval_of


def _scan_rule(name, float_only=False):
    def rule(x, *, axis, reverse):
        if not 0 <= axis < x.ndim:
            raise ValueError(f"{name}: axis {axis} is out of range for an array of rank {x.ndim}")
        if float_only and not is_float(x.dtype):
            raise TypeError(f"{name} expects a floating-point operand, got {x.str_short()}")
        return [x]

    return rule


cumprod_p = def_primitive("cumprod", "cumulative", _scan_rule("cumprod"))
cummax_p = def_primitive("cummax", "cumulative", _scan_rule("cummax"))
cummin_p = def_primitive("cummin", "cumulative", _scan_rule("cummin"))
logcumsumexp_p = def_primitive(
    "logcumsumexp", "cumulative", _scan_rule("logcumsumexp", float_only=True)
)


def cumprod(x, axis: int, reverse: bool = False):
    """Inclusive cumulative product along ``axis`` (from the end if ``reverse``)."""
    return bind(cumprod_p, x, axis=axis, reverse=reverse)


def cummax(x, axis: int, reverse: bool = False):
    """Inclusive running maximum along ``axis`` (from the end if ``reverse``)."""
    return bind(cummax_p, x, axis=axis, reverse=reverse)


def cummin(x, axis: int, reverse: bool = False):
    """Inclusive running minimum along ``axis`` (from the end if ``reverse``)."""
    return bind(cummin_p, x, axis=axis, reverse=reverse)


def logcumsumexp(x, axis: int, reverse: bool = False):
    """Inclusive running ``log(sum(exp(x)))`` along ``axis`` (from the end if ``reverse``)."""
    return bind(logcumsumexp_p, x, axis=axis, reverse=reverse)


# ---------------------------------------------------------------------------------------------
# The parallel prefix scan the JVP rules are built from


def rev(x, axis: int):
    """``x`` reversed along ``axis`` (a gather with constant indices)."""
    n = aval_of(x).shape[axis]
    return L.take(x, L.sub(n - 1, L.iota("int32", (n,), 0)), axis)


def _interleave(a, b, axis: int):
    """``[a0, b0, a1, b1, ...]`` along ``axis``; ``a`` may be one longer than ``b``."""
    na, nb = aval_of(a).shape[axis], aval_of(b).shape[axis]
    if na > nb:
        b = L.concatenate([b, L.slice_in_dim(a, na - 1, na, axis=axis)], axis)
    pair = L.concatenate([L.expand_dims(a, (axis + 1,)), L.expand_dims(b, (axis + 1,))], axis + 1)
    shape = list(aval_of(a).shape)
    shape[axis] = 2 * na
    return L.slice_in_dim(L.reshape(pair, shape), 0, na + nb, axis=axis)


def associative_scan(fn: Callable, elems: list, axis: int, reverse: bool = False) -> list:
    """Inclusive scan of the associative ``fn(a: list, b: list) -> list`` over ``elems`` along
    ``axis``: the odd/even recursion of ``jax.lax.associative_scan`` (the same tree, so ties
    split as in JAX), O(n) work in O(log n) depth."""
    if reverse:
        elems = [rev(e, axis) for e in elems]

    def scan(elems):
        n = aval_of(elems[0]).shape[axis]
        if n < 2:
            return elems
        reduced = fn(
            [L.slice_in_dim(e, 0, n - 1, 2, axis) for e in elems],
            [L.slice_in_dim(e, 1, n, 2, axis) for e in elems],
        )
        odd = scan(reduced)
        m = aval_of(odd[0]).shape[axis]
        firsts = [L.slice_in_dim(e, 0, 1, axis=axis) for e in elems]
        if n > 2:
            lhs = odd if n % 2 else [L.slice_in_dim(e, 0, m - 1, axis=axis) for e in odd]
            rest = fn(lhs, [L.slice_in_dim(e, 2, n, 2, axis) for e in elems])
            firsts = [L.concatenate([f, r], axis) for f, r in zip(firsts, rest)]
        return [_interleave(e, o, axis) for e, o in zip(firsts, odd)]

    out = scan(list(elems))
    return [rev(o, axis) for o in out] if reverse else out


# ---------------------------------------------------------------------------------------------
# Combines on (value, tangent) pairs


def _mul_combine(a, b):
    (x, dx), (y, dy) = a, b
    return [L.mul(x, y), L.add(L.mul(dx, y), L.mul(x, dy))]


def _share(x, z, y):
    """The share of ``x`` in ``z = max(x, y)`` (or min): 1, 0.5 at a tie, or 0 (as max_)."""
    one = L.full(aval_of(z).shape, 1.0, aval_of(z).dtype)
    half = L.full(aval_of(z).shape, 0.5, aval_of(z).dtype)
    zero = L.full(aval_of(z).shape, 0.0, aval_of(z).dtype)
    return L.select(L.eq(x, z), L.select(L.eq(y, z), half, one), zero)


def _chooser_combine(op):
    def combine(a, b):
        (x, dx), (y, dy) = a, b
        z = op(x, y)
        return [z, L.add(L.mul(dx, _share(x, z, y)), L.mul(dy, _share(y, z, x)))]

    return combine


def _logaddexp_combine(a, b):
    # log(e^x + e^y) = c + log(ex + ey) with c = max(x, y), ex = e^(x-c), ey = e^(y-c) <= 1,
    # and the tangent weights ex/s, ey/s are at most 1: nothing overflows. Where both are
    # -inf, c is replaced by 0 so that nothing is nan: the value is -inf, and the weights are
    # 1/2 each, the limit of equal finite operands (as max_ splits a tie). Every derivative
    # of this (to any order) is finite.
    (x, dx), (y, dy) = a, b
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    c = L.max_(x, y)
    empty = L.eq(c, float("-inf"))
    c = L.select(empty, L.full(shape, 0.0, dtype), c)
    ex, ey = L.exp(L.sub(x, c)), L.exp(L.sub(y, c))
    s = L.add(ex, ey)
    safe_s = L.select(empty, L.full(shape, 1.0, dtype), s)
    half = L.full(shape, 0.5, dtype)
    wx = L.select(empty, half, L.div(ex, safe_s))
    wy = L.select(empty, half, L.div(ey, safe_s))
    # log(safe_s), not log(s): log(0)'s derivative would be nan, and so every later one
    value = L.select(empty, L.full(shape, float("-inf"), dtype), L.add(c, L.log(safe_s)))
    return [value, L.add(L.mul(dx, wx), L.mul(dy, wy))]


def _scan_jvp(prim, combine):
    def rule(primals, tangents, axis, reverse):
        (x,), (t,) = primals, tangents
        out = bind(prim, x, axis=axis, reverse=reverse)
        if type(t) is Zero:
            return out, Zero(aval_of(out))
        return out, associative_scan(combine, [x, t], axis, reverse)[1]

    jvp_rules[prim] = rule


_scan_jvp(cumprod_p, _mul_combine)
_scan_jvp(cummax_p, _chooser_combine(L.max_))
_scan_jvp(cummin_p, _chooser_combine(L.min_))
_scan_jvp(logcumsumexp_p, _logaddexp_combine)

for _p in (cumprod_p, cummax_p, cummin_p, logcumsumexp_p):
    deffront(_p, lambda n, axis, reverse: dict(axis=axis + 1, reverse=reverse))
    lowerings[_p] = (
        lambda name: (
            lambda a, ins, outs, axis, reverse: f"mx.{name}({a[0]}, axis={axis}, reverse={reverse})"
        )
    )(_p.name)


def _np_scan(ufunc):
    def impl(x, axis, reverse):
        dtype = x.dtype
        if reverse:
            x = np.flip(x, axis)
        with np.errstate(all="ignore"):
            out = ufunc.accumulate(x, axis=axis).astype(dtype)
        return np.flip(out, axis) if reverse else out

    return impl


impls[cumprod_p] = _np_scan(np.multiply)
impls[cummax_p] = _np_scan(np.maximum)
impls[cummin_p] = _np_scan(np.minimum)
impls[logcumsumexp_p] = _np_scan(np.logaddexp)


def identity(prim_name: str, dtype: str):
    """The identity of a scan's operation in ``dtype``: what an exclusive scan starts from."""
    if prim_name == "cumsum":
        return False if is_bool(dtype) else 0
    if prim_name == "cumprod":
        return True if is_bool(dtype) else 1
    if prim_name == "logcumsumexp":
        return float("-inf")
    lowest = prim_name == "cummax"
    if is_bool(dtype):
        return not lowest
    if is_float(dtype):
        return float("-inf") if lowest else float("inf")
    info = np.iinfo(dtype)
    return int(info.min if lowest else info.max)

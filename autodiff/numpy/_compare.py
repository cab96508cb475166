"""Comparisons and special values: isclose, allclose, array_equal, isposinf, isneginf,
logical_xor, nan_to_num. They follow MLX's definitions (mlx/ops.cpp) step by step, so traced
results equal eager ones, dtypes included."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_bool, is_float, is_inexact, join
from autodiff.numpy._core import broadcast_shapes, mirror, promote
from autodiff.numpy._elementwise import isnan, logical_and, logical_not, logical_or
from autodiff.numpy._reductions import all as all_
from autodiff.tracing import aval_of

_INF = float("inf")


def _inf_test(mx_fn, value):
    @mirror(mx_fn)
    def f(a, /):
        if not is_float(aval_of(a).dtype):
            return lax.full(aval_of(a).shape, False, "bool")
        return lax.eq(a, value)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = f"Elementwise test for {'+' if value > 0 else '-'}inf, as ``mx.{mx_fn.__name__}``."
    return f


isposinf = _inf_test(mx.isposinf, _INF)
isneginf = _inf_test(mx.isneginf, -_INF)


@mirror(mx.logical_xor)
def logical_xor(a, b, /):
    """Elementwise exclusive or of the truth values, as ``mx.logical_xor``."""
    return lax.ne(*promote(a, b, dtype="bool"))


def _promote_full(a, b):
    """:func:`promote`, with Python scalars broadcast too (they stay literals there)."""
    x, y = promote(a, b)
    shape = broadcast_shapes(aval_of(x).shape, aval_of(y).shape)
    return [v if aval_of(v).shape == shape else lax.broadcast_to(v, shape) for v in (x, y)]


def _own_dtype(v, promoted) -> str:
    """The dtype of an operand before promotion (a Python scalar takes the promoted one)."""
    return aval_of(promoted).dtype if type(v) in (bool, int, float) else aval_of(v).dtype


def _f32(v: float) -> float:
    """``v`` rounded to float32, as MLX's C++ ``array(double)`` stores it."""
    return float(np.float32(v))


@mirror(mx.isclose)
def isclose(a, b, /, rtol: float = 1e-05, atol: float = 1e-08, *, equal_nan: bool = False):
    """Elementwise ``|a - b| <= atol + rtol * |b|``, infinities equal when of the same sign and
    NaNs equal if ``equal_nan``, as ``mx.isclose``; broadcasts. Not differentiable (boolean).

    Example:
        >>> anp.isclose(mx.array([1.0, 2.0]), mx.array([1.0, 2.1]))  # [True, False]
    """
    x, y = _promote_full(a, b)
    shape = aval_of(x).shape
    # MLX subtracts booleans as exclusive or
    lhs = lax.ne(x, y) if is_bool(aval_of(x).dtype) else lax.abs_(lax.sub(x, y))
    rhs_dtype = join("float32", _own_dtype(b, y))  # MLX's rtol and atol are float32 arrays
    (yr,) = promote(y, dtype=rhs_dtype)
    rhs = lax.add(
        lax.mul(yr if is_bool(aval_of(y).dtype) else lax.abs_(yr), _f32(rtol)), _f32(atol)
    )
    out = lax.le(*promote(lhs, rhs))
    no = lax.full(shape, False, "bool")
    # MLX tests a and b themselves for infinities: integers (even if promoted to a float
    # dtype in which they overflow) never are
    a_pos, a_neg = (isposinf(x), isneginf(x)) if is_float(_own_dtype(a, x)) else (no, no)
    b_pos, b_neg = (isposinf(y), isneginf(y)) if is_float(_own_dtype(b, y)) else (no, no)
    any_inf = logical_or(logical_or(a_pos, a_neg), logical_or(b_pos, b_neg))
    both_inf = logical_or(logical_and(a_pos, b_pos), logical_and(a_neg, b_neg))
    out = logical_or(logical_and(out, logical_not(any_inf)), both_inf)
    if equal_nan:
        out = logical_or(out, logical_and(isnan(x), isnan(y)))
    return out


@mirror(mx.allclose)
def allclose(a, b, /, rtol: float = 1e-05, atol: float = 1e-08, *, equal_nan: bool = False):
    """True if every element of ``a`` is close to ``b`` (see :func:`isclose`), as
    ``mx.allclose``; a boolean scalar array."""
    return all_(isclose(a, b, rtol, atol, equal_nan=equal_nan))


@mirror(mx.array_equal)
def array_equal(a, b, equal_nan: bool = False):
    """True if ``a`` and ``b`` have the same shape and equal values (of any dtypes), as
    ``mx.array_equal``; NaNs compare equal if ``equal_nan``. A boolean scalar array."""
    if aval_of(a).shape != aval_of(b).shape:
        return mx.array(False)
    x, y = _promote_full(a, b)
    eq = lax.eq(x, y)
    if equal_nan and is_inexact(aval_of(x).dtype):
        eq = logical_or(eq, logical_and(isnan(x), isnan(y)))
    return all_(eq)


_FLOAT_MAX = {"float16": 65504.0, "bfloat16": float(mx.finfo(mx.bfloat16).max)}


@mirror(mx.nan_to_num)
def nan_to_num(a, nan: float = 0, posinf: float | None = None, neginf: float | None = None):
    """Replace NaN by ``nan`` and +-inf by ``posinf``/``neginf`` (the dtype's largest finite
    values by default), as ``mx.nan_to_num``. The derivative is 1 where ``a`` is finite and 0
    where a value was replaced."""
    dtype = aval_of(a).dtype
    if not is_inexact(dtype):
        return a
    if dtype not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"[nan_to_num] Does not yet support given type: {dtype}.")
    big = _FLOAT_MAX.get(dtype, _f32(float(np.finfo(np.float32).max)))
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    out = lax.select(isnan(a), _f32(nan), a)
    out = lax.select(isposinf(a), _f32(posinf), out)
    return lax.select(isneginf(a), _f32(neginf), out)

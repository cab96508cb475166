"""Elementwise functions: mlx.core's unary and binary math, comparisons and ``where``."""

from __future__ import annotations

import math

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_bool, is_float, is_inexact, is_int
from autodiff.numpy._core import (
    as_float,
    astype,
    broadcast_shapes,
    mirror,
    promote,
    promote_float,
)
from autodiff.tracing import aval_of


def _float_unary(mx_fn, lax_fn):
    @mirror(mx_fn)
    def f(a):
        return lax_fn(as_float(a))

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = (
        f"Elementwise ``{mx_fn.__name__}``, as ``mx.{mx_fn.__name__}``; integers become float32."
    )
    return f


sqrt, rsqrt, exp, expm1, log, log1p, log2, log10 = (
    _float_unary(getattr(mx, n), getattr(lax, n))
    for n in "sqrt rsqrt exp expm1 log log1p log2 log10".split()
)
sin, cos, tan, arcsin, arccos, arctan, sinh, cosh, tanh = (
    _float_unary(getattr(mx, n), getattr(lax, n))
    for n in "sin cos tan arcsin arccos arctan sinh cosh tanh".split()
)
arcsinh, arccosh, arctanh, sigmoid, erf, erfinv, reciprocal = (
    _float_unary(getattr(mx, n), getattr(lax, n))
    for n in "arcsinh arccosh arctanh sigmoid erf erfinv reciprocal".split()
)


def _numeric_unary(mx_fn, lax_fn, bool_identity=False):
    @mirror(mx_fn)
    def f(a):
        return a if bool_identity and is_bool(aval_of(a).dtype) else lax_fn(a)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = f"Elementwise ``{mx_fn.__name__}``, as ``mx.{mx_fn.__name__}``."
    return f


negative = _numeric_unary(mx.negative, lax.neg)
# MLX's abs, sign and square of booleans are the booleans
abs = _numeric_unary(mx.abs, lax.abs_, bool_identity=True)  # noqa: A001 - mirrors mx.abs
sign = _numeric_unary(mx.sign, lax.sign, bool_identity=True)
square = _numeric_unary(mx.square, lax.square, bool_identity=True)
stop_gradient = _numeric_unary(mx.stop_gradient, lax.stop_gradient)
stop_gradient.__doc__ = """Identity whose derivative is zero, as ``mx.stop_gradient``.

Example:
    >>> ad.grad(lambda x: x * anp.stop_gradient(x))(mx.array(3.0))  # 3.0, not 6.0
"""


def _rounding(mx_fn, lax_fn):
    @mirror(mx_fn)
    def f(a):
        return a if not is_inexact(aval_of(a).dtype) else lax_fn(a)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    return f


floor, ceil = _rounding(mx.floor, lax.floor), _rounding(mx.ceil, lax.ceil)


@mirror(mx.round)
def round(a, decimals: int = 0):  # noqa: A001 - mirrors mx.round
    """Round half to even, as ``mx.round``."""
    if not is_inexact(aval_of(a).dtype):
        return a
    if decimals == 0:
        return lax.round_(a)
    scale = 10.0**decimals
    return lax.div(lax.round_(lax.mul(a, scale)), scale)


def _binary(mx_fn, lax_fn, to_float=False, on_bools=None):
    @mirror(mx_fn)
    def f(a, b):
        a, b = promote_float(a, b) if to_float else promote(a, b)
        if on_bools is not None and is_bool(aval_of(a).dtype):
            return on_bools(a, b)
        return lax_fn(a, b)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = f"Elementwise ``{mx_fn.__name__}`` with broadcasting, as ``mx.{mx_fn.__name__}``."
    return f


# What MLX computes for two booleans (its integer kernels on 0 and 1, cast back to bool):
# x - y is x != y, x ** y is x or not y, x % y is x and not y, x // y is x and y.
_bool_or_not = lambda x, y: lax.logical_or(x, lax.logical_not(y))  # noqa: E731
_bool_and_not = lambda x, y: lax.logical_and(x, lax.logical_not(y))  # noqa: E731
add, subtract, multiply = (
    _binary(mx.add, lax.add),
    _binary(mx.subtract, lax.sub, on_bools=lax.ne),
    _binary(mx.multiply, lax.mul),
)
divide = _binary(mx.divide, lax.div, to_float=True)
power, maximum, minimum = (
    _binary(mx.power, lax.pow_, on_bools=_bool_or_not),
    _binary(mx.maximum, lax.max_),
    _binary(mx.minimum, lax.min_),
)
remainder = _binary(mx.remainder, lax.rem, on_bools=_bool_and_not)
arctan2 = _binary(mx.arctan2, lax.arctan2, to_float=True)
equal, not_equal = _binary(mx.equal, lax.eq), _binary(mx.not_equal, lax.ne)
less, less_equal = _binary(mx.less, lax.lt), _binary(mx.less_equal, lax.le)
greater, greater_equal = _binary(mx.greater, lax.gt), _binary(mx.greater_equal, lax.ge)


@mirror(mx.floor_divide)
def floor_divide(a, b):
    """Elementwise floor division, as ``mx.floor_divide``."""
    a, b = promote(a, b)
    if is_bool(aval_of(a).dtype):
        return lax.logical_and(a, b)
    return lax.div(a, b) if is_int(aval_of(a).dtype) else lax.floor(lax.div(a, b))


def _logical(mx_fn, lax_fn):
    @mirror(mx_fn)
    def f(a, b):
        return lax_fn(*promote(a, b, dtype="bool"))

    f.__name__ = f.__qualname__ = mx_fn.__name__
    return f


logical_and, logical_or = (
    _logical(mx.logical_and, lax.logical_and),
    _logical(mx.logical_or, lax.logical_or),
)


@mirror(mx.logical_not)
def logical_not(a):
    """Elementwise logical not, as ``mx.logical_not``."""
    return lax.logical_not(astype(a, "bool"))


@mirror(mx.where)
def where(condition, x, y):
    """Elementwise ``x if condition else y`` with broadcasting, as ``mx.where``.

    Both branches are computed; the derivative flows only through the chosen one.

    Example:
        >>> ad.grad(lambda x: anp.where(x > 0, x, 0.0).sum())(mx.array([-1.0, 2.0]))
    """
    shape = broadcast_shapes(*(aval_of(a).shape for a in (condition, x, y)))
    (cond,) = promote(condition, dtype="bool", shape=shape)
    x, y = promote(x, y, shape=shape)
    if aval_of(x).shape != shape and aval_of(y).shape != shape:  # two scalars
        x = lax.broadcast_to(x, shape)
    return lax.select(cond, x, y)


@mirror(mx.isnan)
def isnan(a):
    """Elementwise NaN test, as ``mx.isnan``."""
    if not is_inexact(aval_of(a).dtype):
        return lax.full(aval_of(a).shape, False, "bool")
    return lax.ne(a, a)


@mirror(mx.isinf)
def isinf(a):
    """Elementwise infinity test, as ``mx.isinf``."""
    if not is_inexact(aval_of(a).dtype):
        return lax.full(aval_of(a).shape, False, "bool")
    return lax.eq(lax.abs_(a), float("inf"))


@mirror(mx.isfinite)
def isfinite(a):
    """Elementwise finiteness test, as ``mx.isfinite``."""
    if not is_inexact(aval_of(a).dtype):
        return lax.full(aval_of(a).shape, True, "bool")
    return lax.lt(lax.abs_(a), float("inf"))


@mirror(mx.clip)
def clip(a, a_min, a_max):
    """Clip values to ``[a_min, a_max]`` (either may be None), as ``mx.clip``."""
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


@mirror(mx.logaddexp)
def logaddexp(a, b):
    """``log(exp(a) + exp(b))`` computed stably, as ``mx.logaddexp``."""
    a, b = promote_float(a, b)
    # The shift m cancels mathematically, so it carries no gradient: derivatives are exact
    # everywhere, also where a == b.
    m = lax.stop_gradient(lax.max_(a, b))
    m = lax.select(lax.lt(lax.abs_(m), float("inf")), m, 0.0)
    return lax.add(m, lax.log(lax.add(lax.exp(lax.sub(a, m)), lax.exp(lax.sub(b, m)))))


def relu(x):
    """``max(x, 0)``, as ``mlx.nn.relu``; its derivative at 0 is 0, as in JAX."""
    return where(greater(x, 0), x, 0)


def softplus(x):
    """``log(1 + exp(x))`` computed stably, as ``mlx.nn.softplus``."""
    return logaddexp(x, 0.0)


# Aliases: the same objects, as in mlx.core.
acos, acosh, asin, asinh, atan, atanh = arccos, arccosh, arcsin, arcsinh, arctan, arctanh
atan2, pow = arctan2, power  # noqa: A001 - mirrors mx.pow


@mirror(mx.trunc)
def trunc(a, /):
    """Round towards zero, as ``mx.trunc`` (integers are unchanged); zero derivative."""
    if not is_float(aval_of(a).dtype):
        return a
    return lax.select(lax.lt(a, 0.0), lax.ceil(a), lax.floor(a))


def _angle(mx_fn, factor):
    @mirror(mx_fn)
    def f(a, /):
        return lax.mul(as_float(a), factor)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    return f


degrees = _angle(mx.degrees, 180.0 / math.pi)
degrees.__doc__ = "Radians to degrees, as ``mx.degrees``; integers become float32."
radians = _angle(mx.radians, math.pi / 180.0)
radians.__doc__ = "Degrees to radians, as ``mx.radians``; integers become float32."


@mirror(mx.positive)
def positive(a, /):
    """Elementwise ``+a``: ``a`` itself, as ``mx.positive``."""
    return a


@mirror(mx.divmod)
def divmod(a, b):  # noqa: A001 - mirrors mx.divmod
    """``[a // b, a % b]`` with broadcasting, as ``mx.divmod``. The quotient is piecewise
    constant; the remainder's derivative is that of ``remainder`` (MLX's is zero).

    Example:
        >>> q, r = anp.divmod(mx.array([7.5]), 2.0)  # [3], [1.5]
    """
    a, b = promote(a, b)
    return [floor_divide(a, b), remainder(a, b)]

"""``anp.random``'s distributions of independent draws: ``uniform``, ``normal``,
``truncated_normal``, ``gumbel``, ``laplace``, ``randint`` and ``bernoulli``, each following
``mlx/random.cpp`` op for op from the standard uniform (or the bernoulli primitive), so with
the same key each gives exactly what MLX gives. See ``autodiff/numpy/random.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff import numpy as anp
from autodiff.dtypes import is_float, is_inexact
from autodiff.numpy._core import astype, broadcast_shapes
from autodiff.numpy._random_base import (
    _SQRT2,
    _dtype,
    _mx,
    _random,
    _shape,
    _standard_uniform,
    _to_array,
    _uniform,
    _uniform_checked,
    _uniform_dtype_check,
    _uniform_pm1,
)
from autodiff.tracing import Tracer, aval_of


@_random(mx.random.uniform)
def uniform(low=0, high=1, shape: Sequence[int] = (), dtype=mx.float32, key=None):
    """Uniform numbers in ``[low, high)``, as ``mx.random.uniform``: ``(high - low) * u + low``
    in ``dtype`` (float32, float16 or bfloat16). Differentiable in ``low`` and ``high``.

    Example:
        >>> anp.random.uniform(-1.0, 1.0, (3,), key=mx.random.key(0))
    """
    dtype = _dtype(dtype, "float32")
    shape = _shape(shape, "uniform")
    if type(low) in (int, float) and type(high) in (int, float) and (low, high) == (0, 1):
        _uniform_dtype_check(dtype)
        return _standard_uniform(shape, dtype, key)  # (1 - 0) * u + 0 is u
    return _uniform(_to_array(low), _to_array(high), shape, dtype, key)


@_random(mx.random.normal)
def normal(shape: Sequence[int] = (), dtype=mx.float32, loc=None, scale=None, key=None):
    """Normal numbers, as ``mx.random.normal``: ``loc + sqrt(2) * scale * erfinv(u)`` with
    ``u`` uniform in ``(-1, 1)``; complex64 draws real and imaginary parts with variance 1/2.
    Differentiable in ``loc`` and ``scale``.

    Example:
        >>> k = mx.random.key(0)
        >>> ad.grad(lambda m: anp.random.normal((2,), loc=m, key=k).sum())(mx.array(0.0))
    """
    dtype = _dtype(dtype, "float32")
    shape = _shape(shape, "normal")
    if dtype == "complex64":
        return _complex_normal(shape, loc, scale, key)
    if not is_float(dtype):
        raise ValueError("[normal] Only floating point and complex64 types are supported.")
    loc = None if loc is None else _to_array(loc, dtype)
    scale = None if scale is None else _to_array(scale, dtype)
    return _normal(shape, dtype, loc, scale, key)


def _normal(shape, dtype: str, loc, scale, key):
    samples = _uniform_pm1(shape, key)
    applied_scale = mx.array(_SQRT2, _mx(dtype))
    if scale is not None:
        applied_scale = anp.multiply(applied_scale, astype(scale, dtype))
    samples = astype(anp.erfinv(samples), dtype)
    samples = anp.multiply(applied_scale, samples)
    if loc is not None:
        samples = anp.add(astype(loc, dtype), samples)
    return samples


def _complex_normal(shape, loc, scale, key):
    samples = anp.erfinv(_uniform_pm1(shape + (2,), key))
    samples = anp.squeeze(anp.view(samples, mx.complex64), -1)
    if scale is not None:
        samples = anp.multiply(_to_array(scale, "complex64"), samples)
    if loc is not None:
        samples = anp.add(_to_array(loc, "complex64"), samples)
    return samples


@_random(mx.random.truncated_normal)
def truncated_normal(lower, upper, shape=None, dtype=mx.float32, key=None):
    """Normal numbers truncated to ``(lower, upper)``, as ``mx.random.truncated_normal`` (the
    inverse CDF of a uniform between the bounds' CDFs, clipped). Differentiable in the bounds.

    Example:
        >>> anp.random.truncated_normal(-1.0, 1.0, (3,), key=mx.random.key(0))
    """
    dtype = _dtype(dtype, "float32")
    if not is_float(dtype):
        raise ValueError("[trunc_normal] trunc_normal only accepts floating point dtypes.")
    lower, upper = _to_array(lower), _to_array(upper)
    if shape is None:
        shape = broadcast_shapes(aval_of(lower).shape, aval_of(upper).shape)
    shape = _shape(shape, "truncated_normal")
    sqrt2 = mx.array(_SQRT2, _mx(dtype))
    lower_t, upper_t = astype(lower, dtype), astype(upper, dtype)
    a = anp.erf(anp.divide(lower_t, sqrt2))
    b = anp.erf(anp.divide(upper_t, sqrt2))
    out = anp.multiply(sqrt2, anp.erfinv(_uniform(a, b, shape, dtype, key)))
    return anp.maximum(anp.minimum(upper_t, out), lower_t)


@_random(mx.random.gumbel)
def gumbel(shape: Sequence[int] = (), dtype=mx.float32, key=None):
    """Standard Gumbel numbers, ``-log(-log(u))``, as ``mx.random.gumbel``."""
    dtype = _dtype(dtype, "float32")
    u = _uniform_checked(_shape(shape, "gumbel"), dtype, key)
    return anp.negative(anp.log(anp.negative(anp.log(u))))


@_random(mx.random.laplace)
def laplace(shape: Sequence[int] = (), dtype=mx.float32, loc=0.0, scale=1.0, key=None):
    """Laplace numbers, as ``mx.random.laplace``: ``loc + scale * sign(u) * log1p(-|u|)`` with
    ``u`` uniform in ``(-1, 1)``. ``loc`` and ``scale`` are Python floats as in MLX, or scalar
    traced values (differentiable; MLX takes only floats).

    Example:
        >>> anp.random.laplace((3,), scale=2.0, key=mx.random.key(0))
    """
    dtype = _dtype(dtype, "float32")
    if not is_float(dtype):
        raise ValueError("[laplace] Only real floating point types are supported.")
    for name, v in (("loc", loc), ("scale", scale)):
        if type(v) is Tracer and aval_of(v).size != 1:
            raise TypeError(f"[laplace] {name} must be a scalar, got {aval_of(v).str_short()}")
    samples = _uniform_pm1(_shape(shape, "laplace"), key)
    minus_one = mx.array(-1.0, _mx(dtype))
    samples = anp.multiply(anp.sign(samples), anp.log1p(anp.multiply(minus_one, anp.abs(samples))))
    samples = astype(samples, dtype)
    if type(scale) is Tracer or np.float32(scale) != 1.0:
        samples = anp.multiply(_float_param(scale, dtype), samples)
    if type(loc) is Tracer or np.float32(loc) != 0.0:
        samples = anp.add(_float_param(loc, dtype), samples)
    return samples


def _float_param(v, dtype: str):
    """A ``float`` parameter of MLX's C++ API, as ``array(v, dtype)`` makes it (through a C++
    float); a scalar traced value, converted to ``dtype`` with its shape dropped."""
    if type(v) is Tracer:
        return astype(lax.reshape(v, ()), dtype)
    return mx.array(float(np.float32(v)), _mx(dtype))


@_random(mx.random.randint)
def randint(low, high, shape: Sequence[int] = (), dtype=mx.int32, key=None):
    """Integers in ``[low, high)``, as ``mx.random.randint``: the floor of a float32 uniform,
    clamped to ``[low, high - 1]``.

    Example:
        >>> anp.random.randint(0, 10, (4,), key=mx.random.key(0))
    """
    dtype = _dtype(dtype, "int32")
    if is_inexact(dtype):
        raise ValueError("[randint] randint only accepts integer dtypes and bool.")
    low, high = _to_array(low), _to_array(high)
    u = _uniform(low, high, _shape(shape, "randint"), "float32", key)
    out = astype(anp.floor(u), dtype)
    one = mx.array(1, _mx(aval_of(high).dtype))
    hi = astype(anp.subtract(high, one), dtype)
    return anp.maximum(anp.minimum(out, hi), astype(low, dtype))


@_random(mx.random.bernoulli)
def bernoulli(p=0.5, shape=None, key=None):
    """Booleans true with probability ``p``, as ``mx.random.bernoulli``. ``p`` broadcasts to
    ``shape`` (default: ``p``'s shape).

    Example:
        >>> anp.random.bernoulli(0.3, (4,), key=mx.random.key(0))
    """
    if type(p) is not float:
        p = _to_array(p)
        if not is_float(aval_of(p).dtype):
            raise ValueError("[bernoulli] bernoulli probability `p` must be a float type.")
    p_shape = () if type(p) is float else aval_of(p).shape
    shape = p_shape if shape is None else _shape(shape, "bernoulli")
    if broadcast_shapes(shape, p_shape) != shape:
        raise ValueError("[bernoulli] shape of `p` is incompatible with argument `shape`.")
    if type(p) is float:  # a filled operand: no array of the full shape in the program
        p = lax.full(shape, float(np.float32(p)), "float32")
    else:
        p = lax.broadcast_to(p, shape)
    return lax.random_bernoulli(key, p, shape)

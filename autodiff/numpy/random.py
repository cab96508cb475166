"""``anp.random``: mlx.core.random's functions, traceable, with MLX's values.

Each function follows ``mlx/random.cpp`` op for op, from the primitives of
``autodiff/ops/random.py`` (the standard uniform, bernoulli, permutation, split), so with the
same key it gives exactly what MLX gives: eagerly (where it *is* MLX's function), traced,
lowered and jitted. Derivatives flow through the formulas: ``uniform`` w.r.t. ``low``/``high``,
``normal`` and ``laplace`` w.r.t. ``loc``/``scale``, ``truncated_normal`` w.r.t. its bounds,
``multivariate_normal`` w.r.t. ``mean``; keys, integers and booleans have none.

Keys: an explicit ``key`` is an array like any other (a batch of keys under ``vmap`` gives one
draw per key, as a loop would). Without one, the key comes from
:func:`autodiff.ops.random.take_key`: split off MLX's global key now (eagerly and in un-jitted
transforms, exactly as MLX would), or, in a function being traced by ``ad.jit``, off the
program's implicit key, which each call reads from and writes back to ``mx.random.state``, so
a jitted training step draws new numbers (new dropout masks) at every call, the ones MLX would
draw. ``seed`` and ``key`` take Python ints (``key`` also a traced integer, ``seed`` one traced
in the jitted function itself).

Differences from MLX: ``categorical`` and ``permutation`` give int32 (MLX uint32), as argmax
and argsort do here; ``laplace`` also takes a scalar traced ``loc``/``scale`` (differentiable);
``multivariate_normal`` with a traced ``cov`` needs an SVD primitive (the linalg family).

Example:
    >>> import autodiff as ad, autodiff.numpy as anp, mlx.core as mx
    >>> k = mx.random.key(0)
    >>> ad.grad(lambda s: anp.random.normal((3,), scale=s, key=k).sum())(mx.array(2.0))
    >>> ad.vmap(lambda k: anp.random.uniform(shape=(2,), key=k))(mx.random.split(k, 4))
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff import numpy as anp
from autodiff.dtypes import DTYPES, dtype_name, is_float, is_inexact, join
from autodiff.errors import TransformError
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis, mirror
from autodiff.ops import random as R
from autodiff.tracing import Tracer, aval_of

__all__ = [
    "bernoulli",
    "categorical",
    "gumbel",
    "key",
    "laplace",
    "multivariate_normal",
    "normal",
    "permutation",
    "randint",
    "seed",
    "split",
    "truncated_normal",
    "uniform",
]

_SCALARS = (bool, int, float, complex)
_SQRT2 = math.sqrt(2.0)
_BELOW_NEG_ONE = float(np.nextafter(np.float32(-1.0), np.float32(0.0)))  # nextafter(-1.0f, 0)


def _has_tracer(values) -> bool:
    for v in values:
        t = type(v)
        if t is Tracer or ((t is list or t is tuple) and _has_tracer(v)):
            return True
    return False


def _random(mx_fn):
    """Decorate a traced implementation taking ``key``: MLX's own function on concrete
    arguments; the implementation where an argument is traced, or where no key is given
    inside a jitted trace (the key then comes from :func:`R.take_key`, as it does for traced
    arguments without a key)."""

    def deco(traced):
        sig = inspect.signature(traced)

        @functools.wraps(traced)
        def f(*args, stream=None, **kwargs):
            bound = sig.bind(*args, **kwargs)
            key = bound.arguments.get("key")
            if _has_tracer(bound.arguments.values()) or (key is None and R.in_jitted_trace()):
                if key is None:
                    bound.arguments["key"] = R.take_key()
                return traced(*bound.args, **bound.kwargs)
            if stream is not None:
                kwargs["stream"] = stream
            return mx_fn(*args, **kwargs)

        f.traced = traced
        stream = inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, default=None)
        f.__signature__ = sig.replace(parameters=[*sig.parameters.values(), stream])
        return f

    return deco


# ---------------------------------------------------------------------------------------------
# Helpers: MLX's conversions of Python values, shapes, dtypes


def _to_array(v, dtype: str | None = None):
    """``to_array`` of MLX's bindings: a Python scalar becomes an mx.array (bool, int32 or
    int64, float32; a float in ``dtype`` if that is a float dtype); arrays pass as they are."""
    if type(v) not in _SCALARS:
        return v
    if dtype is not None and type(v) is float and is_float(dtype):
        return mx.array(np.float32(v) if dtype != "float64" else v, _mx(dtype))
    if dtype is not None and type(v) in (bool, int):
        return mx.array(v, _mx(dtype))
    return mx.array(v)


def _mx(dtype: str):
    return getattr(mx, DTYPES[dtype].mlx)


def _dtype(dtype, default: str) -> str:
    return default if dtype is None else dtype_name(dtype)


def _shape(shape, fn: str) -> tuple[int, ...]:
    shape = tuple(shape)
    if any(type(d) is not int for d in shape):
        raise TypeError(f"[{fn}] shape must be a sequence of Python ints, got {shape}")
    if any(d < 0 for d in shape):
        raise ValueError(f"[{fn}] Negative dimensions not allowed.")
    return shape


def _is_concrete(x) -> bool:
    return type(x) is not Tracer


def _standard_uniform(shape, dtype: str, key):
    """``uniform(shape, dtype)``: ``(1 - 0) * u + 0``, which is ``u`` exactly."""
    return lax.random_uniform(key, shape, dtype)


def _uniform(low, high, shape, dtype: str, key):
    """MLX's ``uniform(low, high, shape, dtype, key)`` on arrays: ``(hi - lo) * u + lo``."""
    if not is_float(dtype):
        raise ValueError(
            "[uniform] Can only generate uniform numbers with real floating point type."
        )
    if dtype not in R.UNIFORM_DTYPES:
        raise ValueError("[uniform] Unsupported type.")
    lo, hi = astype(low, dtype), astype(high, dtype)
    rng = anp.subtract(hi, lo)
    out_shape = broadcast_shapes(shape, aval_of(rng).shape)
    if out_shape != tuple(shape):
        raise ValueError(
            f"[uniform] Cannot generate random values of shape {tuple(shape)} from "
            f"broadcasted shape {out_shape}."
        )
    return anp.add(anp.multiply(rng, _standard_uniform(shape, dtype, key)), lo)


def _uniform_pm1(shape, key):
    """``uniform(nextafter(-1, 0), 1, shape, float32)``, the start of normal and laplace."""
    return _uniform(mx.array(_BELOW_NEG_ONE), mx.array(1.0), shape, "float32", key)


# ---------------------------------------------------------------------------------------------
# Keys


@mirror(mx.random.key)
def key(seed: int):
    """A PRNG key from a seed, as ``mx.random.key``: ``[seed >> 32, seed & 0xFFFFFFFF]`` as
    uint32. A traced integer seed gives the same words (two's complement for negative int32,
    as a uint64 would hold it), so ``vmap`` over seeds works.

    Example:
        >>> anp.random.key(5)  # array([0, 5], dtype=uint32)
    """
    info = DTYPES[aval_of(seed).dtype]
    if info.kind not in "iu":
        raise TypeError(f"[key] the seed must be an integer, got {aval_of(seed).str_short()}")
    lo = lax.convert(seed, "uint32")
    if info.bits == 64:
        hi = lax.convert(lax.right_shift(lax.convert(seed, "uint64"), 32), "uint32")
    elif info.kind == "i":  # the sign extended, as a uint64 holds a negative int
        hi = lax.convert(lax.right_shift(seed, info.bits - 1), "uint32")
    else:
        hi = lax.sub(lo, lo)
    return anp.stack([hi, lo], axis=-1)


def seed(seed: int) -> None:
    """Seed the global PRNG, as ``mx.random.seed``. Inside a function being traced by
    ``ad.jit`` the program's implicit key is set instead (to ``mx.random.key(seed)``), so a
    seeded jitted function draws what MLX draws after the same seed, at every call."""
    if type(seed) is Tracer or R.in_jitted_trace():
        if not R.reseed(key(seed) if type(seed) is Tracer else mx.random.key(seed)):
            raise TransformError(
                "[seed] mx.random.seed of a traced value outside a jitted function: the "
                "global key cannot hold a traced value. Pass keys explicitly "
                "(key=mx.random.key(seed)) instead."
            )
        return
    mx.random.seed(seed)


@mirror(mx.random.split)
def split(key, num: int = 2):
    """``num`` keys split off ``key`` (shape ``(num, 2)``), as ``mx.random.split``.

    Example:
        >>> k1, k2 = anp.random.split(anp.random.key(0))
    """
    if type(num) is not int:
        raise TypeError(f"[split] num must be a Python int, got {num!r}")
    return lax.random_split(key, num)


# ---------------------------------------------------------------------------------------------
# Distributions


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


def _uniform_checked(shape, dtype: str, key):
    _uniform_dtype_check(dtype)
    return _standard_uniform(shape, dtype, key)


def _uniform_dtype_check(dtype: str) -> None:
    if not is_float(dtype):
        raise ValueError(
            "[uniform] Can only generate uniform numbers with real floating point type."
        )
    if dtype not in R.UNIFORM_DTYPES:
        raise ValueError("[uniform] Unsupported type.")


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


@_random(mx.random.categorical)
def categorical(logits, axis: int = -1, shape=None, num_samples=None, key=None):
    """Samples from the categorical distributions of the unnormalised ``logits`` along
    ``axis``, as ``mx.random.categorical``: the argmax of ``logits`` plus Gumbel noise, or, for
    one distribution and a ``shape`` (or ``num_samples``), the inverse of its CDF. int32 (MLX
    gives uint32).

    Example:
        >>> anp.random.categorical(mx.log(mx.array([0.2, 0.8])), num_samples=4, key=k)
    """
    if shape is not None and num_samples is not None:
        raise ValueError("[categorical] At most one of shape or num_samples can be specified.")
    lshape = aval_of(logits).shape
    ax = _categorical_axis(axis, len(lshape))
    reduced = lshape[:ax] + lshape[ax + 1 :]
    if shape is not None:
        shape = _shape(shape, "categorical")
        if broadcast_shapes(shape, reduced) != shape:
            raise ValueError(
                f"[categorical] Requested shape {shape} is not broadcast compatible with "
                f"reduced logits shape{reduced}."
            )
    elif num_samples is not None:
        logits = anp.expand_dims(logits, -1)
        s = list(aval_of(logits).shape)
        del s[ax]
        s[-1] = num_samples
        shape = tuple(s)
    else:
        shape = reduced
    return _categorical(logits, ax, shape, key)


def _categorical_axis(axis: int, ndim: int) -> int:
    ax = axis + ndim if axis < 0 else axis
    if not 0 <= ax < ndim:
        raise ValueError(f"[categorical] Invalid axis {axis} for logits with {ndim} dimensions.")
    return ax


def _categorical(logits, axis: int, shape: tuple, key):
    lshape = aval_of(logits).shape
    n = lshape[axis]
    if n > 0 and aval_of(logits).size == n and shape:
        return _categorical_inverse_cdf(anp.reshape(logits, (n,)), shape, key)
    offset = axis + len(shape) - len(lshape) + 1
    gumbel_shape = shape[:offset] + (n,) + shape[offset:]
    g = anp.negative(
        anp.log(anp.negative(anp.log(_standard_uniform(gumbel_shape, "float32", key))))
    )
    return anp.argmax(anp.add(g, logits), axis=offset)


def _categorical_inverse_cdf(logits, shape: tuple, key):
    """O(n + samples) memory, where the Gumbel-max trick needs O(n * samples)."""
    dtype = join(aval_of(logits).dtype, "float32")
    x = astype(logits, dtype)
    m = anp.max(x)
    # exp(x - m) is NaN when m is infinite, where the distribution is uniform over the maxima
    w = anp.where(anp.isinf(m), astype(anp.equal(x, m), dtype), anp.exp(anp.subtract(x, m)))
    cdf = anp.cumsum(w, 0, inclusive=False)
    u = anp.multiply(_standard_uniform(shape, "float32", key), anp.sum(w))
    return anp.subtract(anp.searchsorted(cdf, u, "right"), 1)


@_random(mx.random.multivariate_normal)
def multivariate_normal(mean, cov, shape: Sequence[int] = (), dtype=mx.float32, key=None):
    """Jointly normal samples with ``mean`` (``(..., n)``) and covariance ``cov``
    (``(..., n, n)``, positive semi-definite), as ``mx.random.multivariate_normal``: a standard
    normal times ``U sqrt(S) Vt`` from the SVD of ``cov``, plus ``mean``. Differentiable in
    ``mean``; a traced ``cov`` needs the SVD primitive (the linalg family).

    Example:
        >>> anp.random.multivariate_normal(mx.zeros(2), mx.eye(2), (3,), key=mx.random.key(0))
    """
    dtype = _dtype(dtype, "float32")
    if dtype != "float32":
        raise ValueError("[multivariate_normal] dtype must be float32.")
    ms, cs = aval_of(mean).shape, aval_of(cov).shape
    if len(ms) < 1:
        raise ValueError("[multivariate_normal] mean must have at least one dimension.")
    if len(cs) < 2:
        raise ValueError("[multivariate_normal] cov must have at least two dimensions.")
    n = ms[-1]
    if cs[-1] != cs[-2]:
        raise ValueError("[multivariate_normal] last two dimensions of cov must be equal.")
    if n != cs[-1]:
        raise ValueError("[multivariate_normal] mean and cov must have compatible shapes.")
    out_shape = broadcast_shapes(broadcast_shapes(cs[:-2], ms[:-1]), _shape(shape, "mvn"))
    std = _cov_sqrt(astype(cov, "float32"))
    z = _normal(out_shape + (n,), dtype, mx.array(0.0), mx.array(1.0), key)
    scaled = anp.squeeze(anp.matmul(anp.expand_dims(z, -2), std), -2)
    return anp.add(mean, scaled)


def _cov_sqrt(cov):
    """``U sqrt(S) Vt`` of ``cov``'s SVD, as MLX computes it."""
    if _is_concrete(cov):
        u, s, vt = mx.linalg.svd(cov, True, stream=mx.cpu)
        return mx.matmul(mx.multiply(u, mx.expand_dims(mx.sqrt(s), -2)), vt)
    svd = getattr(getattr(anp, "linalg", None), "svd", None)
    if svd is None:
        raise TransformError(
            "[multivariate_normal] a traced covariance needs an SVD, and autodiff.numpy "
            "has no linalg.svd yet (the linalg family). Pass cov as a concrete array (it is "
            "then factored eagerly, and mean may be traced), or draw a standard normal and "
            "multiply it by a square root of cov computed with traceable ops."
        )
    u, s, vt = svd(cov, compute_uv=True)
    return anp.matmul(anp.multiply(u, anp.expand_dims(anp.sqrt(s), -2)), vt)


@_random(mx.random.permutation)
def permutation(x, axis: int = 0, key=None):
    """A random permutation of ``range(x)`` (an int), or of ``x``'s entries along ``axis``, as
    ``mx.random.permutation``: an argsort of random bits. int32 for an int ``x`` (MLX gives
    uint32); the derivative of a permuted array is permuted with it.

    Example:
        >>> anp.random.permutation(mx.arange(5.0), key=mx.random.key(0))
    """
    if type(x) is int:
        if x < 0:
            raise ValueError("[bits] Negative dimensions not allowed.")
        return lax.random_permutation(key, x)
    shape = aval_of(x).shape
    ax = canonical_axis(axis, len(shape), "permutation")
    return anp.take(x, lax.random_permutation(key, shape[ax]), axis=ax)

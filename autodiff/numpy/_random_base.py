"""What every ``anp.random`` function is built on: the ``_random`` decorator, which picks
MLX's own function or the traced implementation, MLX's conversions of Python values, shapes
and dtypes, and the uniform draws every distribution starts from (``mlx/random.cpp``'s
``uniform``, op for op). See ``autodiff/numpy/random.py``.
"""

from __future__ import annotations

import functools
import inspect
import math

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff import numpy as anp
from autodiff.dtypes import DTYPES, dtype_name, is_float
from autodiff.numpy._core import astype, broadcast_shapes
from autodiff.ops import random as R
from autodiff.tracer import has_tracer
from autodiff.tracing import Tracer, aval_of

_SCALARS = (bool, int, float, complex)
_SQRT2 = math.sqrt(2.0)
_BELOW_NEG_ONE = float(np.nextafter(np.float32(-1.0), np.float32(0.0)))  # nextafter(-1.0f, 0)


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
            if has_tracer(bound.arguments.values()) or (key is None and R.in_jitted_trace()):
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

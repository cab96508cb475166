"""dtype queries, as mlx.core's: ``result_type`` and ``can_cast`` take traced values too (by
their dtype); the others take dtypes only, so they are mlx.core's own objects."""

from __future__ import annotations

import mlx.core as mx

from autodiff.tracing import Tracer

# mlx.core's functions, bound now: while a trace is active, mx.result_type is routed here.
_mx_result_type, _mx_can_cast = mx.result_type, mx.can_cast


def _dtype_of(x):
    return x.dtype if type(x) is Tracer else x


def result_type(*arrays_and_dtypes):
    """The dtype promotion gives for arrays (concrete or traced) and dtypes, as
    ``mx.result_type``.

    Example:
        >>> anp.result_type(mx.array([1], mx.int8), mx.float16)  # mlx.core.float16
    """
    return _mx_result_type(*(_dtype_of(x) for x in arrays_and_dtypes))


def can_cast(from_, to):
    """Whether ``from_`` (an array, concrete or traced, or a dtype) promotes with ``to`` to
    ``to``, as ``mx.can_cast``."""
    return _mx_can_cast(_dtype_of(from_), to)


isdtype, issubdtype, finfo, iinfo = mx.isdtype, mx.issubdtype, mx.finfo, mx.iinfo

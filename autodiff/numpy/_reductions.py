"""Reductions: sum, mean, var, max, argmax, logsumexp, softmax, ... (scans: _cumulative.py)"""

from __future__ import annotations

import builtins

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_bool, is_complex
from autodiff.numpy._core import as_float, astype, canonical_axes, canonical_axis, mirror
from autodiff.tracing import aval_of


def _keep(x, axes, keepdims):
    return lax.expand_dims(x, axes) if keepdims else x


def _reduction(mx_fn, lax_fn, bool_to_int=False):
    @mirror(mx_fn)
    def f(a, /, axis=None, keepdims: bool = False):
        if bool_to_int and is_bool(aval_of(a).dtype):
            a = astype(a, "int32")
        axes = canonical_axes(axis, len(aval_of(a).shape), mx_fn.__name__)
        return _keep(lax_fn(a, axes), axes, keepdims)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = (
        f"``{mx_fn.__name__}`` over ``axis`` (all axes by default), as ``mx.{mx_fn.__name__}``."
    )
    return f


sum = _reduction(mx.sum, lax.reduce_sum, bool_to_int=True)  # noqa: A001
prod = _reduction(mx.prod, lax.reduce_prod, bool_to_int=True)
max = _reduction(mx.max, lax.reduce_max)  # noqa: A001
min = _reduction(mx.min, lax.reduce_min)  # noqa: A001


@mirror(mx.all)
def all(a, /, axis=None, keepdims: bool = False):  # noqa: A001
    """True where every element along ``axis`` is nonzero, as ``mx.all``."""
    axes = canonical_axes(axis, len(aval_of(a).shape), "all")
    return _keep(lax.reduce_min(astype(a, "bool"), axes), axes, keepdims)


@mirror(mx.any)
def any(a, /, axis=None, keepdims: bool = False):  # noqa: A001
    """True where some element along ``axis`` is nonzero, as ``mx.any``."""
    axes = canonical_axes(axis, len(aval_of(a).shape), "any")
    return _keep(lax.reduce_max(astype(a, "bool"), axes), axes, keepdims)


def _count(a, axes) -> int:
    n = 1
    for i in axes:
        n *= aval_of(a).shape[i]
    return n


def _expand(x, shape, axes):
    """Broadcast a reduction result back over the reduced ``axes``."""
    return lax.broadcast_in_dim(x, shape, [i for i in range(len(shape)) if i not in axes])


def _inverse_count(a, axes) -> float:
    n = _count(a, axes)
    return 1.0 / n if n else float("inf")  # MLX's 1/0: an empty mean is nan


def _mean(a, axes):
    # times 1/n, as MLX computes it: n itself overflows float16 beyond 65504 elements
    return lax.mul(lax.reduce_sum(a, axes), _inverse_count(a, axes))


@mirror(mx.mean)
def mean(a, /, axis=None, keepdims: bool = False):
    """Arithmetic mean over ``axis``, as ``mx.mean``."""
    a = as_float(a)
    axes = canonical_axes(axis, len(aval_of(a).shape), "mean")
    return _keep(_mean(a, axes), axes, keepdims)


@mirror(mx.var)
def var(a, /, axis=None, keepdims: bool = False, ddof: int = 0):
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom, as ``mx.var``."""
    a = as_float(a)
    shape = aval_of(a).shape
    axes = canonical_axes(axis, len(shape), "var")
    centered = lax.sub(a, _expand(_mean(a, axes), shape, axes))
    if is_complex(aval_of(a).dtype):  # |x - mean|^2, real (as MLX and NumPy)
        sq = lax.add(lax.square(lax.real(centered)), lax.square(lax.imag(centered)))
    else:
        sq = lax.square(centered)
    ss = lax.reduce_sum(sq, axes)
    if ddof == 0:  # as MLX: times 1/n, else divided by max(n - ddof, 0)
        return _keep(lax.mul(ss, _inverse_count(a, axes)), axes, keepdims)
    return _keep(lax.div(ss, float(builtins.max(_count(a, axes) - ddof, 0))), axes, keepdims)


@mirror(mx.std)
def std(a, /, axis=None, keepdims: bool = False, ddof: int = 0):
    """Standard deviation over ``axis``, as ``mx.std``."""
    return lax.sqrt(var(a, axis, keepdims=keepdims, ddof=ddof))


def _arg_reduction(mx_fn, lax_fn):
    @mirror(mx_fn)
    def f(a, /, axis=None, keepdims: bool = False):
        shape = aval_of(a).shape
        if axis is None:
            out = lax_fn(lax.reshape(a, (aval_of(a).size,)), 0)
            return lax.reshape(out, (1,) * len(shape)) if keepdims else out
        ax = canonical_axis(axis, len(shape), mx_fn.__name__)
        return _keep(lax_fn(a, ax), (ax,), keepdims)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = f"Index of the {mx_fn.__name__[3:]} along ``axis`` as int32 (MLX returns uint32)."
    return f


argmax, argmin = _arg_reduction(mx.argmax, lax.argmax), _arg_reduction(mx.argmin, lax.argmin)


def _stable_max(a, axes):
    """max over ``axes`` without gradient, infinities replaced by 0 (the shift cancels out)."""
    m = lax.stop_gradient(lax.reduce_max(a, axes))
    return lax.select(lax.lt(lax.abs_(m), float("inf")), m, 0.0)


@mirror(mx.logsumexp)
def logsumexp(a, /, axis=None, keepdims: bool = False):
    """``log(sum(exp(a)))`` over ``axis``, computed stably, as ``mx.logsumexp``."""
    a = as_float(a)
    shape = aval_of(a).shape
    axes = canonical_axes(axis, len(shape), "logsumexp")
    m = _stable_max(a, axes)
    s = lax.reduce_sum(lax.exp(lax.sub(a, _expand(m, shape, axes))), axes)
    return _keep(lax.add(lax.log(s), m), axes, keepdims)


@mirror(mx.softmax)
def softmax(a, /, axis=None, *, precise: bool = False):
    """``exp(a) / sum(exp(a))`` over ``axis`` (all axes by default), as ``mx.softmax``."""
    a = as_float(a)
    shape = aval_of(a).shape
    axes = canonical_axes(axis, len(shape), "softmax")
    e = lax.exp(lax.sub(a, _expand(_stable_max(a, axes), shape, axes)))
    return lax.div(e, _expand(lax.reduce_sum(e, axes), shape, axes))


@mirror(mx.count_nonzero)
def count_nonzero(a, /, *, axis=None, keepdims: bool = False):
    """The number of nonzero elements over ``axis`` (all axes by default) as int32, as
    ``mx.count_nonzero``."""
    axes = canonical_axes(axis, len(aval_of(a).shape), "count_nonzero")
    nonzero = astype(lax.ne(a, 0) if not is_bool(aval_of(a).dtype) else a, "int32")
    return _keep(lax.reduce_sum(nonzero, axes), axes, keepdims)


@mirror(mx.minmax)
def minmax(a, /, axis=None, keepdims: bool = False):
    """``(min, max)`` over ``axis`` (all axes by default), as ``mx.minmax``; each has the
    derivative of :func:`min`/:func:`max` (ties share it equally)."""
    return min.traced(a, axis, keepdims), max.traced(a, axis, keepdims)

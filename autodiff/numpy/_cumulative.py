"""Cumulative scans: cumsum (alias cumulative_sum), cumprod (alias cumulative_prod), cummax,
cummin, logcumsumexp, with mlx.core's ``axis``, ``reverse``, ``inclusive`` (and ``dtype``)."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import dtype_name, is_bool
from autodiff.numpy._core import as_float, astype, canonical_axis, mirror
from autodiff.ops.cumulative import identity
from autodiff.tracing import aval_of


def _scan(name, lax_fn, a, axis, reverse, inclusive):
    """``lax_fn`` along ``axis`` (the flattened array if None); an exclusive scan is the
    inclusive one shifted by one place, starting from the operation's identity (as MLX)."""
    if axis is None:
        a, axis = lax.reshape(a, (aval_of(a).size,)), 0
    shape = aval_of(a).shape
    ax = canonical_axis(axis, len(shape), name)
    out = lax_fn(a, ax, reverse)
    n = shape[ax]
    if inclusive or n == 0:
        return out
    config = [(0, 0, 0)] * len(shape)
    config[ax] = (0, 1, 0) if reverse else (1, 0, 0)
    kept = (
        lax.slice_in_dim(out, 1, n, axis=ax)
        if reverse
        else lax.slice_in_dim(out, 0, n - 1, axis=ax)
    )
    return lax.pad(kept, identity(name, aval_of(out).dtype), config)


def _cast(a, dtype):
    return a if dtype is None else astype(a, dtype_name(dtype))


@mirror(mx.cumsum)
def cumsum(
    a, /, axis: int | None = None, *, reverse: bool = False, inclusive: bool = True, dtype=None
):
    """Cumulative sum along ``axis`` (the flattened array if None), as ``mx.cumsum``; booleans
    sum as int32, ``dtype`` casts the input first.

    Example:
        >>> anp.cumsum(mx.array([1.0, 2.0, 3.0]), inclusive=False)  # [0, 1, 3]
    """
    a = _cast(a, dtype)
    if is_bool(aval_of(a).dtype):
        a = astype(a, "int32")
    return _scan("cumsum", lax.cumsum, a, axis, reverse, inclusive)


@mirror(mx.cumprod)
def cumprod(
    a, /, axis: int | None = None, *, reverse: bool = False, inclusive: bool = True, dtype=None
):
    """Cumulative product along ``axis`` (the flattened array if None), as ``mx.cumprod``;
    ``dtype`` casts the input first. Differentiable to any order, exactly at zeros (the
    derivative is a product-rule scan, with no division by the input).

    Example:
        >>> ad.grad(lambda x: anp.cumprod(x)[-1])(mx.array([2.0, 0.0, 3.0]))  # [0, 6, 0]
    """
    return _scan("cumprod", lax.cumprod, _cast(a, dtype), axis, reverse, inclusive)


@mirror(mx.cummax)
def cummax(a, /, axis: int | None = None, *, reverse: bool = False, inclusive: bool = True):
    """Running maximum along ``axis`` (the flattened array if None), as ``mx.cummax``. The
    derivative follows the element holding the maximum; tied elements share it as in
    ``jax.lax.cummax``.

    Example:
        >>> ad.grad(lambda x: anp.cummax(x).sum())(mx.array([1.0, 3.0, 2.0]))  # [1, 2, 0]
    """
    return _scan("cummax", lax.cummax, a, axis, reverse, inclusive)


@mirror(mx.cummin)
def cummin(a, /, axis: int | None = None, *, reverse: bool = False, inclusive: bool = True):
    """Running minimum along ``axis`` (the flattened array if None), as ``mx.cummin``; the
    derivative follows the element holding the minimum (ties as ``jax.lax.cummin``)."""
    return _scan("cummin", lax.cummin, a, axis, reverse, inclusive)


@mirror(mx.logcumsumexp)
def logcumsumexp(a, /, axis: int | None = None, *, reverse: bool = False, inclusive: bool = True):
    """Running ``log(sum(exp(a)))`` along ``axis`` (the flattened array if None), as
    ``mx.logcumsumexp``; integers become float32. Stable for large inputs, and so is its
    derivative (weights ``exp(a_j - out_i)`` never overflow).

    Example:
        >>> anp.logcumsumexp(mx.array([1000.0, 1000.0]))  # [1000, 1000.693]
    """
    return _scan("logcumsumexp", lax.logcumsumexp, as_float(a), axis, reverse, inclusive)


cumulative_sum = cumsum
cumulative_prod = cumprod

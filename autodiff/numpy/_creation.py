"""Array creation. Shapes are static, so these return concrete mx.arrays unless a fill value
or a ``*_like`` argument is traced."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.numpy._core import dtype_name, mirror, result_type
from autodiff.tracing import as_tracer, aval_of


def _shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(shape)


@mirror(mx.full)
def full(shape, vals, dtype=None):
    """An array of ``shape`` filled with ``vals`` (broadcast), as ``mx.full``."""
    from autodiff.numpy._shape import broadcast_to

    dtype = dtype_name(dtype) if dtype is not None else result_type(vals)
    return as_tracer(broadcast_to(lax.convert(vals, dtype), _shape(shape)))


def _like_dtype(a, dtype) -> str:
    return aval_of(a).dtype if dtype is None else dtype_name(dtype)


@mirror(mx.zeros_like)
def zeros_like(a, /, dtype=None):
    """Zeros with ``a``'s shape and dtype (or ``dtype``), as ``mx.zeros_like``."""
    return as_tracer(lax.full(aval_of(a).shape, 0, _like_dtype(a, dtype)))


@mirror(mx.ones_like)
def ones_like(a, /, dtype=None):
    """Ones with ``a``'s shape and dtype (or ``dtype``), as ``mx.ones_like``."""
    return as_tracer(lax.full(aval_of(a).shape, 1, _like_dtype(a, dtype)))


# MLX's uninitialised arrays are zeros (mx.empty is mx.zeros); so are ours.
empty_like = zeros_like


@mirror(mx.full_like)
def full_like(a, vals, dtype=None):
    """``vals`` (broadcast) with ``a``'s shape, in ``a``'s dtype unless ``dtype`` is given, as
    ``mx.full_like``."""
    return full(aval_of(a).shape, vals, a.dtype if dtype is None else dtype)


@mirror(mx.array)
def array(val, dtype=None):
    """An array from (nested lists of) arrays and scalars, as ``mx.array``; lists holding
    traced values are stacked, so ``anp.array([x[1], x[0]])`` works inside transforms (as
    ``jnp.array`` does in JAX)."""
    from autodiff.numpy._shape import stack

    def build(v):
        if isinstance(v, (list, tuple)):
            if not v:
                raise ValueError("anp.array: an empty list has no element type to stack")
            return stack([build(e) for e in v])
        return v

    out = build(val)
    if dtype is not None:
        out = lax.convert(out, dtype_name(dtype))
    return as_tracer(out)


@mirror(mx.asarray)
def asarray(a, dtype=None, *, copy=None):
    """``a`` as an array, as ``mx.asarray`` (traced values are arrays already: ``copy`` makes
    no difference to a value that is never written in place but through its own object)."""
    return array(a, dtype)


# Shapes are static: these never see a traced value, so they are mlx.core's own functions.
zeros, ones, arange, eye, identity, linspace, tri = (
    mx.zeros,
    mx.ones,
    mx.arange,
    mx.eye,
    mx.identity,
    mx.linspace,
    mx.tri,
)
empty = zeros
bartlett, blackman, hamming, hanning = mx.bartlett, mx.blackman, mx.hamming, mx.hanning

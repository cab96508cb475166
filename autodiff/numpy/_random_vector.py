"""``anp.random``'s draws over a whole axis: ``categorical`` (one sample per distribution of
logits along an axis), ``multivariate_normal`` (jointly normal vectors along the last axis) and
``permutation``, each following ``mlx/random.cpp`` op for op. See ``autodiff/numpy/random.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from autodiff import lax
from autodiff import numpy as anp
from autodiff.dtypes import join
from autodiff.errors import TransformError
from autodiff.numpy._core import astype, broadcast_shapes, canonical_axis
from autodiff.numpy._random_base import (
    _dtype,
    _is_concrete,
    _random,
    _shape,
    _standard_uniform,
)
from autodiff.numpy._random_dists import _normal
from autodiff.tracing import aval_of


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

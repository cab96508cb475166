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

This module holds the keys (``key``, ``seed``, ``split``) and re-exports the distributions:
``autodiff/numpy/_random_dists.py`` (independent draws), ``_random_vector.py`` (draws over an
axis), both built on ``_random_base.py``.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff import numpy as anp
from autodiff.dtypes import DTYPES
from autodiff.errors import TransformError
from autodiff.numpy._core import mirror
from autodiff.numpy._random_dists import (
    bernoulli,
    gumbel,
    laplace,
    normal,
    randint,
    truncated_normal,
    uniform,
)
from autodiff.numpy._random_vector import categorical, multivariate_normal, permutation
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

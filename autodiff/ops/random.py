"""Random numbers: the primitives MLX's random functions are built from, and the implicit
PRNG key.

MLX builds every random function from one C++ primitive (``RandomBits``: threefry bits from a
key) that Python does not expose, so the primitives here are the smallest public functions of
``mx.random`` whose results the others are exact compositions of:

- ``random_split(key; num)``: ``mx.random.split``, ``num`` new keys;
- ``random_uniform(key; shape, dtype)``: the standard uniform ``mx.random.uniform(shape=...,
  dtype=..., key=...)`` (bits / 2**32, capped below 1, in ``dtype``);
- ``random_bernoulli(key, p; shape)``: ``mx.random.bernoulli`` (bits compared with ``p``
  scaled to 2**32, so its exact values cannot be had from the uniform);
- ``random_permutation(key; n)``: ``mx.random.permutation(n)`` (an argsort of bits), int32.

``autodiff/numpy/random.py`` writes every ``mx.random`` function from these, following
``mlx/random.cpp`` op for op, so the values are MLX's. Keys may carry leading batch axes
(``(..., 2)``: one draw per key, as MLX's ``RandomBits`` takes them under ``mx.vmap``), which is
how ``vmap`` over keys batches: the lowering calls ``mx.vmap`` of the MLX function. An unbatched
key met with batched operands (``bernoulli`` of a batch of ``p``) is broadcast, which draws the
same bits for every example, as a loop would. No primitive here has a derivative: the outputs
are integers, booleans, or floats that depend on the key alone.

The float64 interpreter calls MLX for the draws (there is no float64 semantics of a PRNG to
check); what the composites compute from them it computes in float64 as usual.

The implicit key (what a random function called without ``key`` draws from, eagerly, in
un-jitted transforms and under ``jit``) is in ``autodiff/ops/random_key.py``, re-exported here;
:func:`take_key` is the one place that decides, and ``autodiff/numpy/random.py`` calls it.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from autodiff.dtypes import DTYPES, is_float
from autodiff.extend import (
    NO_JVP_RULE,
    batch_rules,
    bind,
    def_primitive,
    defzero,
    impls,
    lowerings,
    to_front,
)
from autodiff.interpret import round_inputs
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import MX_DTYPES, helpers

KEY = ShapedArray((2,), "uint32")
UNIFORM_DTYPES = ("float32", "float16", "bfloat16")  # what MLX's uniform draws


def _key_batch(key: ShapedArray) -> tuple[int, ...]:
    """The batch axes of ``key`` (uint32 ``(..., 2)``)."""
    if key.dtype != "uint32" or not key.shape or key.shape[-1] != 2:
        raise TypeError(
            f"a PRNG key is a uint32 array of shape (2,) (or a batch of them, (..., 2)), got "
            f"{key.str_short()}; make one with mx.random.key(seed) or mx.random.split(key)"
        )
    return key.shape[:-1]


def _check_shape(shape, prim: str) -> tuple[int, ...]:
    shape = tuple(shape)
    if any(type(d) is not int or d < 0 for d in shape):
        raise ValueError(f"{prim}: negative or non-integer dimensions in shape {shape}")
    return shape


def _split_rule(key, *, num):
    if num < 0:
        raise ValueError(f"random_split: num must be non-negative, got {num}")
    return [ShapedArray(_key_batch(key) + (num, 2), "uint32")]


def _uniform_rule(key, *, shape, dtype):
    if dtype not in UNIFORM_DTYPES:
        raise TypeError(
            f"MLX draws uniform numbers in {', '.join(UNIFORM_DTYPES)}, not {dtype}; draw "
            "float32 and convert"
        )
    return [ShapedArray(_key_batch(key) + _check_shape(shape, "uniform"), dtype)]


def _bernoulli_rule(key, p, *, shape):
    out = _key_batch(key) + _check_shape(shape, "bernoulli")
    if not is_float(p.dtype):
        raise TypeError(f"the probability p must be a float array, got {p.str_short()}")
    if p.shape != out:
        raise ValueError(f"p must have the key batch shape + shape {out}, got {p.shape}")
    return [ShapedArray(out, "bool")]


def _permutation_rule(key, *, n):
    if n < 0:
        raise ValueError(f"random_permutation: n must be non-negative, got {n}")
    return [ShapedArray(_key_batch(key) + (n,), "int32")]


random_split_p = def_primitive("random_split", "random", _split_rule)
random_uniform_p = def_primitive("random_uniform", "random", _uniform_rule)
random_bernoulli_p = def_primitive("random_bernoulli", "random", _bernoulli_rule)
random_permutation_p = def_primitive("random_permutation", "random", _permutation_rule)


def random_split(key, num: int = 2):
    """``num`` new keys from ``key`` (uint32, shape (num, 2)), as ``mx.random.split``."""
    return bind(random_split_p, key, num=num)


def random_uniform(key, shape, dtype: str = "float32"):
    """The standard uniform in ``[0, 1)`` of ``shape`` and ``dtype``, as
    ``mx.random.uniform(shape=shape, dtype=dtype, key=key)``."""
    return bind(random_uniform_p, key, shape=tuple(shape), dtype=dtype)


def random_bernoulli(key, p, shape):
    """Booleans true with probability ``p`` (a float array of ``shape``), as
    ``mx.random.bernoulli(p, shape, key=key)``."""
    return bind(random_bernoulli_p, key, p, shape=tuple(shape))


def random_permutation(key, n: int):
    """A random permutation of ``range(n)`` (int32), as ``mx.random.permutation(n, key=key)``
    (which gives uint32)."""
    return bind(random_permutation_p, key, n=n)


NO_JVP_RULE[random_split_p] = "keys are integers: nothing to differentiate"
NO_JVP_RULE[random_permutation_p] = "keys and permutations are integers: nothing to differentiate"
defzero(random_uniform_p)  # a function of the key alone
defzero(random_bernoulli_p)  # boolean output
round_inputs.add(random_bernoulli_p)  # p as the device holds it: the draw compares with it


def _batch(prim):
    """Batch axes first, on the key too: an unbatched key is broadcast (the same draw for each
    example, as a loop would make)."""

    def rule(size, args, dims, **params):
        return bind(prim, *[to_front(a, d, size) for a, d in zip(args, dims)], **params), 0

    batch_rules[prim] = rule


for _p in (random_split_p, random_uniform_p, random_bernoulli_p, random_permutation_p):
    _batch(_p)


# ---------------------------------------------------------------------------------------------
# Lowering: the MLX function, under mx.vmap for keys with batch axes.


def _per_key(fn, key, *others):
    """``fn(key, *others)`` for every key of a batch ``(..., 2)`` (others carry the same batch
    axes), with MLX's ``vmap`` (whose ``RandomBits`` draws per key, as a loop would)."""
    batch = key.shape[:-1]
    if not batch:
        return fn(key, *others)
    n = math.prod(batch)
    if n == 0:
        out = fn(mx.zeros((2,), mx.uint32), *[o.reshape(o.shape[len(batch) :]) for o in others])
        return mx.zeros(batch + out.shape, out.dtype)
    flat = [o.reshape((n,) + o.shape[len(batch) :]) for o in others]
    out = mx.vmap(fn)(key.reshape(n, 2), *flat)
    return out.reshape(batch + out.shape[1:])


def _split_mlx(key, num):
    return _per_key(lambda k: mx.random.split(k, num), key)


def _uniform_mlx(key, shape, dtype):
    return _per_key(lambda k: mx.random.uniform(shape=shape, dtype=dtype, key=k), key)


def _bernoulli_mlx(key, p, shape):
    return _per_key(lambda k, q: mx.random.bernoulli(q, shape, key=k), key, p)


def _permutation_mlx(key, n):
    return _per_key(lambda k: mx.random.permutation(n, key=k), key).astype(mx.int32)


helpers["_random_split"] = _split_mlx
helpers["_random_uniform"] = _uniform_mlx
helpers["_random_bernoulli"] = _bernoulli_mlx
helpers["_random_permutation"] = _permutation_mlx


def _dt(dtype: str) -> str:
    return "mx." + DTYPES[dtype].mlx


def _lower_split(a, ins, outs, num):
    if ins[0].shape == (2,):
        return f"mx.random.split({a[0]}, {num})"
    return f"_random_split({a[0]}, {num})"


lowerings[random_split_p] = _lower_split
lowerings[random_uniform_p] = lambda a, ins, outs, shape, dtype: (
    f"_random_uniform({a[0]}, {shape!r}, {_dt(dtype)})"
)
lowerings[random_bernoulli_p] = lambda a, ins, outs, shape: (
    f"_random_bernoulli({a[0]}, {a[1]}, {shape!r})"
)
lowerings[random_permutation_p] = lambda a, ins, outs, n: f"_random_permutation({a[0]}, {n})"


# ---------------------------------------------------------------------------------------------
# The interpreter: MLX draws, key by key, as float64 (or bool, int32) NumPy arrays.


def _np_per_key(fn, key, *others, out_shape):
    batch = key.shape[:-1]
    out = None
    for i in np.ndindex(*batch):
        k = mx.array(np.asarray(key[i], np.uint32))
        v = np.asarray(fn(k, *[o[i] for o in others]))
        if out is None:
            out = np.empty(batch + out_shape, v.dtype)
        out[i] = v
    if out is None:  # an empty batch
        return np.zeros(batch + out_shape)
    return out


def _uniform_np(key, shape, dtype):
    def draw(k):
        return mx.random.uniform(shape=shape, dtype=MX_DTYPES[dtype], key=k).astype(mx.float32)

    return _np_per_key(draw, key, out_shape=tuple(shape)).astype(np.float64)


def _bernoulli_np(key, p, shape):
    # p arrives rounded to its dtype (round_inputs); float32 holds it exactly, except a
    # float64 p, which MLX would scale in float64
    def draw(k, q):
        return mx.random.bernoulli(mx.array(np.asarray(q, np.float32)), shape, key=k)

    return _np_per_key(draw, key, p, out_shape=tuple(shape)).astype(bool)


impls[random_split_p] = lambda key, num: _np_per_key(
    lambda k: mx.random.split(k, num), key, out_shape=(num, 2)
).astype(np.uint32)
impls[random_uniform_p] = _uniform_np
impls[random_bernoulli_p] = _bernoulli_np
impls[random_permutation_p] = lambda key, n: _np_per_key(
    lambda k: mx.random.permutation(n, key=k), key, out_shape=(n,)
).astype(np.int32)


# The implicit key (needs random_split above): autodiff/ops/random_key.py
from autodiff.ops.random_key import (  # noqa: E402, F401  (re-exported)
    KeyThread,
    current_key,
    get_global_key,
    in_jitted_trace,
    pop_key_thread,
    push_key_thread,
    reseed,
    set_current_key,
    set_global_key,
    take_key,
)

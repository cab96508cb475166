"""Random numbers: the primitives MLX's random functions are built from, and the implicit
PRNG key.

MLX's ``mx.random`` functions take an explicit ``key`` or use a global one (``mx.random.state``,
split on every use). Under autodiff:

- an explicit key is an array like any other, traced when it is an argument;
- without a key, eagerly and in un-jitted transforms (which trace on every call) the global key
  is split as MLX splits it, so the values are MLX's;
- under ``jit`` the global key is an implicit input of the compiled program and the split key
  an implicit output, written back after each call (as ``mx.compile`` does when
  ``mx.random.state`` is among its captured inputs and outputs): every call draws new numbers,
  so dropout in a jitted training step uses a new mask each step, the mask MLX would draw.

:func:`take_key` is the one place that decides; ``autodiff/numpy/random.py`` calls it.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff.extend import (
    NO_JVP_RULE,
    batch_rules,
    bind,
    def_primitive,
    impls,
    lowerings,
    moveaxis,
)
from autodiff.ir import ShapedArray
from autodiff.tracing import Tracer, _state, binding_in

KEY = ShapedArray((2,), "uint32")


def _split_rule(key, *, num):
    if key != KEY:
        raise TypeError(f"a PRNG key is a uint32 array of shape (2,), got {key.str_short()}")
    return [ShapedArray((num, 2), "uint32")]


random_split_p = def_primitive("random_split", "random", _split_rule)


def random_split(key, num: int = 2):
    """``num`` new keys from ``key`` (uint32, shape (num, 2)), as ``mx.random.split``."""
    return bind(random_split_p, key, num=num)


NO_JVP_RULE[random_split_p] = "keys are integers: nothing to differentiate"
lowerings[random_split_p] = lambda a, ins, outs, num: f"mx.random.split({a[0]}, {num})"
impls[random_split_p] = lambda key, num: np.array(
    mx.random.split(mx.array(key.astype(np.uint32)), num)
)


def _split_batch(size, args, dims, num):
    (key,), (d,) = args, dims
    from autodiff import lax as L

    keys = moveaxis(key, d, 0)
    parts = [
        L.reshape(
            random_split(L.slice_in_dim(keys, i, i + 1, 1, 0).reshape((2,)), num), (1, num, 2)
        )
        for i in range(size)
    ]
    return L.concatenate(parts, 0), 0


batch_rules[random_split_p] = _split_batch


# ---------------------------------------------------------------------------------------------
# The implicit key


class KeyThread:
    """The global key threaded through a jitted program being traced: ``key`` is the current
    value (a tracer of ``builder``), ``used`` whether anything drew from it."""

    __slots__ = ("builder", "key", "used")

    def __init__(self, builder, key):
        self.builder, self.key, self.used = builder, key, False


def push_key_thread(thread: KeyThread) -> None:
    _key_threads().append(thread)


def pop_key_thread() -> KeyThread:
    return _key_threads().pop()


def _key_threads() -> list:
    threads = getattr(_state, "key_threads", None)
    if threads is None:
        threads = _state.key_threads = []
    return threads


def take_key():
    """A fresh key for a random function called without one: split off the global key, in
    the jitted program being traced if there is one, else now (eagerly)."""
    threads = _key_threads()
    if threads:
        thread = threads[-1]
        with binding_in(thread.builder):
            keys = random_split(thread.key, 2)
            from autodiff import lax as L

            new = L.reshape(L.slice_in_dim(keys, 0, 1, 1, 0), (2,))
            sub = L.reshape(L.slice_in_dim(keys, 1, 2, 1, 0), (2,))
        thread.key, thread.used = new, True
        return sub
    new, sub = mx.random.split(mx.random.state[0])
    mx.random.state[0] = new
    return sub


def current_key():
    """The global key as a jitted program called now takes it: the enclosing jitted trace's
    key if one is being traced, else the concrete ``mx.random.state[0]``."""
    threads = _key_threads()
    if threads:
        threads[-1].used = True
        return threads[-1].key
    if _state.stack:  # an un-jitted transform: a fresh key now (it re-traces every call)
        return take_key()
    return mx.random.state[0]


def set_current_key(key) -> None:
    """Store the key a jitted program returned (see :func:`current_key`)."""
    threads = _key_threads()
    if threads:
        threads[-1].key = key
    elif type(key) is Tracer:
        # inside an un-jitted transform, which re-traces (and re-splits) on every call
        return
    else:
        mx.random.state[0] = key

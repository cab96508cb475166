"""The implicit PRNG key of the random primitives in ``autodiff/ops/random.py``.

MLX's random functions take an explicit ``key`` or use a global one
(``mx.random.state``, split on every use). Under autodiff:

- an explicit key is an array like any other, traced when it is an argument;
- without a key, eagerly and in un-jitted transforms (which trace on every call) the global key
  is split as MLX splits it, so the values are MLX's;
- under ``jit`` the global key is an implicit input of the compiled program and the split key
  an implicit output, written back after each call (as ``mx.compile`` does when
  ``mx.random.state`` is among its captured inputs and outputs): every call draws new numbers,
  so dropout in a jitted training step uses a new mask each step, the mask MLX would draw.

:func:`take_key` is the one place that decides; ``autodiff/numpy/random.py`` calls it.
``autodiff/ops/random.py`` re-exports the names here.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff.errors import TransformError
from autodiff.ops.random import random_split
from autodiff.tracing import Tracer, _state, binding_in


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


def in_jitted_trace() -> bool:
    """Whether a jitted program is being traced on this thread (random functions called
    without a key then draw from the program's implicit key)."""
    return bool(_key_threads())


def get_global_key():
    """MLX's global key, ``mx.random.state[0]``."""
    return mx.random.state[0]


def set_global_key(key) -> None:
    """Set MLX's global key (what ``mx.random.state[0] = key`` did before MLX 0.32, where
    ``mx.random.state`` became a read-only view of this thread's key list).

    The view iterates over that list, and a list iterator's ``__reduce__`` gives its list, so
    the key is replaced lazily; failing that (another Python, a later MLX), ``mx.random.seed``
    of the key's two words sets exactly that key, at the cost of evaluating it.
    """
    state = mx.random.state
    try:
        state[0] = key
        return
    except TypeError:
        pass
    try:
        lst = iter(state).__reduce__()[1][0]
        if type(lst) is list and len(lst) == 1:
            lst[0] = key
            return
    except (TypeError, IndexError, AttributeError):
        pass
    hi, lo = (int(w) for w in np.asarray(key, np.uint32))
    mx.random.seed((hi << 32) | lo)


def _set_thread_key(thread: KeyThread, key) -> None:
    thread.key, thread.used = key, True


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
        _set_thread_key(thread, new)
        return sub
    new, sub = mx.random.split(get_global_key())
    set_global_key(new)
    return sub


def reseed(key) -> bool:
    """``mx.random.seed`` inside a jitted program being traced: from here on the program's
    implicit key is ``key`` (concrete, or traced in that program). Returns False outside such
    a trace."""
    threads = _key_threads()
    if not threads:
        return False
    thread = threads[-1]
    if type(key) is Tracer and key.builder is not thread.builder:
        raise TransformError(
            "mx.random.seed of a traced value inside a transform nested in the jitted "
            "function: seed with a value of the jitted function itself (or a Python int), or "
            "pass explicit keys (mx.random.key / mx.random.split)"
        )
    from autodiff import lax as L

    with binding_in(thread.builder):
        _set_thread_key(thread, L.convert(key, "uint32"))
    return True


def current_key():
    """The global key as a jitted program called now takes it: the enclosing jitted trace's
    key if one is being traced, else the concrete ``mx.random.state[0]``."""
    threads = _key_threads()
    if threads:
        threads[-1].used = True
        return threads[-1].key
    if _state.stack:  # an un-jitted transform: a fresh key now (it re-traces every call)
        return take_key()
    return get_global_key()


def set_current_key(key) -> None:
    """Store the key a jitted program returned (see :func:`current_key`)."""
    threads = _key_threads()
    if threads:
        threads[-1].key = key
    elif type(key) is Tracer:
        # inside an un-jitted transform, which re-traces (and re-splits) on every call
        return
    else:
        set_global_key(key)

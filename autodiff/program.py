"""Programs: transformed, optimised jaxprs, lowered and compiled on demand, and their cache.

A :class:`Program` runs on concrete mx.arrays, or, called with tracers of an enclosing trace,
inlines its jaxpr there; that is how transforms compose. Un-jitted transforms trace on every call
and look the traced jaxpr up by :func:`structural_key`, so a hit reuses the transformed and
compiled program while closures never go stale (their arrays are consts, passed as arguments).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import mlx.core as mx

from autodiff.config import config
from autodiff.ir import ClosedJaxpr, Var, sub_jaxprs, typecheck
from autodiff.lower_control import lower_program
from autodiff.tracing import Tracer, as_tracer, inline
from autodiff.transforms.fuse import default_rules, fuse


class Program:
    """A closed jaxpr plus its lowered and compiled forms.

    The ``mx.compile``d function is made per thread (``per_thread.fn``). MLX caches compiled
    graphs per thread and erases a function's entries only from the cache of the thread that
    called it last; entries left behind hold Python objects, which the exiting OS thread
    frees after its Python state is gone, needing the GIL: at interpreter shutdown that
    aborts the process ("terminate called without an active exception"). A compiled
    function per thread is dropped with that thread's Python state, with the GIL held, and
    erases its entries from that thread's cache then.
    """

    __slots__ = ("closed", "name", "_lowered", "per_thread", "_runs", "eager_compile")

    def __init__(self, closed: ClosedJaxpr, name: str = "program", eager_compile: bool = False):
        self.closed = closed
        self.name = name
        self._lowered = None
        self.per_thread = threading.local()
        self._runs = 0
        self.eager_compile = eager_compile

    @property
    def lowered(self):
        if self._lowered is None:
            closed = self.closed
            if config.fuse:  # MLX's fused kernels in place of the subgraphs they compute
                closed = fuse(closed, fusion_rules())
                if config.typecheck and closed is not self.closed:
                    typecheck(closed)
            self._lowered = lower_program(closed, self.name)
        return self._lowered

    def compiled(self) -> Callable | None:
        """This thread's ``mx.compile``d function, if it has one yet."""
        return self.per_thread.__dict__.get("fn")

    def _callable(self) -> Callable:
        fn = self.per_thread.__dict__.get("fn")
        if fn is not None:
            return fn
        mode = config.compile
        self._runs += 1
        if not self.lowered.compilable:  # a driver of control flow: its segments compile
            fn = self.per_thread.fn = self.lowered.fn
            return fn
        if mode is True or (mode == "auto" and (self.eager_compile or self._runs > 1)):
            fn = self.per_thread.fn = mx.compile(self.lowered.fn)
            return fn
        return self.lowered.fn

    def compiled_or_lowered(self) -> Callable:
        """The function a driver calls in a loop: ``fn(*consts, *args) -> tuple``, compiled
        as ``ad.config.compile`` says (a loop body is compiled at once under "auto")."""
        return self._callable()

    def __call__(self, *args) -> list:
        consts = self.closed.consts
        if _any_tracer(args) or _any_tracer(consts):
            return [as_tracer(o) for o in inline(self.closed, args)]
        return list(self._callable()(*consts, *[_as_mx(a) for a in args]))


def fusion_rules() -> frozenset:
    """The fusion rules ``ad.config.fuse`` selects: its names, or (True) the default set for
    the device programs run on now (``mx.default_device()``)."""
    if config.fuse is True:
        return default_rules(gpu=mx.default_device().type == mx.DeviceType.gpu)
    return frozenset(config.fuse)


def _any_tracer(xs: Sequence[Any]) -> bool:
    for x in xs:
        if type(x) is Tracer:
            return True
    return False


def _as_mx(x):
    return x if isinstance(x, mx.array) else mx.array(x)


# ---------------------------------------------------------------------------------------------
# Structural cache


def structural_key(closed: ClosedJaxpr) -> Hashable:
    """Primitives, params, avals and wiring of ``closed`` (and of its sub-jaxprs); not its
    const values."""
    jaxpr = closed.jaxpr
    ids: dict = {}
    parts: list = [len(jaxpr.constvars)]
    for v in jaxpr.constvars + jaxpr.invars:
        ids[v] = len(ids)
        parts.append(v.aval)
    for eqn in jaxpr.eqns:
        parts.append(eqn.prim)
        params = eqn.params
        plain = getattr(params, "interned", False) or not sub_jaxprs(params)
        parts.append(params if plain else _params_key(params))
        for a in eqn.inputs:
            parts.append(ids[a] if type(a) is Var else a.key())
        for v in eqn.outputs:
            ids[v] = len(ids)
    parts.append(None)
    parts.extend(ids[a] if type(a) is Var else a.key() for a in jaxpr.outvars)
    return tuple(parts)


def _params_key(params) -> tuple:
    """Params holding sub-jaxprs, by structure: each trace makes new jaxpr objects."""

    def key(v):
        if hasattr(v, "cache_key"):  # a custom rule: by its function, not per trace
            return v.cache_key
        if type(v) is ClosedJaxpr:
            return structural_key(v)
        if type(v) is tuple and v and type(v[0]) is ClosedJaxpr:
            return tuple(structural_key(j) for j in v)
        return v

    return tuple((k, key(v)) for k, v in params.items())


class LRUCache:
    """A bounded, thread-safe mapping; least recently used entries are evicted first."""

    def __init__(self, maxsize: int | None = None):
        self._maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        # Without the lock: each OrderedDict operation is atomic under the GIL, and an entry
        # another thread evicts between the two is still returned once.
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        try:
            self._data.move_to_end(key)
        except KeyError:
            pass
        return value

    @property
    def maxsize(self) -> int:
        """The bound given, or ``ad.config.cache_size`` (read at each insertion)."""
        return config.cache_size if self._maxsize is None else self._maxsize

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self):
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self):
        return len(self._data)


transform_cache = LRUCache()


def cached(key: Hashable, build: Callable[[], Any]):
    """The cache entry for ``key``, built (outside the lock) on a miss."""
    entry = transform_cache.get(key)
    if entry is None:
        entry = build()
        transform_cache.put(key, entry)
    return entry

"""Routing: code written with ``mlx.core`` traces, because while (and only while) a trace is
active, MLX's entry points defer traced values to ``autodiff.numpy``.

When the number of active traces in the process goes from 0 to 1, this module swaps in:

- each ``mx.<name>`` (and ``mx.linalg``, ``mx.fft``, ``mx.fast``, ``mx.random``,
  ``mx.distributed``) for which
  ``autodiff.numpy`` has a function: the ``autodiff.numpy`` function, which runs the original
  mlx.core function when no argument is traced and records primitives when one is;
- ``mx.array``'s binary operators, ``__getitem__``, ``__setitem__``, the in-place operators
  and ``.at``, so a concrete array on the left of an operator defers to the traced value on
  the right (``W @ x``), ``a.at[i].add(traced)`` and ``total += traced`` trace, and an
  in-place update of a concrete array that a trace has captured leaves the captured value
  as it was (as eager MLX would);
- the call of ``mx.compile``d functions (``mlx.nn``'s activations are), which runs the Python
  function being compiled when it receives a traced value, and ``mx.checkpoint``, whose
  functions made while tracing checkpoint traced values with autodiff's ``checkpoint``;
- the mlx.core functions ``mlx.nn`` modules hold (pooling layers keep ``mx.max``/``mx.mean``;
  ``nn.Sequential(nn.Linear(2, 4), mx.tanh)``): while tracing, they are the routed ones;
- ``mx.array`` as ``mlx.nn``'s ``Module`` code sees it in ``isinstance`` checks, so a model
  can hold traced parameters (``model.update(params)`` inside a traced loss works).

and swaps the originals back when the count returns to 0. Outside traces MLX is exactly as it
was: same objects, same speed. During a trace, other threads calling MLX eagerly go through
the swapped-in functions, which pass concrete arrays to the originals unchanged (correct
results; a check per call of cost). Functions bound to other names before (``from mlx.core
import sin``) are not reached: they raise a message saying so.

This module holds the switching (what is registered, swapped in on entering and back on
leaving) and the mlx.nn parts; the functions that stand in for ``mx.array``'s methods and
compiled functions' calls are in ``autodiff/routing_array.py``.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff import modules, tracing
from autodiff.routing_array import (
    _array_methods,
    _compiled_call,
    _CompiledType,
    _mx_checkpoint,
    _routed_checkpoint,
    _routed_compiled_call,
)
from autodiff.tracing import Tracer

_module_swaps: list[tuple[dict, dict, dict]] = []  # (module __dict__, ours, originals)
_type_swaps: list[tuple[type, dict, dict]] = []  # (type, ours, originals)
_NbFunction = type(mx.sin)
_routed_by_original: dict = {}  # an mlx.core function -> the function routed in its place


def register(mx_module, anp_module, exclude=()) -> None:
    """Route ``mx_module.<name>`` to ``anp_module.<name>`` for every name both have."""
    ours, originals = {}, {}
    for name, fn in vars(anp_module).items():
        if name.startswith("_") or name in exclude or not callable(fn):
            continue
        orig = mx_module.__dict__.get(name)
        if orig is None or isinstance(orig, type) or orig is fn:
            continue
        ours[name], originals[name] = fn, orig
        if type(orig) is _NbFunction:
            _routed_by_original.setdefault(orig, fn)
    _module_swaps.append((mx_module.__dict__, ours, originals))


# ---------------------------------------------------------------------------------------------
# mlx.nn's containers: ``isinstance(value, mx.array)`` must accept traced values


class _ArrayOrTracerType(type):
    def __instancecheck__(cls, x):
        if not _module_patched:
            _patch_module()
        return isinstance(x, mx.array) or type(x) is Tracer

    def __call__(cls, *args, **kwargs):
        return mx.array(*args, **kwargs)


class _ArrayOrTracer(metaclass=_ArrayOrTracerType):
    """Stands for ``mx.array`` in mlx.nn's module code while tracing: ``isinstance`` checks
    (``Module.update``, ``__setattr__``, ``parameters()``) accept traced values, so a model
    holds tracers the way it holds arrays; calling it constructs an ``mx.array``."""


class _MxForNN:
    """mlx.core as ``mlx.nn.layers.base`` sees it while tracing: everything is mlx.core's,
    except ``array``, which also accepts traced values in ``isinstance``."""

    array = _ArrayOrTracer

    def __getattr__(self, name):
        return getattr(mx, name)


def _module_setitem(self, key, value):
    """``Module.__setitem__`` while tracing: storing a traced value is undone when the trace
    that made it ends (``tracing.record_write``; a transform may store its computed value
    then, ``api_util.store_writes``). A concrete value stored in a module's traced copy (a
    module passed to a transform as a pytree) is stored in the user's module too."""
    if type(value) is Tracer:
        tracing.record_write(self, key, dict.get(self, key, tracing.ABSENT))
    else:
        user = modules.origin(self)
        if user is not self:
            user[key] = value
    dict.__setitem__(self, key, value)


_module_patched = False


def _patch_module():
    """Journal ``Module.__setitem__`` until the traces end. Installed the first time mlx.nn's
    module code runs in a trace (its ``isinstance(value, mx.array)`` checks come before any
    store of a traced value), not at every trace: changing a class attribute of ``Module``
    invalidates the caches of all its subclasses, which costs more than a small trace."""
    global _module_patched
    with tracing.active_lock:
        if tracing.active_traces() and not _module_patched:
            from mlx.nn.layers.base import Module

            Module.__setitem__ = _module_setitem
            _module_patched = True


def _unpatch_module():
    global _module_patched
    if _module_patched:
        from mlx.nn.layers.base import Module

        del Module.__setitem__
        _module_patched = False


def _sequential_call(self, x):
    """``nn.Sequential.__call__`` while tracing: its steps may be mlx.core functions
    (``nn.Sequential(nn.Linear(2, 4), mx.tanh)``), called routed."""
    for step in self.layers:
        if type(step) is _NbFunction:
            step = _routed_by_original.get(step, step)
        x = step(x)
    return x


_pool_call_mlx = None  # mlx.nn's _Pool.__call__ (set by _nn_swaps)


class _RoutedPool:
    """A pooling layer as its ``__call__`` sees it while tracing: the mlx.core function it
    holds (``mx.max``, ``mx.mean``, stored when it was built) is the routed one."""

    __slots__ = ("_layer", "_pooling_function")

    def __init__(self, layer, fn):
        self._layer, self._pooling_function = layer, fn

    def __getattr__(self, name):
        return getattr(self._layer, name)


def _pool_call(self, x):
    fn = self._pooling_function
    if type(fn) is _NbFunction and type(x) is Tracer:
        return _pool_call_mlx(_RoutedPool(self, _routed_by_original.get(fn, fn)), x)
    return _pool_call_mlx(self, x)


def _nn_swaps():
    import mlx.nn.layers.base as base
    from mlx.nn.layers.containers import Sequential
    from mlx.nn.layers.pooling import _Pool

    global _pool_call_mlx
    _pool_call_mlx = _Pool.__call__

    _module_swaps.append((base.__dict__, {"mx": _MxForNN()}, {"mx": base.__dict__["mx"]}))
    _type_swaps.append(
        (Sequential, {"__call__": _sequential_call}, {"__call__": Sequential.__call__})
    )
    _type_swaps.append((_Pool, {"__call__": _pool_call}, {"__call__": _pool_call_mlx}))


# ---------------------------------------------------------------------------------------------


_ABSENT = tracing.ABSENT  # an attribute the type did not define itself (removed on leave)


def _enter():
    for d, ours, _ in _module_swaps:
        d.update(ours)
    for cls, ours, _ in _type_swaps:
        for k, v in ours.items():
            setattr(cls, k, v)


def _leave():  # called with tracing.active_lock held
    _unpatch_module()
    for d, _, originals in _module_swaps:
        d.update(originals)
    for cls, _, originals in _type_swaps:
        for k, v in originals.items():
            if v is _ABSENT:
                delattr(cls, k)
            else:
                setattr(cls, k, v)


def install() -> None:
    """Called once, by ``autodiff/__init__``, after autodiff.numpy is built."""
    import autodiff.numpy as anp

    register(mx, anp)
    for sub in ("linalg", "fft", "fast", "random", "distributed"):
        ours = getattr(anp, sub, None)
        if ours is not None:
            register(getattr(mx, sub), ours)
    _type_swaps.append((mx.array, *_array_methods()))
    _type_swaps.append(
        (_CompiledType, {"__call__": _routed_compiled_call}, {"__call__": _compiled_call})
    )
    _module_swaps.append(
        (mx.__dict__, {"checkpoint": _routed_checkpoint}, {"checkpoint": _mx_checkpoint})
    )
    _nn_swaps()
    tracing.trace_hooks.append((_enter, _leave))

"""What ``autodiff/routing.py`` swaps in for ``mx.array``'s methods and for the call of
``mx.compile``'d and ``mx.checkpoint``'ed functions while something is traced.

- ``mx.array``'s binary operators defer to a traced right operand (``W @ x``);
  ``__getitem__`` with a traced index, ``__setitem__``, the in-place operators and ``.at``
  trace or explain why they cannot, and an in-place update of a concrete array a trace has
  captured leaves the captured value as it was (``_freeze``), as eager MLX would.
- A compiled function called with a traced value runs the Python function it compiles;
  ``mx.checkpoint(fun)`` made while tracing is autodiff's ``checkpoint`` on traced values.

Each passes concrete arrays to MLX's own function unchanged.
"""

from __future__ import annotations

import gc
import types

import mlx.core as mx

from autodiff import tracing
from autodiff.tracer import has_tracer
from autodiff.tracing import Tracer

# ---------------------------------------------------------------------------------------------
# mx.array: operators with a traced right operand, indexing with traced indices


def _deferring(orig):
    def method(self, other):
        if type(other) is Tracer:
            return NotImplemented  # Python then calls the tracer's reflected operator
        return orig(self, other)

    return method


def _array_methods() -> tuple[dict, dict]:
    from autodiff.numpy import _indexing

    names = "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift lt le gt ge eq ne"
    names = names.split()
    originals = {f"__{n}__": getattr(mx.array, f"__{n}__") for n in names}
    ours = {k: _deferring(v) for k, v in originals.items()}
    get, put = mx.array.__getitem__, mx.array.__setitem__

    def getitem(self, idx):
        parts = idx if type(idx) is tuple else (idx,)
        if has_tracer(parts):
            return _indexing.getitem(self, idx)
        return get(self, idx)

    def setitem(self, idx, value):
        parts = idx if type(idx) is tuple else (idx,)
        if type(value) is Tracer or has_tracer(parts):
            raise tracing.MixedOperandError(
                "`a[idx] = value` with a traced value or index, where `a` is a concrete "
                f"mx.array, {tracing.user_location()}\nA concrete array cannot hold traced "
                "values. Make `a` a traced value first (e.g. `a = mx.zeros_like(x)` from a "
                "traced `x`), or build the result with `a.at[idx].add(value)` or mx.where."
            )
        _freeze(self)
        put(self, idx, value)

    originals["__getitem__"], ours["__getitem__"] = get, getitem
    originals["__setitem__"], ours["__setitem__"] = put, setitem
    for n in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split():
        name = f"__i{n}__"
        originals[name] = getattr(mx.array, name)
        ours[name] = _in_place(originals[name])
    originals["at"] = vars(mx.array)["at"]
    ours["at"] = property(lambda self: _RoutedAt(self, originals["at"].__get__(self)))
    return ours, originals


def _freeze(a) -> None:
    """``a`` (concrete) is about to be updated in place: where a trace has captured it as a
    constant, that constant keeps the current value (a new handle on it, no copy), as the
    operations that used it would see in eager MLX."""
    frozen = None
    for b in tracing.live_builders():
        if id(a) in b.const_index:
            frozen = mx.stop_gradient(a) if frozen is None else frozen
            b.freeze_const(a, frozen)


def _in_place(orig):
    """``a += y`` and the rest on a concrete ``a``. With a traced ``y`` the result is traced,
    which ``a`` cannot hold: Python then computes ``a + y`` and rebinds the name ``a`` (other
    aliases of the concrete array keep its old value)."""

    def method(self, other):
        if type(other) is Tracer:
            return NotImplemented
        _freeze(self)
        return orig(self, other)

    return method


class _RoutedAt:
    """``a.at[idx]`` on a concrete ``a``: MLX's own, unless the index or value is traced."""

    __slots__ = ("a", "orig", "idx")

    def __init__(self, a, orig, idx=None):
        self.a, self.orig, self.idx = a, orig, idx

    def __getitem__(self, idx):
        return _RoutedAt(self.a, self.orig, idx)

    def _apply(self, method, value):
        parts = self.idx if type(self.idx) is tuple else (self.idx,)
        if type(value) is Tracer or has_tracer(parts):
            from autodiff.numpy._updates import _AtIndexer

            return getattr(_AtIndexer(self.a, self.idx), method)(value)
        return getattr(self.orig[self.idx], method)(value)

    def add(self, value):
        return self._apply("add", value)

    def subtract(self, value):
        return self._apply("subtract", value)

    def multiply(self, value):
        return self._apply("multiply", value)

    def divide(self, value):
        return self._apply("divide", value)

    def maximum(self, value):
        return self._apply("maximum", value)

    def minimum(self, value):
        return self._apply("minimum", value)


# ---------------------------------------------------------------------------------------------
# mx.compile'd functions


_CompiledType = type(mx.compile(lambda x: x))  # also the type of mx.checkpoint's functions
_compiled_call = _CompiledType.__call__
_mx_checkpoint = mx.checkpoint
_python_fun: dict[int, tuple] = {}  # id -> (the compiled object, its Python function)


def _wrapped_function(compiled):
    """The Python function an ``mx.compile`` object compiles (MLX keeps it as a referent).
    The cache holds the object itself: these objects are made and freed often (``mlx.nn``'s
    checkpointed layers make one per call), and a freed object's id is reused by the next."""
    hit = _python_fun.get(id(compiled))
    if hit is not None and hit[0] is compiled:
        return hit[1]
    funs = [r for r in gc.get_referents(compiled) if isinstance(r, types.FunctionType)]
    fun = funs[0] if len(funs) == 1 else None
    if len(_python_fun) >= 256:
        _python_fun.clear()
    _python_fun[id(compiled)] = (compiled, fun)
    return fun


def _routed_compiled_call(self, *args, **kwargs):
    if has_tracer(args) or (kwargs and has_tracer(kwargs.values())):
        fun = _wrapped_function(self)
        if fun is not None:
            return fun(*args, **kwargs)
    return _compiled_call(self, *args, **kwargs)


def _treehas_tracer(x) -> bool:
    t = type(x)
    if t is Tracer:
        return True
    if t is list or t is tuple:
        return any(_treehas_tracer(v) for v in x)
    if isinstance(x, dict):
        return any(_treehas_tracer(v) for v in x.values())
    return False


def _routed_checkpoint(fun):
    """``mx.checkpoint(fun)`` made while tracing (``mlx.nn``'s checkpointed layers make one at
    every call): called with traced values it is autodiff's checkpoint (the region is
    recomputed in the backward pass, as MLX's would be), otherwise MLX's own."""
    from autodiff.control.remat import checkpoint

    ours, theirs = checkpoint(fun), _mx_checkpoint(fun)

    def checkpointed(*args, **kwargs):
        if _treehas_tracer(args) or _treehas_tracer(kwargs):
            return ours(*args, **kwargs)
        return theirs(*args, **kwargs)

    return checkpointed

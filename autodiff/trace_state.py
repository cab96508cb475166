"""Which traces are active: the per-thread stack of builders and the process-wide count.

- ``_state`` (per thread): the stack of live builders (innermost last; ``bind`` records into
  the last), the substitution a custom rule runs under (:func:`substituting`), and one journal
  per trace of writes of traced values into user objects (:func:`record_write`), undone when
  the trace ends.
- The number of outermost traces running in the process, on any thread, with the hooks run
  when it goes from 0 to 1 and back (``autodiff.routing`` installs mlx.core's routing then).
- Leak checking: a tracer used outside the trace that made it raises ``UnexpectedTracerError``
  (:func:`_check_enclosing`).

``autodiff.tracing`` re-exports all of it; the builders and ``bind`` live there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autodiff.errors import UnexpectedTracerError, user_location
from autodiff.tracer import Tracer

if TYPE_CHECKING:
    from autodiff.tracing import Builder


class _State(threading.local):
    def __init__(self):
        self.stack: list[Builder] = []
        self.subst: dict = {}  # Var -> (tracer, value): see substituting()
        self.journals: list[list] = []  # per trace: writes of traced values to undo


_state = _State()

# (enter, leave) callbacks run when the number of traces active in the process (on any thread)
# goes from 0 to 1 and back: autodiff.routing uses them to route mlx.core to autodiff.numpy
# while, and only while, something is being traced.
trace_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []
_active_traces = 0
active_lock = threading.Lock()


def _check_enclosing(t: Tracer, b: Builder | None) -> Tracer:
    if t.builder.alive and b is not None:
        p = b.parent
        while p is not None:
            if p is t.builder:
                return t
            p = p.parent
    raise UnexpectedTracerError(
        f"Encountered a traced value {t.aval.str_short()} from the trace of "
        f"`{t.builder.fun_name}` (by `{t.builder.transform}`), which has already finished, "
        f"{user_location()}\nA traced value must not be kept outside the function being "
        "transformed (in a global, a closure or a list) and used after the transform returns. "
        "Return it from the function as an output instead."
    )


def active_traces() -> int:
    """How many outermost traces are running, in all threads."""
    return _active_traces


def _enter_outermost():
    global _active_traces
    with active_lock:
        _active_traces += 1
        if _active_traces == 1:
            for enter, _ in trace_hooks:
                enter()


def _leave_outermost():
    global _active_traces
    with active_lock:
        _active_traces -= 1
        if _active_traces == 0:
            for _, leave in trace_hooks:
                leave()


ABSENT = object()  # "there was no entry": record_write's ``old`` for a new key


def record_write(container: dict, key, old) -> None:
    """A traced value is being stored in ``container[key]`` (a model's parameter, say): when
    the current trace ends, ``old`` is put back, so user objects never keep values of a trace
    that has finished (``model.update(params)`` inside a traced loss)."""
    if _state.journals:
        _state.journals[-1].append((container, key, old))


def computed_writes() -> list[tuple[dict, Any, Tracer]]:
    """The writes recorded by :func:`record_write` in the innermost trace whose container
    still holds a value computed in that trace (not one of its inputs): ``(container, key,
    tracer)``, once per slot. A transform can return these values from the traced program
    and store them when it has run, as MLX's transforms leave such writes in place
    (``nn.BatchNorm``'s running statistics, updated during a forward pass)."""
    journal = _state.journals[-1] if _state.journals else None
    if not journal or not _state.stack:
        return []
    b = _state.stack[-1]
    inputs = set(b.invars)
    seen, found = set(), []
    for container, key, _ in journal:
        if (id(container), key) in seen:
            continue
        seen.add((id(container), key))
        v = dict.get(container, key)
        if type(v) is Tracer and v.builder is b and v.ir_var not in inputs:
            found.append((container, key, v))
    return found


@contextlib.contextmanager
def substituting(pairs):
    """Within the block, each ``(tracer, value)`` pair's tracer stands for ``value``: how a
    custom derivative rule, run when its equation is transformed, sees the values its
    function closed over where that function was traced (whose tracers are gone by then)."""
    saved = dict(_state.subst)
    _state.subst.update((t.ir_var, (t, v)) for t, v in pairs if type(t) is Tracer)
    try:
        yield
    finally:
        _state.subst = saved


def is_tracing() -> bool:
    """Whether this thread is inside a trace (an autodiff transform is tracing a function)."""
    return bool(_state.stack)


class binding_in:
    """Context: ``bind`` records into ``builder`` (an enclosing, live builder of the current
    thread) instead of the innermost one. In-place updates of a tracer of an enclosing trace
    use it, so that the update happens in that trace, as the same update would in eager MLX."""

    __slots__ = ("builder",)

    def __init__(self, builder: Builder):
        self.builder = builder

    def __enter__(self):
        _state.stack.append(self.builder)

    def __exit__(self, *exc):
        popped = _state.stack.pop()
        assert popped is self.builder


def live_builders() -> list[Builder]:
    """The builders of the traces active on this thread, outermost first."""
    return list(_state.stack)

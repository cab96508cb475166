"""Named axes: which axis names are bound while a function is traced, and to what.

A collective (``psum(x, "batch")``, see ``autodiff/ops/collectives.py``) acts over a *named*
axis. Two things bind a name, and both push a :class:`Frame` here for as long as they trace
the user's function (a thread-local stack, innermost last, like JAX's axis environment):

- ``ad.vmap(f, axis_name="batch")`` binds it to the vmapped axis: the collective is then
  batched away by ``vmap`` (``transforms/vmap.py``), so it never reaches a program;
- ``ad.spmd(f, axis_name="data")`` binds it to a group of processes
  (``mx.distributed.init()``'s by default): the collective stays in the program and lowers to
  the ``mx.distributed`` call on that group.

The wrappers read the frame when they bind a collective, to check that the name is bound and
to record the axis size in the equation (``all_gather``'s result shape depends on it), so the
IR is self-contained: transforms and the lowering never consult this stack.

How the group reaches a lowered program: ``spmd`` also records ``name -> group`` in a
process-wide table (:func:`bind_group`). The lowering looks the group up there when it emits a
collective, and the emitted source refers to that group object (``group=_group0``), which is
compiled into the program. One process binds one group per name at a time; binding a name to
another group clears the compiled caches, so no program keeps the old one.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any


class Frame:
    """A bound axis name: its size, and the process group for an ``spmd`` axis (None for a
    ``vmap`` axis)."""

    __slots__ = ("name", "size", "group")

    def __init__(self, name: Hashable, size: int, group: Any = None):
        self.name, self.size, self.group = name, size, group

    def __repr__(self):
        kind = "vmap" if self.group is None else "spmd"
        return f"Frame({self.name!r}, size={self.size}, {kind})"


class _Env(threading.local):
    def __init__(self):
        self.frames: list[Frame] = []


_env = _Env()


@contextmanager
def axis_frame(name: Hashable, size: int, group: Any = None) -> Iterator[Frame]:
    """Bind ``name`` (to a vmapped axis of ``size``, or to ``group``) within the block."""
    check_name(name)
    frame = Frame(name, size, group)
    _env.frames.append(frame)
    try:
        yield frame
    finally:
        popped = _env.frames.pop()
        assert popped is frame


def check_name(name) -> None:
    try:
        hash(name)
    except TypeError:
        raise TypeError(f"an axis name must be hashable (a string, say), got {name!r}") from None
    if name is None or isinstance(name, (tuple, list)):
        raise TypeError(
            f"an axis name is one hashable value such as 'batch', got {name!r}; for a "
            "collective over two named axes, apply it once per axis"
        )


def lookup(name: Hashable, what: str) -> Frame:
    """The innermost frame binding ``name``; a NameError (as JAX's) if none does."""
    for frame in reversed(_env.frames):
        if frame.name == name:
            return frame
    bound = [f.name for f in _env.frames]
    raise NameError(
        f"[{what}] unbound axis name: {name!r}"
        + (f" (bound here: {bound})" if bound else "")
        + ". Bind it with `ad.vmap(f, axis_name=...)` (one process, over a batch axis) or "
        "`ad.spmd(f, axis_name=...)` (across the processes of an mx.distributed group)."
    )


def spmd_frames() -> list[Frame]:
    """The frames that bind a name to a process group, outermost first."""
    return [f for f in _env.frames if f.group is not None]


def env_key() -> tuple:
    """The bound names and sizes, for caches of programs traced under them (``jit``)."""
    return tuple((f.name, f.size, f.group is None) for f in _env.frames)


# ---------------------------------------------------------------------------------------------
# Process-wide: the group each spmd axis name stands for, read by the lowering.

_groups: dict[Hashable, Any] = {}
_groups_lock = threading.Lock()
_default_group = None


def default_group():
    """``mx.distributed.init()``'s group, made once per process (a singleton group when the
    process was not started by a launcher)."""
    global _default_group
    if _default_group is None:
        import mlx.core as mx

        _default_group = mx.distributed.init()
    return _default_group


def bind_group(name: Hashable, group) -> bool:
    """Record that ``name`` stands for ``group`` in this process; True if that changed an
    earlier binding (the caller then clears compiled programs, which hold the old group)."""
    check_name(name)
    with _groups_lock:
        old = _groups.get(name)
        _groups[name] = group
    return old is not None and old is not group


def group_of(name: Hashable, what: str):
    """The group ``name`` is bound to (for the lowering and the interpreter)."""
    group = _groups.get(name)
    if group is None:
        raise NameError(
            f"[{what}] a collective over axis {name!r} is to run across processes, but no "
            f"process group is bound to {name!r}. Collectives over a `vmap` axis are batched "
            "away by vmap and never run; to run this one across processes, trace the "
            f"function under `ad.spmd(f, axis_name={name!r})`."
        )
    return group


__all__ = [
    "Frame",
    "axis_frame",
    "bind_group",
    "default_group",
    "env_key",
    "group_of",
    "lookup",
    "spmd_frames",
]

"""What a jitted program reads and writes besides its arguments and results.

- **Captured state** (``jit(..., inputs=, outputs=)``, MLX's ``mx.compile(inputs=, outputs=)``):
  the arrays in the ``inputs`` trees (a model's ``state``, an optimizer's ``state``...) are
  implicit inputs, read at every call; the arrays in the ``outputs`` trees after the function
  ran are implicit outputs, written back into those trees after every call. A training step that
  updates a model and an optimizer in place is thereby one compiled program. While tracing, the
  input slots hold tracers; they are restored as soon as the trace ends.
- **The global PRNG key** (``mx.random.state``): an implicit input and output whenever the
  function draws random numbers without a key (see ``autodiff/ops/random.py``).

Trees are walked as MLX walks them: dicts (``nn.Module`` is one) in insertion order, lists and
tuples in order; other leaves are not state.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import mlx.core as mx

from autodiff.errors import user_frame
from autodiff.ops.random import KEY, KeyThread, pop_key_thread, push_key_thread
from autodiff.tracing import ABSENT, Tracer, aval_of, computed_writes, record_write


def slots(tree, path=()) -> list[tuple[tuple, object]]:
    """``(path, array)`` for every array leaf of ``tree``."""
    if type(tree) is Tracer or isinstance(tree, mx.array):
        return [(path, tree)]
    if isinstance(tree, dict):
        return [s for k, v in tree.items() for s in slots(v, path + (k,))]
    if isinstance(tree, (list, tuple)):
        return [s for i, v in enumerate(tree) for s in slots(v, path + (i,))]
    return []


def write(root, path: tuple, value) -> None:
    """``root[path] = value``, making the dicts on the way that are missing (state the traced
    function created, see :func:`_drop_new`). A traced value stored in a dict is journaled, so
    the trace puts back what was there when it ends (a module's parameter)."""
    node = root
    for k in path[:-1]:
        if isinstance(node, dict) and k not in node:
            dict.__setitem__(node, k, {})
        node = node[k]
    if isinstance(node, tuple):
        raise TypeError(
            "[jit] captured state is written back in place, so it must live in lists and "
            f"dicts, not tuples (at {path})"
        )
    if type(value) is Tracer and isinstance(node, dict):
        record_write(node, path[-1], dict.get(node, path[-1], ABSENT))
    node[path[-1]] = value


def _drop_new(root, before: set, containers: set) -> None:
    """Remove the slots of ``root`` that the traced function created (an optimizer's lazily
    made state, which holds traced values when the trace ends), and the dicts made for them:
    the objects are left as they were. A call writes them back with their values; after
    ``.trace()`` or ``.lower()``, the next call runs the program traced from this structure,
    which creates them."""
    for path, v in slots(root):
        if type(v) is not Tracer or path in before:
            continue
        nodes = [root]
        for k in path[:-1]:
            nodes.append(nodes[-1][k])
        if not isinstance(nodes[-1], dict):
            continue
        dict.pop(nodes[-1], path[-1], None)
        for parent, k, node in reversed(list(zip(nodes, path, nodes[1:]))):
            if isinstance(parent, dict) and isinstance(node, dict) and not node:
                if id(node) not in containers:
                    dict.pop(parent, k, None)


def _containers(tree, out=None) -> set:
    out = set() if out is None else out
    if isinstance(tree, (dict, list, tuple)):
        out.add(id(tree))
        for v in tree.values() if isinstance(tree, dict) else tree:
            _containers(v, out)
    return out


def _warn_uncaptured(outs) -> None:
    """Values the traced function computed and stored in a module (``nn.BatchNorm``'s running
    statistics, parameters an optimizer updated) are discarded when the trace ends unless
    they are captured state: say so, since the program otherwise silently drops them."""
    captured = {id(v) for _, v in outs}
    lost = [(c, k) for c, k, v in computed_writes() if id(v) not in captured]
    if lost:
        where = ", ".join(f"{type(c).__name__}.{k}" for c, k in lost[:4])
        more = f" and {len(lost) - 4} more" if len(lost) > 4 else ""
        message = (
            f"[jit] the function stored values it computed in {where}{more}, which are not "
            "captured state, so they are discarded after each call (mx.compile would leave "
            "arrays there that cannot be evaluated). Capture the module's state: "
            "ad.jit(f, inputs=[model.state], outputs=[model.state]), or "
            "mx.compile(f, inputs=..., outputs=...) with autodiff.mlx."
        )
        f = user_frame()
        if f is None:
            warnings.warn(message, stacklevel=2)
        else:  # point at the user's call of the jitted function
            warnings.warn_explicit(
                message,
                UserWarning,
                f.f_code.co_filename,
                f.f_lineno,
                module=f.f_globals.get("__name__"),
                registry=f.f_globals.setdefault("__warningregistry__", {}),
            )


class Implicit:
    """The implicit inputs and outputs of one jitted function (see the module docstring)."""

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = inputs, outputs

    @property
    def stateful(self) -> bool:
        return self.inputs is not None or self.outputs is not None

    def current(self) -> tuple[list, Hashable]:
        """The input state's arrays now, and their structure and types (for the cache key)."""
        found = slots(self.inputs) if self.inputs is not None else []
        return [a for _, a in found], tuple((p, aval_of(a)) for p, a in found)

    def wrap(self, call, n_state: int):
        """``call`` as a function of ``(key, *state_in, *args) -> (*outs, *state_out, key)``,
        run with the state slots holding the traced ``state_in`` and the global key threaded.
        Returns it; after tracing, ``self.out_paths`` and ``self.uses_key`` are set."""

        def traced(key, *leaves):
            state, args = leaves[:n_state], leaves[n_state:]
            saved = slots(self.inputs) if self.inputs is not None else []
            before = {p for p, _ in slots(self.outputs)} if self.outputs is not None else set()
            made = _containers(self.outputs) if self.outputs is not None else set()
            for (path, _), t in zip(saved, state):
                write(self.inputs, path, t)
            thread = KeyThread(key.builder, key)
            push_key_thread(thread)
            try:
                out = call(*args)
                outs = slots(self.outputs) if self.outputs is not None else []
                _warn_uncaptured(outs)
            finally:
                pop_key_thread()
                for path, original in saved:  # never leave tracers in the user's objects
                    write(self.inputs, path, original)
                if self.outputs is not None:
                    _drop_new(self.outputs, before, made)
            self.out_paths = [p for p, _ in outs]
            self.uses_key = thread.used
            return out, [v for _, v in outs], thread.key

        return traced

    def write_back(self, state_out: list, out_paths) -> None:
        for path, value in zip(out_paths, state_out):
            write(self.outputs, path, value)


__all__ = ["KEY", "Implicit", "slots", "write"]

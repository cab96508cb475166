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

from collections.abc import Hashable

import mlx.core as mx

from autodiff.ops.random import KEY, KeyThread, pop_key_thread, push_key_thread
from autodiff.tracing import Tracer, aval_of


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
    node = root
    for k in path[:-1]:
        node = node[k]
    if isinstance(node, tuple):
        raise TypeError(
            "[jit] captured state is written back in place, so it must live in lists and "
            f"dicts, not tuples (at {path})"
        )
    node[path[-1]] = value


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
            for (path, _), t in zip(saved, state):
                write(self.inputs, path, t)
            thread = KeyThread(key.builder, key)
            push_key_thread(thread)
            try:
                out = call(*args)
                outs = slots(self.outputs) if self.outputs is not None else []
            finally:
                pop_key_thread()
                for path, original in saved:  # never leave tracers in the user's objects
                    write(self.inputs, path, original)
            self.out_paths = [p for p, _ in outs]
            self.uses_key = thread.used
            return out, [v for _, v in outs], thread.key

        return traced

    def write_back(self, state_out: list, out_paths) -> None:
        for path, value in zip(out_paths, state_out):
            write(self.outputs, path, value)


__all__ = ["KEY", "Implicit", "slots", "write"]

"""What the fusion rules match on: a program's dataflow (who defines each variable, how often
it is read, the values of its constants) and the matches they return.

A rule walks backwards from a root equation through producers, collecting the equations it
looks through into a region; it fails (returns None) at the first thing that does not fit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autodiff import primitives as P
from autodiff.interpret import to_numpy
from autodiff.ir import Atom, ClosedJaxpr, Eqn, Literal, Params, Var

# Equations whose recomputation (or keeping) costs about a memory pass: a match whose other
# equations stay alive after the rewrite (read outside it) is still taken if those are all
# cheap; anything else kept alive (a reduction, a matmul, a transcendental) would be computed
# twice, so the match is declined.
CHEAP = {
    P.broadcast_in_dim,
    P.reshape,
    P.transpose,
    P.expand_dims,
    P.squeeze,
    P.slice_,
    P.convert,
    P.stop_gradient,
    P.neg,
    P.abs_,
    P.add,
    P.sub,
    P.mul,
    P.select,
    P.logical_not,
    P.max_,
    P.min_,
    P.eq,
    P.ne,
    P.lt,
    P.le,
    P.gt,
    P.ge,
}

KERNEL_DTYPES = ("float32", "float16", "bfloat16")


class Match:
    """A recognised subgraph: ``root`` (whose outputs the rewrite defines anew), the equations
    it replaces (``region``, root included), the atoms the replacement reads, and ``build()``,
    which returns the replacement equations (the last defines ``root.outputs``)."""

    __slots__ = ("rule", "root", "region", "inputs", "build")

    def __init__(self, rule: str, root: Eqn, region, inputs, build: Callable[[], list[Eqn]]):
        self.rule, self.root, self.region = rule, root, set(region) | {root}
        self.inputs, self.build = list(inputs), build

    def __repr__(self):
        return f"Match({self.rule}, {len(self.region)} equations)"


class Graph:
    """Producers, use counts and constant values of one closed jaxpr."""

    def __init__(self, closed: ClosedJaxpr):
        jaxpr = closed.jaxpr
        self.defs: dict[Var, Eqn] = {}
        self.uses: dict[Var, int] = {}
        self.users: dict[Var, list[Eqn]] = {}
        uses = self.uses
        for e in jaxpr.eqns:
            for v in e.outputs:
                self.defs[v] = e
            for a in e.inputs:
                if type(a) is Var:
                    uses[a] = uses.get(a, 0) + 1
                    self.users.setdefault(a, []).append(e)
        for a in jaxpr.outvars:
            if type(a) is Var:
                uses[a] = uses.get(a, 0) + 1
        self._consts = dict(zip(jaxpr.constvars, closed.consts))
        self._values: dict[Var, np.ndarray] = {}

    def eqn(self, a: Atom, *prims) -> Eqn | None:
        """The equation defining ``a``, if it is one of ``prims``."""
        e = self.defs.get(a) if type(a) is Var else None
        return e if e is not None and e.prim in prims else None

    def lit(self, a: Atom) -> float | None:
        """The value of a literal, or of an array filled with one (``broadcast_in_dim``)."""
        if type(a) is Literal:
            return a.val
        e = self.eqn(a, P.broadcast_in_dim)
        return e.inputs[0].val if e is not None and type(e.inputs[0]) is Literal else None

    def const(self, a: Atom) -> np.ndarray | None:
        """The value of a constvar (float64 NumPy), else None."""
        if type(a) is not Var or a not in self._consts:
            return None
        if a not in self._values:
            try:
                self._values[a] = to_numpy(self._consts[a], a.aval.dtype)
            except Exception:  # a tracer of an enclosing trace: not a value
                return None
        return self._values[a]

    def keep(self, a: Atom, region: list) -> Atom:
        """``a`` before reshapes that only insert or drop axes of size 1 (``keepdims``)."""
        while True:
            e = self.eqn(a, P.reshape, P.expand_dims, P.squeeze)
            if e is None or _non_unit(e.inputs[0].aval.shape) != _non_unit(a.aval.shape):
                return a
            region.append(e)
            a = e.inputs[0]

    def spread(self, a: Atom, region: list) -> tuple[Atom, tuple[int, ...]] | None:
        """``(src, axes)`` when ``a`` is ``src`` broadcast along ``axes`` (in increasing
        order); ``src`` is seen through ``keep`` and has ``a``'s shape without ``axes`` (up to
        axes of size 1)."""
        e = self.eqn(a, P.broadcast_in_dim)
        if e is None or type(e.inputs[0]) is Literal:
            return None
        src, shape, dims = e.inputs[0], e.params["shape"], e.params["broadcast_dimensions"]
        if list(dims) != sorted(dims):
            return None
        axes = {d for d in range(len(shape)) if d not in dims}
        axes |= {d for d, n in zip(dims, src.aval.shape) if n == 1 and shape[d] != 1}
        axes = tuple(sorted(axes))
        region.append(e)
        src = self.keep(src, region)
        if _non_unit(src.aval.shape) != _non_unit(n for d, n in enumerate(shape) if d not in axes):
            return None
        return src, axes

    def same(self, a: Atom, b: Atom, depth: int = 4) -> bool:
        """Whether ``a`` and ``b`` are one value computed twice by the same equations (up to
        ``depth`` deep; broadcasts of one value compared by what they spread along)."""
        if a is b:
            return True
        if a is None or b is None:
            return False
        if type(a) is Literal or type(b) is Literal:
            return type(a) is type(b) and a.key() == b.key()
        if a.aval != b.aval or depth == 0:
            return False
        sa, sb = self.spread(a, []), self.spread(b, [])
        if sa is not None and sb is not None:
            return sa[1] == sb[1] and self.same(sa[0], sb[0], depth - 1)
        ea, eb = self.defs.get(a), self.defs.get(b)
        if ea is None or eb is None or ea.prim is not eb.prim or ea.params != eb.params:
            return False
        if len(ea.outputs) != 1 or len(ea.inputs) != len(eb.inputs):
            return False
        return all(self.same(x, y, depth - 1) for x, y in zip(ea.inputs, eb.inputs))

    def vector(self, a: Atom, region: list) -> Atom | None:
        """The vector ``v`` when ``a`` is ``v`` broadcast along all but its last axis."""
        e = self.eqn(a, P.broadcast_in_dim)
        if e is None or type(e.inputs[0]) is Literal:
            return None
        n = len(e.params["shape"])
        v = e.inputs[0]
        shape = e.params["shape"]
        if v.aval.shape != shape[-1:] or e.params["broadcast_dimensions"] != (n - 1,):
            return None
        region.append(e)
        return v


def terms(g: Graph, a: Atom, region: list, limit: int = 8) -> list[tuple[int, Atom]]:
    """``a`` as a signed sum ``[(+1 | -1, term), ...]``, looking through the add, sub and neg
    equations that only this sum reads (``a``'s own producer included)."""
    out: list[tuple[int, Atom]] = []

    def walk(x, sign, top):
        e = g.eqn(x, P.add, P.sub, P.neg)
        if e is None or len(out) >= limit or not (top or g.uses.get(x, 0) == 1):
            out.append((sign, x))
            return
        region.append(e)
        if e.prim is P.neg:
            walk(e.inputs[0], -sign, False)
        else:
            walk(e.inputs[0], sign, False)
            walk(e.inputs[1], -sign if e.prim is P.sub else sign, False)

    walk(a, 1, True)
    return out


def signed_sum(first: Atom, rest: list[tuple[int, Atom]], eqns: list) -> Atom:
    """``first + sum(sign * term)``, its equations appended to ``eqns``."""
    acc = first
    for sign, t in rest:
        eqns.append(new_eqn(P.add if sign > 0 else P.sub, [acc, t], {}))
        acc = eqns[-1].outputs[0]
    return acc


def finish(eqns: list, final: Atom, root: Eqn) -> list[Eqn]:
    """``eqns`` with ``root``'s output defined as ``final`` (reshaped if needed): the last
    equation's output is renamed, so the rest of the program reads it unchanged."""
    (out,) = root.outputs
    assert final.aval.dtype == out.aval.dtype, (final.aval, out.aval)
    if final.aval.shape != out.aval.shape:
        eqns.append(new_eqn(P.reshape, [final], {"new_sizes": out.aval.shape}, [out]))
        return eqns
    last = eqns[-1]
    assert last.outputs == [final]
    eqns[-1] = Eqn(last.prim, last.inputs, last.params, [out])
    return eqns


def _non_unit(shape) -> tuple:
    return tuple(n for n in shape if n != 1)


def operand_pairs(e: Eqn):
    """``(x, y)`` and, for a commutative ``e``, ``(y, x)``."""
    x, y = e.inputs
    return ((x, y), (y, x)) if e.prim in (P.add, P.mul) else ((x, y),)


def new_eqn(prim, inputs: list, params: dict, outputs: list[Var] | None = None) -> Eqn:
    """An equation of ``prim`` with fresh output variables (or ``outputs``)."""
    if outputs is None:
        avals = prim.abstract_eval(*[a.aval for a in inputs], **params)
        outputs = [Var(a) for a in avals]
    return Eqn(prim, list(inputs), Params.make(params), outputs)


def reshaped(a: Atom, shape: tuple, eqns: list) -> Atom:
    """``a`` reshaped to ``shape`` (no equation if it has that shape)."""
    if a.aval.shape == tuple(shape):
        return a
    e = new_eqn(P.reshape, [a], {"new_sizes": tuple(shape)})
    eqns.append(e)
    return e.outputs[0]

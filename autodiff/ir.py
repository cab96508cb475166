"""The typed IR: dtypes, abstract values, variables, equations and jaxprs.

A ``Jaxpr`` is a list of equations in static single assignment form. ``str(jaxpr)`` prints it
in JAX's notation and :func:`typecheck` checks it against the primitives' shape rules.

    { lambda a:f32[3]; b:f32[]. let
        c:f32[] = sin b
        d:f32[3] = broadcast_in_dim[broadcast_dimensions=() shape=(3,)] c
        e:f32[3] = mul a d
      in (e,) }
"""

from __future__ import annotations

import itertools
from typing import Any

from autodiff.dtypes import DTYPES, dtype_name

# ---------------------------------------------------------------------------------------------
# Abstract values


class ShapedArray:
    """The abstract value (aval) of an array: its shape and dtype.

    Interned: equal avals are the same object, so comparing structural cache keys (tuples of
    avals) mostly takes CPython's identity shortcut.
    """

    __slots__ = ("shape", "dtype", "_hash")
    _interned: dict = {}

    def __new__(cls, shape: tuple[int, ...], dtype: str):
        if type(shape) is not tuple:
            shape = tuple(shape)
        key = (shape, dtype)
        self = cls._interned.get(key)
        if self is None:
            self = object.__new__(cls)
            self.shape = shape
            self.dtype = dtype
            self._hash = hash(key)
            cls._interned[key] = self
        return self

    def __reduce__(self):
        return ShapedArray, (self.shape, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def update(self, shape=None, dtype=None) -> ShapedArray:
        return ShapedArray(self.shape if shape is None else shape, dtype or self.dtype)

    def __eq__(self, other):
        return (
            type(other) is ShapedArray and self.shape == other.shape and self.dtype == other.dtype
        )

    def __hash__(self):
        return self._hash

    def str_short(self) -> str:
        return f"{DTYPES[self.dtype].short}[{','.join(map(str, self.shape))}]"

    __str__ = str_short

    def __repr__(self):
        return f"ShapedArray({self.shape}, {self.dtype})"


# ---------------------------------------------------------------------------------------------
# Variables, literals, equations

_var_ids = itertools.count()


class Var:
    """An SSA variable. Identity is object identity; ``id`` only orders them for printing."""

    __slots__ = ("aval", "id")

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.id = next(_var_ids)

    def __repr__(self):
        return f"Var({self.id}:{self.aval.str_short()})"


class Literal:
    """A rank-0 constant embedded in an equation. Never differentiated."""

    __slots__ = ("val", "aval")

    def __init__(self, val: bool | int | float | complex, aval: ShapedArray):
        assert aval.shape == (), "literals are rank 0"
        self.val = val
        self.aval = aval

    def __repr__(self):
        return f"Literal({self.val!r}:{self.aval.dtype})"

    def key(self):
        v = self.val
        if v == 0 or v != v:  # keep 0.0 apart from -0.0, and make NaN equal to itself
            return ("lit", repr(v), self.aval.dtype)
        return (v, self.aval.dtype)


Atom = Var | Literal


class Params(dict):
    """Frozen, hashable equation parameters. ``interned``: made by :meth:`make` and kept in its
    table (plain values only)."""

    __slots__ = ("_hash", "interned")

    def __hash__(self):
        # Keys in insertion order: every equation of a primitive is built with its params in
        # the same order (by its autodiff.lax wrapper), and a different order could only cost
        # a cache miss, never a wrong hit (equality is still dict equality).
        try:
            return self._hash
        except AttributeError:
            self._hash = hash(tuple(self.items()))
            return self._hash

    def __eq__(self, other):
        # Typed: params {"value": 1} and {"value": True} make different equations.
        if self is other:
            return True
        if not isinstance(other, dict):
            return NotImplemented
        if getattr(self, "interned", False) and getattr(other, "interned", False):
            return False  # equal interned params are one object
        return len(self) == len(other) and _typed_key(self) == _typed_key(other)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def _immutable(self, *args, **kwargs):
        raise TypeError("equation params are frozen")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _immutable

    _interned: dict = {}

    @classmethod
    def make(cls, params: dict) -> Params:
        """The interned Params for ``params`` (equal params share one object, hash computed
        once), or a fresh one when a value is unhashable or not a plain value (sub-jaxprs,
        functions: the table must not keep them alive)."""
        try:
            key = _typed_key(params)
            p = cls._interned.get(key)
        except TypeError:
            p = cls(params)
            p.interned = False
            return p
        if p is None:
            p = cls(params)
            p.interned = len(cls._interned) < 100_000 and all(_plain(v) for v in params.values())
            if p.interned:
                cls._interned[key] = p
        return p


_PLAIN = (type(None), bool, int, float, complex, str)


def _typed_key(params: dict) -> tuple:
    """The intern table's key: the items and the type of each value, as Python's equality makes
    ``1 == 1.0 == True`` but an equation's params must keep them apart (a fill value's dtype).
    Values inside tuples, and signed zeros, compare by value: no primitive's params hold
    booleans or floats inside tuples, and the key is on the hot path of every bind."""
    return tuple(params.items()), tuple(map(type, params.values()))


def _plain(v) -> bool:
    """Whether ``v`` may be kept by the intern table: plain values, not jaxprs, user functions
    or anything else that would keep arrays alive."""
    if type(v) in _PLAIN or type(v) is ShapedArray:
        return True
    return type(v) is tuple and all(_plain(x) for x in v)


class Eqn:
    """``outputs = prim[params](*inputs)``."""

    __slots__ = ("prim", "inputs", "params", "outputs")

    def __init__(self, prim, inputs: list[Atom], params: Params, outputs: list[Var]):
        self.prim = prim
        self.inputs = inputs
        self.params = params
        self.outputs = outputs

    def __repr__(self):
        return f"Eqn({self.prim.name}, {self.inputs}, {dict(self.params)}, {self.outputs})"


class Jaxpr:
    """``{ lambda constvars; invars. let eqns in outvars }``."""

    __slots__ = ("constvars", "invars", "eqns", "outvars", "__weakref__")

    def __init__(
        self, constvars: list[Var], invars: list[Var], eqns: list[Eqn], outvars: list[Atom]
    ):
        self.constvars = constvars
        self.invars = invars
        self.eqns = eqns
        self.outvars = outvars

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self):
        from autodiff.pretty import pp_jaxpr

        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr with values for its constvars.

    Consts are concrete arrays, or tracers of an enclosing trace (closure conversion).
    """

    __slots__ = ("jaxpr", "consts")

    def __init__(self, jaxpr: Jaxpr, consts: list[Any]):
        assert len(jaxpr.constvars) == len(consts)
        self.jaxpr = jaxpr
        self.consts = consts

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __str__(self):
        from autodiff.pretty import pp_jaxpr

        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__


def sub_jaxprs(params) -> list:
    """The closed sub-jaxprs among an equation's params (cond branches, loop bodies, ...):
    a param is a ClosedJaxpr or a tuple of them."""
    out = []
    for v in params.values():
        if type(v) is ClosedJaxpr:
            out.append(v)
        elif type(v) is tuple and v and type(v[0]) is ClosedJaxpr:
            out.extend(v)
    return out


def all_eqns(jaxpr: Jaxpr):
    """Every equation of ``jaxpr`` and, after each, those of its sub-jaxprs, recursively."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in sub_jaxprs(eqn.params):
            yield from all_eqns(sub.jaxpr)


# ---------------------------------------------------------------------------------------------
# Type checking


class JaxprTypeError(TypeError):
    pass


def typecheck(jaxpr: Jaxpr | ClosedJaxpr) -> None:
    """Check single assignment, def-before-use and every equation's output avals, in
    sub-jaxprs too (whose signatures the control-flow primitives' rules check).

    Raises:
        JaxprTypeError: naming the first offending equation.
    """
    if isinstance(jaxpr, ClosedJaxpr):
        for v, c in zip(jaxpr.jaxpr.constvars, jaxpr.consts):
            shape, dtype = tuple(c.shape), dtype_name(c.dtype)
            if (shape, dtype) != (v.aval.shape, v.aval.dtype):
                raise JaxprTypeError(f"const of type {dtype}{list(shape)} bound to {v.aval}")
        jaxpr = jaxpr.jaxpr
    defined: set[Var] = set()

    def define(v: Var):
        if v in defined:
            raise JaxprTypeError(f"variable {v} assigned twice")
        defined.add(v)

    def check(a: Atom, where: str):
        if isinstance(a, Literal):
            if a.aval.shape != ():
                raise JaxprTypeError(f"non-scalar literal in {where}")
        elif a not in defined:
            raise JaxprTypeError(f"variable {a} used before it is defined, in {where}")

    for v in jaxpr.constvars + jaxpr.invars:
        define(v)
    for eqn in jaxpr.eqns:
        for a in eqn.inputs:
            check(a, eqn.prim.name)
        for sub in sub_jaxprs(eqn.params):
            try:
                typecheck(sub)
            except JaxprTypeError as e:
                raise JaxprTypeError(f"in a sub-jaxpr of {eqn.prim.name}: {e}") from e
        try:
            expected = eqn.prim.abstract_eval(*[a.aval for a in eqn.inputs], **eqn.params)
        except (TypeError, ValueError) as e:
            raise JaxprTypeError(f"ill-typed equation {eqn}: {e}") from e
        got = [v.aval for v in eqn.outputs]
        if list(expected) != got:
            raise JaxprTypeError(
                f"equation {eqn.prim.name} declares outputs {[str(a) for a in got]} but its rule "
                f"gives {[str(a) for a in expected]}"
            )
        for v in eqn.outputs:
            define(v)
    for a in jaxpr.outvars:
        check(a, "outvars")

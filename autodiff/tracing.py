"""Tracing: one staging tracer and nested builders.

Calling a function on :class:`Tracer` objects records every primitive it applies, through
:func:`bind`, as an equation of the innermost active :class:`Builder`. Builders nest: a
transform called inside another transform's trace opens an inner builder. A tracer of an
enclosing builder that reaches an inner one becomes a *captured input* of the inner jaxpr (one
of its consts), which is how closures over differentiated values stay correct
(``grad(lambda x: grad(lambda y: x * y)(x))``) without perturbation confusion.

Concrete arrays (``mx.array``, ``np.ndarray``) met while tracing become consts; Python scalars
become rank-0 literals.

This module holds the builders, ``bind``, ``trace_flat`` and ``inline``. The tracer class,
``aval_of`` and ``literal`` live in ``autodiff/tracer.py``, and the per-thread trace stack, the
process-wide trace count, write journals and leak checks in ``autodiff/trace_state.py``; both
are re-exported here, so ``from autodiff.tracing import ...`` reaches all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autodiff.dtypes import dtype_name
from autodiff.errors import user_location
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Params, ShapedArray, Var
from autodiff.primitives import broadcast_in_dim as _broadcast_in_dim
from autodiff.trace_state import (  # noqa: F401  (re-exported)
    ABSENT,
    _check_enclosing,
    _enter_outermost,
    _leave_outermost,
    _state,
    active_lock,
    active_traces,
    binding_in,
    computed_writes,
    is_tracing,
    live_builders,
    record_write,
    substituting,
    trace_hooks,
)
from autodiff.tracer import (  # noqa: F401  (re-exported)
    MixedOperandError,
    Tracer,
    aval_of,
    literal,
)


class Builder:
    """Collects the equations of one jaxpr being traced."""

    __slots__ = (
        "parent",
        "eqns",
        "invars",
        "constvars",
        "const_vals",
        "const_index",
        "alive",
        "fun_name",
        "transform",
    )

    def __init__(self, parent: Builder | None, fun_name: str, transform: str):
        self.parent = parent
        self.eqns: list[Eqn] = []
        self.invars: list[Var] = []
        self.constvars: list[Var] = []
        self.const_vals: list[Any] = []
        self.const_index: dict[Any, Var] = {}  # id(array) or an outer tracer's Var
        self.alive = True
        self.fun_name = fun_name
        self.transform = transform

    def new_input(self, aval: ShapedArray) -> Tracer:
        v = Var(aval)
        self.invars.append(v)
        return Tracer(aval, self, v)

    def const_var(self, val: Any) -> Var:
        """The constvar holding ``val`` (a concrete array or an outer tracer), made once.

        An outer tracer is keyed by the variable it stands for now, and a snapshot of it is
        kept: after an in-place update (``x[i] = y``, ``x += y``) the same Python object
        stands for a new variable, and the constvar captured before must keep the old value.
        """
        if type(val) is Tracer:
            key, aval = val.ir_var, val.aval
        else:
            key, aval = id(val), aval_of(val)
        v = self.const_index.get(key)
        if v is None:
            v = Var(aval)
            self.constvars.append(v)
            self.const_vals.append(snapshot(val) if type(val) is Tracer else val)
            self.const_index[key] = v
        return v

    def freeze_const(self, val: Any, frozen: Any) -> None:
        """``val`` (a concrete array captured as a const) is about to be updated in place:
        the constvar captured so far keeps ``frozen``, a handle on its current value, and a
        later use of ``val`` captures it anew."""
        v = self.const_index.pop(id(val), None)
        if v is not None:
            self.const_vals[self.constvars.index(v)] = frozen

    def atom(self, x: Any):
        """The IR atom standing for ``x`` in this builder."""
        t = type(x)
        if t is Tracer:
            if x.builder is self:
                return x.ir_var
            if _state.subst and x.ir_var in _state.subst:
                return self.atom(_state.subst[x.ir_var][1])
            return self.const_var(_check_enclosing(x, self))
        if t is Literal:
            return x
        if t is bool or t is int or t is float or t is complex:
            return literal(x)
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            if hasattr(x, "item") and type(x).__module__ == "numpy" and x.shape == ():
                return Literal(x.item(), ShapedArray((), dtype_name(x.dtype)))
            return self.const_var(x)
        raise TypeError(f"{type(x).__name__} is not a valid array value: {x!r}")

    def to_jaxpr(self, outs: Sequence[Any]) -> ClosedJaxpr:
        out_atoms = [self.atom(o) for o in outs]
        jaxpr = Jaxpr(self.constvars, self.invars, self.eqns, out_atoms)
        return ClosedJaxpr(jaxpr, self.const_vals)


def bind(prim, *args, **params):
    """Apply ``prim`` to ``args`` in the innermost trace; returns tracer(s)."""
    stack = _state.stack
    if not stack:
        for a in args:
            if type(a) is Tracer:
                _check_enclosing(a, None)
        raise RuntimeError(f"bind({prim.name}) outside of any trace")
    b = stack[-1]
    # (the hot path of all tracing: tracers of this builder go straight to their variable)
    atoms = [a.ir_var if type(a) is Tracer and a.builder is b else b.atom(a) for a in args]
    params = Params.make(params) if params else _NO_PARAMS
    if params.interned:  # plain params: the output types are remembered
        key = (prim, params, *[a.aval for a in atoms])
        avals = _out_avals.get(key)
        if avals is None:
            avals = _abstract_eval(prim, atoms, params)
            if len(_out_avals) < 100_000:
                _out_avals[key] = avals
    else:
        avals = _abstract_eval(prim, atoms, params)
    if not prim.multiple_results:
        (aval,) = avals
        v = Var(aval)
        b.eqns.append(Eqn(prim, atoms, params, [v]))
        return Tracer(aval, b, v)
    outs = [Var(a) for a in avals]
    b.eqns.append(Eqn(prim, atoms, params, outs))
    return [Tracer(v.aval, b, v) for v in outs]


# The output types of primitives, by (primitive, params, input types): shape rules are pure
# functions of these, and most cost more than a lookup. Bounded; cleared by clear_caches.
_out_avals: dict = {}


def clear_caches() -> None:
    _out_avals.clear()


def _abstract_eval(prim, atoms, params) -> tuple:
    try:
        return tuple(prim.abstract_eval(*[a.aval for a in atoms], **params))
    except (TypeError, ValueError) as e:
        raise _shape_rule_error(prim, e) from None


_NO_PARAMS = Params.make({})


def _shape_rule_error(prim, e: Exception) -> Exception:
    """A shape/dtype rule's error, as the user sees it: the primitive, what is wrong (the
    rule's message, which says how to fix it), and where in their code."""
    what = str(e)
    if not what.startswith(prim.name + ":"):
        what = f"{prim.name}: {what}"
    return type(e)(f"{what}\n{user_location()}")


def trace_flat(
    fun: Callable, in_avals: Sequence[ShapedArray], fun_name: str = "fun", transform: str = "trace"
) -> tuple[ClosedJaxpr, Any]:
    """Trace ``fun(*tracers)`` to a jaxpr.

    ``fun`` returns ``(flat_outputs, extra)``; ``extra`` is passed through (the API layer uses
    it for output tree structure and aux data).
    """
    if _state.stack or not trace_hooks:
        return _trace(fun, in_avals, fun_name, transform)
    _enter_outermost()
    try:
        return _trace(fun, in_avals, fun_name, transform)
    finally:
        _leave_outermost()


def _trace(fun, in_avals, fun_name, transform):
    stack = _state.stack
    b = Builder(stack[-1] if stack else None, fun_name, transform)
    stack.append(b)
    journal = []
    _state.journals.append(journal)
    try:
        tracers = [b.new_input(a) for a in in_avals]
        outs, extra = fun(*tracers)
        closed = b.to_jaxpr(outs)
    finally:
        stack.pop()
        b.alive = False
        _state.journals.pop()
        for container, key, old in reversed(journal):
            if old is ABSENT:
                dict.pop(container, key, None)
            else:
                dict.__setitem__(container, key, old)
    return closed, extra


def inline(closed: ClosedJaxpr, args: Sequence[Any]) -> list[Any]:
    """Append the equations of ``closed`` to the current trace, applied to ``args``."""
    b = _state.stack[-1]
    jaxpr = closed.jaxpr
    env: dict[Var, Any] = {}
    for v, x in zip(jaxpr.constvars, closed.consts):
        env[v] = b.atom(x)
    for v, x in zip(jaxpr.invars, args):
        env[v] = b.atom(x)
    eqns = b.eqns
    for eqn in jaxpr.eqns:
        ins = [a if type(a) is Literal else env[a] for a in eqn.inputs]
        outs = [Var(v.aval) for v in eqn.outputs]
        eqns.append(Eqn(eqn.prim, ins, eqn.params, outs))
        for v, o in zip(eqn.outputs, outs):
            env[v] = o
    results = []
    for a in jaxpr.outvars:
        a = a if type(a) is Literal else env[a]
        results.append(a if type(a) is Literal else Tracer(a.aval, b, a))
    return results


def snapshot(t: Tracer) -> Tracer:
    """A new tracer for the value ``t`` stands for now, unaffected by later in-place updates
    of ``t``."""
    return Tracer(t.aval, t.builder, t.ir_var)


def rebind(t: Tracer, new: Tracer) -> None:
    """Make the tracer object ``t`` stand for ``new``'s value from now on: an in-place update
    (``x[i] = y``, ``x += y``), which every Python alias of ``t`` sees, as with
    ``mx.array``'s ``overwrite_descriptor``. ``new`` must belong to ``t``'s builder, so that
    the update lives in the trace ``t`` belongs to (see ``autodiff/numpy/_inplace.py``)."""
    assert new.builder is t.builder, "an in-place update must stay in its tracer's trace"
    t.aval, t.ir_var = new.aval, new.ir_var


def as_tracer(x):
    """``x`` as a value user code can compute with: a rank-0 :class:`Literal` (what
    ``lax.full`` and inlined programs give for constants) becomes a tracer of the current
    trace, defined by an equation the optimiser folds back into the literal."""
    if type(x) is not Literal:
        return x
    return bind(_broadcast_in_dim, x, shape=(), broadcast_dimensions=())


def read(env: dict, a):
    return a if type(a) is Literal else env[a]

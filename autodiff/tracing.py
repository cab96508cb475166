"""Tracing: one staging tracer and nested builders.

Calling a function on :class:`Tracer` objects records every primitive it applies, through
:func:`bind`, as an equation of the innermost active :class:`Builder`. Builders nest: a
transform called inside another transform's trace opens an inner builder. A tracer of an
enclosing builder that reaches an inner one becomes a *captured input* of the inner jaxpr (one
of its consts), which is how closures over differentiated values stay correct
(``grad(lambda x: grad(lambda y: x * y)(x))``) without perturbation confusion.

Concrete arrays (``mx.array``, ``np.ndarray``) met while tracing become consts; Python scalars
become rank-0 literals.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from mlx.core import array as _MxArray

from autodiff.dtypes import dtype_name
from autodiff.errors import ConcretizationError, UnexpectedTracerError, user_location
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Params, ShapedArray, Var
from autodiff.primitives import broadcast_in_dim as _broadcast_in_dim


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


class MixedOperandError(ConcretizationError):
    """An MLX function that autodiff does not route received a traced value."""


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


def literal(x, dtype: str | None = None) -> Literal:
    """A rank-0 literal. Python scalars are weakly typed: bool, int32, float32 or complex64 by
    default."""
    if dtype is None:
        dtype = _SCALAR_AVALS[type(x)].dtype if type(x) in _SCALAR_AVALS else "float32"
    if dtype == "bool":
        x = bool(x)
    elif dtype.startswith(("int", "uint")):
        x = int(x)
    elif dtype == "complex64":
        x = complex(x)
    else:
        x = float(x)
    return Literal(x, ShapedArray((), dtype))


_SCALAR_AVALS = {
    bool: ShapedArray((), "bool"),
    int: ShapedArray((), "int32"),
    float: ShapedArray((), "float32"),
    complex: ShapedArray((), "complex64"),
}


def aval_of(x: Any) -> ShapedArray:
    """The abstract value of a tracer, a concrete array or a Python scalar."""
    t = type(x)
    if t is Tracer or t is Literal:
        return x.aval
    if t is _MxArray:
        return ShapedArray(tuple(x.shape), dtype_name(x.dtype))
    if t is bool or t is int or t is float or t is complex:
        return _SCALAR_AVALS[t]
    if isinstance(getattr(x, "aval", None), ShapedArray):  # e.g. transpose's UndefinedPrimal
        return x.aval
    try:
        return ShapedArray(tuple(x.shape), dtype_name(x.dtype))
    except AttributeError:
        raise TypeError(
            f"{t.__name__} is not a valid array type; pass mx.array, NumPy arrays or Python scalars"
        ) from None


class Tracer:
    """A value being traced: an abstract array standing for a variable of its builder.

    ``autodiff.numpy`` gives tracers the ``mx.array`` surface (operators, methods, properties).
    """

    __slots__ = ("aval", "builder", "ir_var")
    __array_priority__ = 1000  # make NumPy defer to our reflected operators

    def __init__(self, aval: ShapedArray, builder: Builder, var: Var):
        self.aval = aval
        self.builder = builder
        self.ir_var = var

    shape = property(lambda self: self.aval.shape)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)

    def alias(self) -> Tracer:
        """A new tracer object for the same value. An operation that leaves a value as it is
        (``astype`` to its own dtype, ``reshape`` to its own shape) returns an alias, not the
        tracer it was given: as with an mx.array, an in-place update (``y *= 2``) of the result
        must not change the input object (see ``autodiff/numpy/_inplace.py``)."""
        return Tracer(self.aval, self.builder, self.ir_var)

    def __len__(self):
        if not self.aval.shape:
            raise TypeError("len() of a 0-d array")
        return self.aval.shape[0]

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}>(in `{self.builder.fun_name}`)"

    def _concrete(self, what: str, instead: str):
        raise ConcretizationError(
            f"{what} of a traced array {self.aval.str_short()} {user_location()}\n"
            f"While `{self.builder.transform}` traces `{self.builder.fun_name}`, array values "
            f"are abstract: only shapes and dtypes are known. {instead}"
        )

    def _concrete_mixed(self, what: str, instead: str):
        try:
            self._concrete(what, instead)
        except ConcretizationError as e:
            raise MixedOperandError(str(e)) from None

    def __bool__(self):
        self._concrete(
            "Python control flow (`if`, `while`, `and`, `bool()`) on the value",
            "Use `autodiff.numpy.where(cond, x, y)` to choose elementwise, or pass the value as "
            "a static argument (`ad.jit(f, static_argnums=...)`) if it does not depend on what "
            "you differentiate.",
        )

    def __int__(self):
        self._concrete("int()", _STATIC_HINT)

    def __float__(self):
        self._concrete("float()", _STATIC_HINT)

    def __index__(self):
        self._concrete("Use as a Python index (int)", _STATIC_HINT)

    def __complex__(self):
        self._concrete("complex()", _STATIC_HINT)

    def item(self):
        self._concrete(".item()", _STATIC_HINT)

    def tolist(self):
        self._concrete(".tolist()", _STATIC_HINT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # A NumPy array on the left of an operator (`np_array * x`) comes here: it is
        # computed by autodiff.numpy. NumPy's functions (`np.sin(x)`) need concrete data.
        op = _NUMPY_OPERATORS.get(ufunc.__name__)
        if method == "__call__" and op is not None and len(inputs) == 2 and not kwargs:
            import autodiff.numpy as anp

            return getattr(anp, op)(*inputs)
        self._concrete(
            f"NumPy's `np.{ufunc.__name__}` called on the value",
            f"Use `autodiff.numpy.{ufunc.__name__}` (or `mx.{ufunc.__name__}`), which work on "
            "mx.arrays and traced values alike; NumPy functions need concrete data.",
        )

    def __array_function__(self, func, types, args, kwargs):
        self._concrete(
            f"NumPy's `np.{func.__name__}` called on the value",
            f"Use the `autodiff.numpy` function (e.g. `anp.{func.__name__}`), which works on "
            "mx.arrays and traced values alike; NumPy functions need concrete data.",
        )

    def __array__(self, *args, **kwargs):
        self._concrete(
            "Conversion to a NumPy array",
            "Compute with `autodiff.numpy` inside the function and convert the result after "
            "the transform returns.",
        )

    def __mlx_array__(self):
        self._concrete_mixed(
            "Conversion to mx.array (an MLX function that autodiff does not route received it)",
            "`mx.array(...)` of traced values: use `mx.stack` or `anp.array`. Calls of "
            "`mx.<fn>` are routed to autodiff while tracing, except functions bound to another "
            "name before (`from mlx.core import sin`): call them as `mx.sin`, or use "
            "`autodiff.numpy`, which mirrors mlx.core.",
        )

    def __iter__(self):
        if not self.aval.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.aval.shape[0]))

    def __hash__(self):
        raise TypeError("traced arrays are unhashable")


# NumPy ufuncs that ndarray's operators call, and the autodiff.numpy function for each.
_NUMPY_OPERATORS = {
    "add": "add",
    "subtract": "subtract",
    "multiply": "multiply",
    "true_divide": "divide",
    "divide": "divide",
    "floor_divide": "floor_divide",
    "remainder": "remainder",
    "power": "power",
    "matmul": "matmul",
    "less": "less",
    "less_equal": "less_equal",
    "greater": "greater",
    "greater_equal": "greater_equal",
    "equal": "equal",
    "not_equal": "not_equal",
    "bitwise_and": "logical_and",
    "bitwise_or": "logical_or",
    "bitwise_xor": "not_equal",
}

_STATIC_HINT = (
    "Keep it an array (use `autodiff.numpy` ops on it), or, if it does not depend on the "
    "arguments being transformed, pass it as a static argument (`ad.jit(f, static_argnums=...)`)."
)


# ---------------------------------------------------------------------------------------------


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


def as_tracer(x):
    """``x`` as a value user code can compute with: a rank-0 :class:`Literal` (what
    ``lax.full`` and inlined programs give for constants) becomes a tracer of the current
    trace, defined by an equation the optimiser folds back into the literal."""
    if type(x) is not Literal:
        return x
    return bind(_broadcast_in_dim, x, shape=(), broadcast_dimensions=())


def read(env: dict, a):
    return a if type(a) is Literal else env[a]

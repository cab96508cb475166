"""Values in a trace: :class:`Tracer`, and the avals and literals of the values a trace meets.

A tracer is an abstract array standing for a variable of its builder. ``autodiff.numpy`` gives
tracers the ``mx.array`` surface (operators, methods, properties); this module holds the class
itself and what it does where a concrete value is needed (``bool()``, ``int()``, ``.item()``,
NumPy conversion): a :class:`~autodiff.errors.ConcretizationError` that names the function and
the line, and says what to use instead. :func:`aval_of` gives the abstract value of a tracer, a
concrete array or a Python scalar, and :func:`literal` the rank-0 literal of a Python scalar.
``autodiff.tracing`` re-exports all of it; the builders tracers belong to live there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlx.core import array as _MxArray

from autodiff.dtypes import dtype_name
from autodiff.errors import ConcretizationError, user_location
from autodiff.ir import Literal, ShapedArray, Var

if TYPE_CHECKING:
    from autodiff.tracing import Builder


class MixedOperandError(ConcretizationError):
    """An MLX function that autodiff does not route received a traced value."""


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
# The avals of the other values a trace meets


def has_tracer(values) -> bool:
    """Whether ``values`` (arguments, nested in lists and tuples) hold a tracer."""
    for v in values:
        t = type(v)
        if t is Tracer or ((t is list or t is tuple) and has_tracer(v)):
            return True
    return False


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

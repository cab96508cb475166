"""The ``mx.array`` surface on tracers: operators, properties and methods.

A concrete ``mx.array`` on the left of an operator (``W @ x``) is handled by
``autodiff.routing``, which routes mlx.core to autodiff while something is traced.
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.dtypes import is_bool, is_complex, is_float
from autodiff.ir import Literal, ShapedArray
from autodiff.lower_mlx import MX_DTYPES
from autodiff.numpy import _bits as B
from autodiff.numpy import _complex as CX
from autodiff.numpy import _cumulative as C
from autodiff.numpy import _elementwise as E
from autodiff.numpy import _indexing as I
from autodiff.numpy import _layout as Y
from autodiff.numpy import _linalg as L
from autodiff.numpy import _rearrange as A
from autodiff.numpy import _reductions as R
from autodiff.numpy import _shape as S
from autodiff.numpy import _updates as U
from autodiff.numpy._core import distinct
from autodiff.numpy._inplace import update_in_place
from autodiff.tracing import Tracer, bind


def _binop(fn, prim=None):
    """Operator methods. ``prim``: the fast path for the common cases, a tracer with a tracer
    of the same type or with a Python scalar of its kind, which need no promotion."""
    fn = getattr(fn, "traced", fn)  # (self is a tracer: skip mirror's dispatch)
    if prim is None:
        return lambda self, other: fn(self, other), lambda self, other: fn(other, self)

    def fwd(self, other):
        t = type(other)
        if t is Tracer:
            if other.aval == self.aval and self.aval.dtype != "bool":
                return bind(prim, self, other)
        elif (t is float and is_float(self.aval.dtype)) or (
            t is int and not is_bool(self.aval.dtype)
        ):
            return bind(
                prim,
                self,
                Literal(
                    t(other) if t is float else _cast(other, self.aval.dtype),
                    ShapedArray((), self.aval.dtype),
                ),
            )
        return fn(self, other)

    def rev(self, other):
        t = type(other)
        if (t is float and is_float(self.aval.dtype)) or (
            t is int and not is_bool(self.aval.dtype)
        ):
            return bind(
                prim,
                Literal(
                    t(other) if t is float else _cast(other, self.aval.dtype),
                    ShapedArray((), self.aval.dtype),
                ),
                self,
            )
        return fn(other, self)

    return fwd, rev


def _cast(v: int, dtype: str):
    if is_complex(dtype):
        return complex(v)
    return float(v) if is_float(dtype) else v


_OPERATORS = {
    "add": E.add,
    "sub": E.subtract,
    "mul": E.multiply,
    "truediv": E.divide,
    "floordiv": E.floor_divide,
    "mod": E.remainder,
    "pow": E.power,
    "matmul": L.matmul,
    # bitwise for integers, logical for booleans, a TypeError for floats: as MLX's operators
    "and": B.bitwise_and,
    "or": B.bitwise_or,
    "xor": B.bitwise_xor,
    "lshift": B.left_shift,
    "rshift": B.right_shift,
}
_FAST = {"add": P.add, "sub": P.sub, "mul": P.mul, "pow": P.pow_}
for _name, _fn in _OPERATORS.items():
    _fwd, _rev = _binop(_fn, _FAST.get(_name))
    setattr(Tracer, f"__{_name}__", _fwd)
    setattr(Tracer, f"__r{_name}__", _rev)
for _name, _fn in {
    "lt": E.less,
    "le": E.less_equal,
    "gt": E.greater,
    "ge": E.greater_equal,
    "eq": E.equal,
    "ne": E.not_equal,
}.items():
    setattr(Tracer, f"__{_name}__", (lambda f: lambda self, other: f(self, other))(_fn))

Tracer.__neg__ = lambda self: E.negative(self)
Tracer.__pos__ = lambda self: self.alias()
Tracer.__abs__ = lambda self: E.abs(self)
Tracer.__invert__ = lambda self: B.bitwise_invert(self)
Tracer.__getitem__ = lambda self, idx: I.getitem(self, idx)


def _setitem(self, idx, value):
    """``x[idx] = value``: in place, as on an mx.array (see ``autodiff/numpy/_inplace.py``)."""
    update_in_place(self, lambda: U.update(self, idx, value, "set"), "x[idx] = y")


def _inplace_operator(name, fn):
    def op(self, other):
        if name == "truediv" and not is_float(self.aval.dtype):
            raise ValueError("In place division cannot cast to non-floating point type.")
        return update_in_place(self, lambda: fn(self, other), f"x {_SYMBOLS[name]}= y")

    op.__name__ = f"__i{name}__"
    op.__doc__ = f"``x {_SYMBOLS[name]}= y`` in place, as on an mx.array (``_inplace.py``)."
    return op


_SYMBOLS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "matmul": "@",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lshift": "<<",
    "rshift": ">>",
}
Tracer.__setitem__ = _setitem
for _name in _OPERATORS:
    setattr(Tracer, f"__i{_name}__", _inplace_operator(_name, getattr(Tracer, f"__{_name}__")))
Tracer.dtype = property(lambda self: MX_DTYPES[self.aval.dtype])
Tracer.itemsize = property(lambda self: self.dtype.size)
Tracer.nbytes = property(lambda self: self.dtype.size * self.aval.size)
Tracer.T = property(lambda self: S.transpose(self))
Tracer.mT = property(lambda self: Y.matrix_transpose(self))
# A copy is a new object for the same value (copy.deepcopy of a pytree of tracers must not
# copy the trace they belong to), which an in-place update changes alone, as MLX's copies.
Tracer.__copy__ = lambda self: self.alias()
Tracer.__deepcopy__ = lambda self, memo: self.alias()


def _array_namespace(self, api_version=None):
    import autodiff.numpy

    return autodiff.numpy


Tracer.__array_namespace__ = _array_namespace
Tracer.at = property(lambda self: U._AtIndexer(self))
Tracer.real = property(lambda self: CX.real(self))
Tracer.imag = property(lambda self: CX.imag(self))


def _shape_args(args):
    return tuple(args[0]) if len(args) == 1 and not isinstance(args[0], int) else tuple(args)


# (methods that may leave the value as it is return a new tracer object: see Tracer.alias)
Tracer.reshape = lambda self, *shape: distinct(S.reshape(self, _shape_args(shape)), (self,))
Tracer.transpose = lambda self, *axes: distinct(
    S.transpose(self, _shape_args(axes) if axes else None), (self,)
)
Tracer.astype = lambda self, dtype, stream=None: distinct(S.astype(self, dtype), (self,))
Tracer.view = lambda self, dtype, stream=None: distinct(B.view(self, dtype), (self,))
for _name, _fn in {
    "sum": R.sum,
    "mean": R.mean,
    "max": R.max,
    "min": R.min,
    "prod": R.prod,
    "var": R.var,
    "std": R.std,
    "all": R.all,
    "any": R.any,
    "argmax": R.argmax,
    "argmin": R.argmin,
    "cumsum": C.cumsum,
    "cumprod": C.cumprod,
    "cummax": C.cummax,
    "cummin": C.cummin,
    "logcumsumexp": C.logcumsumexp,
    "logsumexp": R.logsumexp,
    "squeeze": S.squeeze,
    "diag": A.diag,
    "diagonal": A.diagonal,
    "flatten": S.flatten,
    "swapaxes": S.swapaxes,
    "moveaxis": S.moveaxis,
    "split": S.split,
    "square": E.square,
    "sqrt": E.sqrt,
    "rsqrt": E.rsqrt,
    "exp": E.exp,
    "log": E.log,
    "log1p": E.log1p,
    "log2": E.log2,
    "log10": E.log10,
    "sin": E.sin,
    "cos": E.cos,
    "abs": E.abs,
    "round": E.round,
    "reciprocal": E.reciprocal,
    "conj": CX.conj,
}.items():
    setattr(
        Tracer, _name, (lambda f: lambda self, *a, **k: distinct(f(self, *a, **k), (self,)))(_fn)
    )

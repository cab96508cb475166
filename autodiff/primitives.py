"""The core primitives, each with its shape/dtype rule; the families in ``autodiff/ops/``
define more with :func:`def_primitive`. ``autodiff/extend.py`` has the checklist for adding one.

Each primitive is bound by name, one per line (``sin = _unary_float("sin")``): the module
attribute is the primitive's name (with a trailing ``_`` where the name is a Python keyword or
builtin), which a test checks. Primitives belong to families so that one line registers a rule
for many of them (every elementwise primitive batches the same way, for example). Shape rules
take avals and params and return the output avals; they raise ``TypeError`` for ill-typed
operands and ``ValueError`` for bad params, and ``bind`` reports them in the user's terms.

Conventions (as in ``jax.lax``): binary elementwise primitives take operands of equal shape and
dtype, except that a rank-0 literal may stand for a filled array; ``autodiff.numpy`` inserts the
explicit ``broadcast_in_dim`` and ``convert`` equations, so no rule ever has to unbroadcast.

This module holds the registry and the elementwise primitives; the shape, indexing, reduction
and contraction ones are in ``autodiff/primitives_structural.py``, re-exported here.
"""

from __future__ import annotations

from autodiff.dtypes import is_bool, is_complex, is_float, is_inexact, real_dtype


class Primitive:
    """A primitive operation. ``bind`` lives in ``autodiff.tracing``."""

    __slots__ = ("name", "family", "abstract_eval", "multiple_results")

    def __init__(self, name: str, family: str, abstract_eval, multiple_results: bool = False):
        self.name = name
        self.family = family
        self.abstract_eval = abstract_eval
        self.multiple_results = multiple_results

    def __repr__(self):
        return self.name


PRIMITIVES: dict[str, Primitive] = {}


def def_primitive(name: str, family: str, rule, multiple_results: bool = False) -> Primitive:
    """Define and register a primitive.

    Args:
        name: its name in jaxprs, unique.
        family: rules may be shared by family ("unary", "binary", "compare", "select",
            "convert", "shape", "indexing", "reduce", ..., or the family module's own name).
        rule: the shape/dtype rule, ``rule(*avals, **params) -> [out avals]``.
        multiple_results: the equation has a list of outputs (sort with indices, qr, ...).
    """
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is already defined")
    prim = Primitive(name, family, rule, multiple_results)
    PRIMITIVES[name] = prim
    return prim


def family(name: str) -> list[Primitive]:
    """The primitives of a family, in definition order."""
    return [p for p in PRIMITIVES.values() if p.family == name]


_def = def_primitive


# ---------------------------------------------------------------------------------------------
# Elementwise


def _unary(kind_ok, what):
    def rule(x, **_):
        if not kind_ok(x.dtype):
            raise TypeError(f"expects {what} operand, got {x.str_short()}")
        return [x]

    return rule


def _is_numeric(d):
    return not is_bool(d)


def _binary_operands(x, y):
    if x.dtype != y.dtype:
        raise TypeError(f"operand dtypes differ: {x.str_short()} and {y.str_short()}")
    if x.shape == y.shape or y.shape == ():
        return x
    if x.shape == ():
        return y
    raise TypeError(f"operand shapes differ: {x.str_short()} and {y.str_short()}")


def _binary(kind_ok, what, out_dtype=None):
    def rule(x, y, **_):
        out = _binary_operands(x, y)
        if not kind_ok(out.dtype):
            raise TypeError(f"expects {what} operands, got {out.str_short()}")
        return [out.update(dtype=out_dtype)]

    return rule


_float_rule = _unary(is_float, "a floating-point")
_inexact_rule = _unary(is_inexact, "a floating-point or complex")
_numeric_rule = _unary(_is_numeric, "a numeric")


def _unary_float(name):
    return _def(name, "unary", _float_rule)


def _unary_inexact(name):
    """Float or complex (MLX has complex kernels and the JVP rule is holomorphic)."""
    return _def(name, "unary", _inexact_rule)


def _unary_numeric(name):
    return _def(name, "unary", _numeric_rule)


sqrt = _unary_inexact("sqrt")
rsqrt = _unary_inexact("rsqrt")
exp = _unary_inexact("exp")
expm1 = _unary_float("expm1")
log = _unary_inexact("log")
log1p = _unary_inexact("log1p")
log2 = _unary_inexact("log2")
log10 = _unary_inexact("log10")
sin = _unary_inexact("sin")
cos = _unary_inexact("cos")
tan = _unary_inexact("tan")
arcsin = _unary_inexact("arcsin")
arccos = _unary_inexact("arccos")
arctan = _unary_inexact("arctan")
sinh = _unary_inexact("sinh")
cosh = _unary_inexact("cosh")
tanh = _unary_inexact("tanh")
arcsinh = _unary_inexact("arcsinh")
arccosh = _unary_float("arccosh")
arctanh = _unary_inexact("arctanh")
sigmoid = _unary_float("sigmoid")
erf = _unary_float("erf")
erfinv = _unary_float("erfinv")
floor = _unary_float("floor")
ceil = _unary_float("ceil")
round_ = _unary_inexact("round")
neg = _unary_numeric("neg")


def _abs_rule(x):
    if is_bool(x.dtype):
        raise TypeError(f"expects a numeric operand, got {x.str_short()}")
    return [x.update(dtype=real_dtype(x.dtype))]  # |complex| is real


abs_ = _def("abs", "unary", _abs_rule)
sign = _unary_numeric("sign")
square = _unary_numeric("square")
reciprocal = _unary_numeric("reciprocal")
logical_not = _def("logical_not", "unary", _unary(is_bool, "a boolean"))
stop_gradient = _def("stop_gradient", "unary", _unary(lambda d: True, "any"))

# add/mul/max/min also take booleans (logical or/and, as in NumPy and JAX).
_any_binary = _binary(lambda d: True, "any")
_numeric_binary = _binary(_is_numeric, "numeric")
add = _def("add", "binary", _any_binary)
mul = _def("mul", "binary", _any_binary)
max_ = _def("max", "binary", _any_binary)
min_ = _def("min", "binary", _any_binary)
sub = _def("sub", "binary", _numeric_binary)
div = _def("div", "binary", _numeric_binary)
pow_ = _def("pow", "binary", _numeric_binary)
rem = _def("rem", "binary", _binary(lambda d: _is_numeric(d) and not is_complex(d), "real"))
arctan2 = _def("arctan2", "binary", _binary(is_float, "floating-point"))
_compare = _binary(lambda d: True, "any", "bool")
eq = _def("eq", "compare", _compare)
ne = _def("ne", "compare", _compare)
lt = _def("lt", "compare", _compare)
le = _def("le", "compare", _compare)
gt = _def("gt", "compare", _compare)
ge = _def("ge", "compare", _compare)
_logical = _binary(is_bool, "boolean")
logical_and = _def("logical_and", "binary", _logical)
logical_or = _def("logical_or", "binary", _logical)


def _select_rule(pred, on_true, on_false):
    if not is_bool(pred.dtype):
        raise TypeError(f"predicate must be boolean, got {pred.str_short()}")
    out = _binary_operands(on_true, on_false)
    if pred.shape not in (out.shape, ()):
        raise TypeError(f"predicate shape {pred.shape} does not match operands {out.shape}")
    return [out]


select = _def("select", "select", _select_rule)


def _convert_rule(x, *, new_dtype):
    return [x.update(dtype=new_dtype)]


convert = _def("convert", "convert", _convert_rule)

# The shape, indexing, reduction and contraction primitives, defined after the elementwise
# ones (the order of PRIMITIVES); they live in autodiff/primitives_structural.py.
from autodiff.primitives_structural import (  # noqa: E402, F401  (re-exported)
    argmax,
    argmin,
    broadcast_in_dim,
    concatenate,
    cumsum,
    dot_general,
    expand_dims,
    iota,
    pad,
    reduce_max,
    reduce_min,
    reduce_prod,
    reduce_sum,
    reshape,
    scatter_add,
    slice_,
    squeeze,
    take,
    take_along_axis,
    transpose,
)

ELEMENTWISE_FAMILIES = frozenset(("unary", "binary", "compare", "select", "convert"))


def is_elementwise(prim: Primitive) -> bool:
    return prim.family in ELEMENTWISE_FAMILIES

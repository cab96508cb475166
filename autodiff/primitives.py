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
"""

from __future__ import annotations

from autodiff.dtypes import is_bool, is_complex, is_float, is_inexact, is_int, real_dtype
from autodiff.ir import ShapedArray


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

# ---------------------------------------------------------------------------------------------
# Shape


def _check_axes(prim, axes, ndim, unique=True):
    for a in axes:
        if not 0 <= a < ndim:
            raise ValueError(f"{prim}: axis {a} out of range for rank {ndim}")
    if unique and len(set(axes)) != len(axes):
        raise ValueError(f"{prim}: repeated axis in {axes}")


def _broadcast_in_dim_rule(x, *, shape, broadcast_dimensions):
    if len(broadcast_dimensions) != x.ndim:
        raise ValueError(f"broadcast_in_dim: {x.ndim} operand dims but {broadcast_dimensions}")
    _check_axes("broadcast_in_dim", broadcast_dimensions, len(shape))
    if list(broadcast_dimensions) != sorted(broadcast_dimensions):
        raise ValueError("broadcast_in_dim: broadcast_dimensions must be increasing")
    for d, od in zip(x.shape, broadcast_dimensions):
        if d not in (1, shape[od]):
            raise ValueError(f"broadcast_in_dim: cannot broadcast {x.shape} to {shape}")
    return [ShapedArray(shape, x.dtype)]


def _reshape_rule(x, *, new_sizes):
    n = 1
    for d in new_sizes:
        n *= d
    if n != x.size:
        raise ValueError(f"reshape: cannot reshape {x.str_short()} to {new_sizes}")
    return [x.update(shape=new_sizes)]


def _transpose_rule(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ValueError(f"transpose: {permutation} is not a permutation of {x.ndim} axes")
    return [x.update(shape=tuple(x.shape[p] for p in permutation))]


def _squeeze_rule(x, *, dimensions):
    _check_axes("squeeze", dimensions, x.ndim)
    if any(x.shape[d] != 1 for d in dimensions):
        raise ValueError(f"squeeze: dimensions {dimensions} of {x.shape} are not all 1")
    return [x.update(shape=tuple(d for i, d in enumerate(x.shape) if i not in dimensions))]


def _expand_dims_rule(x, *, dimensions):
    ndim = x.ndim + len(dimensions)
    _check_axes("expand_dims", dimensions, ndim)
    it = iter(x.shape)
    return [x.update(shape=tuple(1 if i in dimensions else next(it) for i in range(ndim)))]


def _slice_rule(x, *, start_indices, limit_indices, strides):
    if not len(start_indices) == len(limit_indices) == len(strides) == x.ndim:
        raise ValueError("slice: start, limit and strides must have one entry per axis")
    shape = []
    for d, s, e, st in zip(x.shape, start_indices, limit_indices, strides):
        if not (0 <= s <= e <= d and st >= 1):
            raise ValueError(f"slice: bad bounds {start_indices}:{limit_indices} for {x.shape}")
        shape.append(max(0, (e - s + st - 1) // st))
    return [x.update(shape=tuple(shape))]


def _pad_rule(x, padval, *, padding_config):
    if padval.shape != () or padval.dtype != x.dtype:
        raise TypeError(f"pad: padding value must be a scalar {x.dtype}, got {padval}")
    if len(padding_config) != x.ndim:
        raise ValueError("pad: one (low, high, interior) per axis")
    shape = []
    for d, (lo, hi, interior) in zip(x.shape, padding_config):
        if lo < 0 or hi < 0 or interior < 0:
            raise ValueError("pad: padding must be non-negative")
        shape.append(lo + hi + d + max(0, d - 1) * interior)
    return [x.update(shape=tuple(shape))]


def _concatenate_rule(*xs, dimension):
    x0 = xs[0]
    _check_axes("concatenate", (dimension,), x0.ndim)
    for x in xs[1:]:
        same = [d for i, d in enumerate(x.shape) if i != dimension]
        if x.dtype != x0.dtype or same != [d for i, d in enumerate(x0.shape) if i != dimension]:
            raise TypeError(f"concatenate: incompatible operands {x0} and {x}")
    size = sum(x.shape[dimension] for x in xs)
    return [x0.update(shape=x0.shape[:dimension] + (size,) + x0.shape[dimension + 1 :])]


broadcast_in_dim = _def("broadcast_in_dim", "shape", _broadcast_in_dim_rule)
reshape = _def("reshape", "shape", _reshape_rule)
transpose = _def("transpose", "shape", _transpose_rule)
squeeze = _def("squeeze", "shape", _squeeze_rule)
expand_dims = _def("expand_dims", "shape", _expand_dims_rule)
slice_ = _def("slice", "shape", _slice_rule)
pad = _def("pad", "shape", _pad_rule)
concatenate = _def("concatenate", "shape", _concatenate_rule)


def _iota_rule(*, dtype, shape, dimension):
    if not 0 <= dimension < len(shape):
        raise ValueError(f"iota: dimension {dimension} out of range for shape {shape}")
    return [ShapedArray(shape, dtype)]


iota = _def("iota", "shape", _iota_rule)

# ---------------------------------------------------------------------------------------------
# Indexing


def _check_index(prim, idx):
    if not is_int(idx.dtype):
        raise TypeError(f"{prim}: indices must be integers, got {idx.str_short()}")


def _take_rule(x, idx, *, axis):
    _check_index("take", idx)
    _check_axes("take", (axis,), x.ndim)
    return [x.update(shape=x.shape[:axis] + idx.shape + x.shape[axis + 1 :])]


def _take_along_axis_rule(x, idx, *, axis):
    _check_index("take_along_axis", idx)
    _check_axes("take_along_axis", (axis,), x.ndim)
    if idx.ndim != x.ndim or any(
        a != b for i, (a, b) in enumerate(zip(idx.shape, x.shape)) if i != axis
    ):
        raise TypeError(f"take_along_axis: indices {idx} do not match operand {x} off axis {axis}")
    return [x.update(shape=idx.shape)]


def _scatter_add_rule(x, idx, updates, *, axis):
    (expected,) = _take_rule(x, idx, axis=axis)
    if updates != expected:
        raise TypeError(f"scatter_add: updates must be {expected}, got {updates}")
    return [x]


take = _def("take", "indexing", _take_rule)
take_along_axis = _def("take_along_axis", "indexing", _take_along_axis_rule)
scatter_add = _def("scatter_add", "indexing", _scatter_add_rule)

# ---------------------------------------------------------------------------------------------
# Reductions and scans


def _reduce_rule(x, *, axes):
    _check_axes("reduce", axes, x.ndim)
    return [x.update(shape=tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _arg_reduce_rule(x, *, axis):
    _check_axes("argmax/argmin", (axis,), x.ndim)
    if x.shape[axis] == 0:
        raise ValueError("argmax/argmin of an empty axis")
    return [ShapedArray(x.shape[:axis] + x.shape[axis + 1 :], "int32")]


def _cumulative_rule(x, *, axis, reverse):
    _check_axes("cumsum", (axis,), x.ndim)
    return [x]


reduce_sum = _def("reduce_sum", "reduce", _reduce_rule)
reduce_max = _def("reduce_max", "reduce", _reduce_rule)
reduce_min = _def("reduce_min", "reduce", _reduce_rule)
reduce_prod = _def("reduce_prod", "reduce", _reduce_rule)
argmax = _def("argmax", "arg_reduce", _arg_reduce_rule)
argmin = _def("argmin", "arg_reduce", _arg_reduce_rule)
cumsum = _def("cumsum", "cumulative", _cumulative_rule)

# ---------------------------------------------------------------------------------------------
# Contraction


def _dot_general_rule(x, y, *, dimension_numbers):
    (xc, yc), (xb, yb) = dimension_numbers
    if x.dtype != y.dtype:
        raise TypeError(f"dot_general: operand dtypes differ: {x} and {y}")
    _check_axes("dot_general", xc + xb, x.ndim)
    _check_axes("dot_general", yc + yb, y.ndim)
    if len(xc) != len(yc) or len(xb) != len(yb):
        raise ValueError(f"dot_general: mismatched dimension numbers {dimension_numbers}")
    for a, b in list(zip(xc, yc)) + list(zip(xb, yb)):
        if x.shape[a] != y.shape[b]:
            raise TypeError(f"dot_general: cannot contract {x} with {y} by {dimension_numbers}")
    batch = tuple(x.shape[a] for a in xb)
    x_free = tuple(d for i, d in enumerate(x.shape) if i not in xc + xb)
    y_free = tuple(d for i, d in enumerate(y.shape) if i not in yc + yb)
    return [x.update(shape=batch + x_free + y_free)]


dot_general = _def("dot_general", "contraction", _dot_general_rule)

ELEMENTWISE_FAMILIES = frozenset(("unary", "binary", "compare", "select", "convert"))


def is_elementwise(prim: Primitive) -> bool:
    return prim.family in ELEMENTWISE_FAMILIES

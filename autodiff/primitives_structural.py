"""The core primitives that are not elementwise, each with its shape/dtype rule: shape
(``broadcast_in_dim``, ``reshape``, ``transpose``, ``slice``, ``pad``, ``concatenate``,
``iota``, ...), indexing (``take``, ``take_along_axis``, ``scatter_add``), reductions and scans
(``reduce_sum`` and the rest, ``argmax``/``argmin``, ``cumsum``) and contraction
(``dot_general``). Defined after the elementwise ones and re-exported by
``autodiff/primitives.py``, whose docstring states the conventions; import them from there.
"""

from __future__ import annotations

from autodiff.dtypes import is_int
from autodiff.ir import ShapedArray
from autodiff.primitives import def_primitive

_def = def_primitive


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

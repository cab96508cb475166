"""Reference semantics: evaluate any jaxpr with NumPy, floating point in float64.

This is the oracle for tests and for finite differences (``autodiff.testing``), not a user
path. Every float dtype is computed in float64, and complex64 in complex128, so that rounding
never decides a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff import primitives as P
from autodiff.dtypes import is_complex, is_float, is_int
from autodiff.ir import ClosedJaxpr, Literal, ShapedArray

impls: dict[P.Primitive, Callable] = {}


def np_dtype(dtype: str):
    """The NumPy dtype the interpreter computes ``dtype`` in."""
    if is_float(dtype):
        return np.float64
    return np.complex128 if is_complex(dtype) else np.dtype(dtype)


def to_numpy(x: Any, dtype: str | None = None) -> np.ndarray:
    """A float64 (complex128, integer, bool) NumPy array from an mx.array, NumPy array or
    scalar."""
    if hasattr(x, "dtype") and "bfloat16" in str(x.dtype):
        x = x.astype(_mx_float32())
    a = np.asarray(x)
    if dtype is not None:
        return a.astype(np_dtype(dtype))
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def _mx_float32():
    import mlx.core as mx

    return mx.float32


_erf = np.vectorize(math.erf, otypes=[np.float64])


_erfc = np.vectorize(math.erfc, otypes=[np.float64])
# Giles' single-precision approximation ("Approximating the erfinv function", 2010): the
# polynomials in w = -log(1 - y^2) below and above w = 5.
_GILES_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_GILES_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)


def _erfinv(y):
    y = np.asarray(y, np.float64)
    inside = np.abs(y) < 1
    a = np.where(inside, np.abs(y), 0.5)
    w = -np.log((1.0 - a) * (1.0 + a))
    central = np.polyval(_GILES_CENTRAL, w - 2.5)
    tail = np.polyval(_GILES_TAIL, np.sqrt(w) - 3.0)
    x = a * np.where(w < 5.0, central, tail)  # within ~1e-7 of erfinv(a)
    # Newton steps refine it to float64: on erf(x) = a near 0, on erfc(x) = 1 - a (free of
    # cancellation) near 1; beyond float32's range (1 - y < 6e-8) the guess is rougher, and
    # Newton on the convex erfc approaches the root monotonically
    for _ in range(12):
        residual = np.where(a < 0.5, _erf(x) - a, (1.0 - a) - _erfc(x))
        x = x - residual / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    edge = np.where(np.abs(y) == 1, np.copysign(np.inf, y), np.nan)
    return np.where(inside, np.copysign(x, y), edge)


def _sigmoid(x):
    return np.where(
        x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))
    )


_UNARY = {
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arcsinh": np.arcsinh,
    "arccosh": np.arccosh,
    "arctanh": np.arctanh,
    "sigmoid": _sigmoid,
    "erf": _erf,
    "erfinv": _erfinv,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "neg": np.negative,
    "abs": np.abs,
    "sign": np.sign,
    "square": np.square,
    "reciprocal": lambda x: 1 / x,
    "logical_not": np.logical_not,
    "stop_gradient": lambda x: x,
}
_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "rem": np.remainder,
    "arctan2": np.arctan2,
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
}

for _p in P.PRIMITIVES.values():
    if _p.name in _UNARY:
        impls[_p] = (lambda f: lambda x, **_: f(x))(_UNARY[_p.name])
    elif _p.name in _BINARY:
        impls[_p] = (lambda f: lambda x, y, **_: f(x, y))(_BINARY[_p.name])

impls[P.div] = lambda x, y: np.floor_divide(x, y) if x.dtype.kind in "iu" else np.divide(x, y)
impls[P.select] = lambda p, x, y: np.where(p, x, y)


def _convert(x, new_dtype):
    if x.dtype.kind == "c" and not is_complex(new_dtype):
        x = np.real(x)  # MLX's astype keeps the real part, as NumPy does (with a warning)
    if is_int(new_dtype) and x.dtype.kind == "f":
        x = np.trunc(x)
    return x.astype(np_dtype(new_dtype))


impls[P.convert] = _convert


def _broadcast_in_dim(x, shape, broadcast_dimensions):
    inter = [1] * len(shape)
    for d, od in zip(x.shape, broadcast_dimensions):
        inter[od] = d
    return np.broadcast_to(x.reshape(inter), shape)


def _slice(x, start_indices, limit_indices, strides):
    return x[tuple(slice(s, e, st) for s, e, st in zip(start_indices, limit_indices, strides))]


def _pad(x, padval, padding_config):
    shape = [lo + hi + d + max(0, d - 1) * i for d, (lo, hi, i) in zip(x.shape, padding_config)]
    out = np.full(shape, padval, dtype=x.dtype)
    idx = tuple(
        slice(lo, lo + (d - 1) * (i + 1) + 1 if d else lo, i + 1)
        for d, (lo, _, i) in zip(x.shape, padding_config)
    )
    out[idx] = x
    return out


def _scatter_add(x, idx, updates, axis):
    out = np.array(x, copy=True)
    np.add.at(out, (slice(None),) * axis + (idx,), updates)
    return out


def _dot_general(x, y, dimension_numbers):
    (xc, yc), (xb, yb) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    xs = [next(letters) for _ in range(x.ndim)]
    ys = [next(letters) for _ in range(y.ndim)]
    for a, b in zip(xc + xb, yc + yb):
        ys[b] = xs[a]
    out = [xs[a] for a in xb] + [s for i, s in enumerate(xs) if i not in xc + xb]
    out += [s for i, s in enumerate(ys) if i not in yc + yb]
    return np.einsum(f"{''.join(xs)},{''.join(ys)}->{''.join(out)}", x, y)


def _cumsum(x, axis, reverse):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis), axis)
    return np.cumsum(x, axis)


impls[P.broadcast_in_dim] = _broadcast_in_dim
impls[P.reshape] = lambda x, new_sizes: np.reshape(x, new_sizes)
impls[P.transpose] = lambda x, permutation: np.transpose(x, permutation)
impls[P.squeeze] = lambda x, dimensions: np.squeeze(x, tuple(dimensions))
impls[P.expand_dims] = lambda x, dimensions: np.expand_dims(x, tuple(dimensions))
impls[P.slice_] = _slice
impls[P.pad] = _pad
impls[P.concatenate] = lambda *xs, dimension: np.concatenate(xs, axis=dimension)


def _iota(dtype, shape, dimension):
    inter = [1] * len(shape)
    inter[dimension] = shape[dimension]
    return np.broadcast_to(np.arange(shape[dimension]).reshape(inter), shape).astype(
        np_dtype(dtype)
    )


impls[P.iota] = _iota
impls[P.take] = lambda x, idx, axis: np.take(x, idx, axis=axis)
impls[P.take_along_axis] = lambda x, idx, axis: np.take_along_axis(x, idx, axis=axis)
impls[P.scatter_add] = _scatter_add
impls[P.reduce_sum] = lambda x, axes: np.sum(x, axis=axes)
impls[P.reduce_max] = lambda x, axes: np.max(x, axis=axes)
impls[P.reduce_min] = lambda x, axes: np.min(x, axis=axes)
impls[P.reduce_prod] = lambda x, axes: np.prod(x, axis=axes)
impls[P.argmax] = lambda x, axis: np.argmax(x, axis=axis).astype(np.int32)
impls[P.argmin] = lambda x, axis: np.argmin(x, axis=axis).astype(np.int32)
impls[P.cumsum] = _cumsum
impls[P.dot_general] = _dot_general


def eval_eqn(
    prim: P.Primitive, args: Sequence[np.ndarray], params, out_avals: Sequence[ShapedArray]
):
    with np.errstate(all="ignore"):
        out = impls[prim](*args, **params)
    outs = out if prim.multiple_results else [out]
    return [
        np.asarray(o, dtype=np_dtype(a.dtype)).reshape(a.shape) for o, a in zip(outs, out_avals)
    ]


# Primitives whose result jumps at rounding boundaries (quantizers): their float inputs are
# first rounded to the dtype they have in the program, as the device computes them, since a
# float64 value just across a boundary would quantize to a neighbouring code.
round_inputs: set = set()


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` (float64) rounded to ``dtype``'s precision, returned in float64."""
    if dtype == "float32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":  # round to nearest even on the upper 16 bits of float32
        bits = np.asarray(x, np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.view(np.float32).astype(np.float64)
    return x


def interpret(closed: ClosedJaxpr, *args) -> list[np.ndarray]:
    """Evaluate ``closed`` on NumPy values (floats in float64); returns a list of arrays."""
    jaxpr = closed.jaxpr
    env: dict = {}

    def read(a):
        if type(a) is Literal:
            return np.asarray(a.val, dtype=np_dtype(a.aval.dtype))
        return env[a]

    for v, x in zip(jaxpr.constvars, closed.consts):
        env[v] = to_numpy(x, v.aval.dtype)
    for v, x in zip(jaxpr.invars, args):
        env[v] = to_numpy(x, v.aval.dtype)
    for eqn in jaxpr.eqns:
        ins = [read(a) for a in eqn.inputs]
        if eqn.prim in round_inputs:
            ins = [round_to(x, a.aval.dtype) for x, a in zip(ins, eqn.inputs)]
        outs = eval_eqn(eqn.prim, ins, eqn.params, [v.aval for v in eqn.outputs])
        env.update(zip(eqn.outputs, outs))
    return [read(a) for a in jaxpr.outvars]

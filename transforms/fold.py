"""Constant folding of elementwise equations on rank-0 literals, for the optimiser.

Separate from the float64 reference interpreter (``autodiff.interpret``) on purpose: folding
computes in the literal's own dtype, as the lowered program would, and the oracle can change
without touching the optimiser. Primitives without a NumPy counterpart here are not folded.
"""

from __future__ import annotations

import math

import numpy as np

from autodiff import primitives as P
from autodiff.dtypes import is_complex, is_float, is_int
from autodiff.ir import Literal, ShapedArray

# Primitive names whose NumPy function has another name; the rest are NumPy's names.
_NUMPY_NAME = {
    "neg": "negative",
    "sub": "subtract",
    "mul": "multiply",
    "pow": "power",
    "max": "maximum",
    "min": "minimum",
    "rem": "remainder",
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
}
_SPECIAL = {
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "reciprocal": lambda x: 1 / x,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": lambda x: np.asarray(math.erf(x), x.dtype),
    "stop_gradient": lambda x: x,
    "div": lambda x, y: np.floor_divide(x, y) if x.dtype.kind in "iu" else np.divide(x, y),
    "select": lambda p, x, y: np.where(p, x, y),
}
_FOLDABLE = frozenset(("unary", "binary", "compare", "select", "convert"))


def _np_dtype(dtype: str):
    # NumPy has no bfloat16: fold it in float32 and round on the way out.
    return np.float32 if dtype == "bfloat16" else np.dtype(dtype)


def fold(prim: P.Primitive, ins: list[Literal], params, out: ShapedArray) -> Literal | None:
    """The literal an equation on literals evaluates to, or None if it is not folded."""
    if out.shape != () or prim.family not in _FOLDABLE:
        return None
    if prim is P.convert:
        fn = lambda x: np.real(x) if is_complex(ins[0].aval.dtype) else x
    else:
        fn = _SPECIAL.get(prim.name) or getattr(np, _NUMPY_NAME.get(prim.name, prim.name), None)
        if fn is None:
            return None
    args = [np.asarray(a.val, _np_dtype(a.aval.dtype)) for a in ins]
    with np.errstate(all="ignore"):
        val = np.asarray(fn(*args))
    if is_int(out.dtype) and val.dtype.kind == "f":
        val = np.trunc(val)
    val = val.astype(_np_dtype(out.dtype))
    if out.dtype == "bfloat16":  # round to bfloat16's 8 significant bits
        val = np.asarray(val, np.float32).view(np.uint32)
        val = ((val + 0x7FFF + ((val >> 16) & 1)) & 0xFFFF0000).view(np.float32)
    v = val.item()
    return Literal(float(v) if is_float(out.dtype) else v, out)

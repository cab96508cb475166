"""Bit manipulation: bitwise and/or/xor/invert, shifts, ``view`` and the fp8 codecs, with
MLX's semantics for every dtype (booleans: logical operations, shifted as uint8; floats: a
TypeError). None of them is differentiable (``view``'s derivative is zero)."""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_bool
from autodiff.numpy._core import astype, dtype_name, mirror, promote
from autodiff.tracing import aval_of


def _bitwise(mx_fn, int_fn, bool_fn):
    @mirror(mx_fn)
    def f(a, b):
        a, b = promote(a, b)
        return (bool_fn if is_bool(aval_of(a).dtype) else int_fn)(a, b)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = (
        f"Elementwise ``{mx_fn.__name__}`` of integers (logical for booleans) with broadcasting, "
        f"as ``mx.{mx_fn.__name__}``."
    )
    return f


bitwise_and = _bitwise(mx.bitwise_and, lax.bitwise_and, lax.logical_and)
bitwise_or = _bitwise(mx.bitwise_or, lax.bitwise_or, lax.logical_or)
bitwise_xor = _bitwise(mx.bitwise_xor, lax.bitwise_xor, lax.ne)


@mirror(mx.bitwise_invert)
def bitwise_invert(a):
    """Elementwise ``~a`` of integers (logical not for booleans), as ``mx.bitwise_invert``."""
    return (lax.logical_not if is_bool(aval_of(a).dtype) else lax.bitwise_invert)(a)


def _shift(mx_fn, lax_fn):
    @mirror(mx_fn)
    def f(a, b):
        a, b = promote(a, b)
        if is_bool(aval_of(a).dtype):  # MLX shifts booleans as uint8
            a, b = astype(a, "uint8"), astype(b, "uint8")
        return lax_fn(a, b)

    f.__name__ = f.__qualname__ = mx_fn.__name__
    f.__doc__ = (
        f"Elementwise ``{mx_fn.__name__}`` of integers with broadcasting, as "
        f"``mx.{mx_fn.__name__}`` (booleans are shifted as uint8). Shifting by a negative "
        "amount or by the operand's width or more is undefined, as in MLX."
    )
    return f


left_shift = bitwise_left_shift = _shift(mx.left_shift, lax.left_shift)
right_shift = bitwise_right_shift = _shift(mx.right_shift, lax.right_shift)


@mirror(mx.view)
def view(a, dtype):
    """The bits of ``a`` reinterpreted as ``dtype``, as ``mx.view``: the last axis is rescaled
    when the dtypes' sizes differ. The derivative is zero (a reinterpretation of bits), as for
    ``jax.lax.bitcast_convert_type``.

    Example:
        >>> anp.view(mx.array([1.0]), mx.int32)  # array([1065353216], dtype=int32)
    """
    return lax.view(a, dtype_name(dtype))


@mirror(mx.to_fp8)
def to_fp8(x):
    """fp8 (e4m3) codes of ``x`` as uint8, rounded to nearest even and saturating at +-448,
    as ``mx.to_fp8``. The codes are integers: no derivative flows through them."""
    return lax.to_fp8(x)


@mirror(mx.from_fp8)
def from_fp8(x, dtype=mx.bfloat16):
    """The values of fp8 (e4m3) codes ``x`` (uint8) as ``dtype``, as ``mx.from_fp8``."""
    return lax.from_fp8(x, dtype_name(dtype))

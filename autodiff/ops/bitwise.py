"""Bitwise operations on integers: and, or, xor, invert, left and right shifts.

They take integer operands only; ``autodiff.numpy`` sends booleans to the logical primitives
(``logical_and``, ``logical_or``, ``ne``, ``logical_not``), which is what MLX computes for
them, and converts booleans to uint8 before a shift, as MLX does. Their results are integers,
so they carry no tangent: the JVP is zero (it is never reached, as integer values have no
tangents) and nothing is linear. They are elementwise (the "unary"/"binary" families), so they
batch, fold and lower like the other elementwise primitives.

A shift by a negative amount or by at least the operand's width is undefined in MLX (it
depends on the backend's C++ shift); the reference interpreter gives NumPy's result there.
"""

from __future__ import annotations

import numpy as np

from autodiff.dtypes import is_int
from autodiff.extend import bind, def_primitive, defelementwise, defzero, impls, lowerings
from autodiff.tracing import aval_of, literal


def _check_int(name, *avals):
    for a in avals:
        if not is_int(a.dtype):
            raise TypeError(
                f"{name}: expects integer operands, got {a.str_short()} (floating-point "
                "values have no bitwise form in MLX; booleans use the logical operations)"
            )


def _binary_rule(name):
    def rule(x, y):
        _check_int(name, x, y)
        if x.dtype != y.dtype:
            raise TypeError(f"{name}: operand dtypes differ: {x.str_short()} and {y.str_short()}")
        if x.shape == y.shape or y.shape == ():
            return [x]
        if x.shape == ():
            return [y]
        raise TypeError(f"{name}: operand shapes differ: {x.str_short()} and {y.str_short()}")

    return rule


def _unary_rule(name):
    def rule(x):
        _check_int(name, x)
        return [x]

    return rule


bitwise_and_p = def_primitive("bitwise_and", "binary", _binary_rule("bitwise_and"))
bitwise_or_p = def_primitive("bitwise_or", "binary", _binary_rule("bitwise_or"))
bitwise_xor_p = def_primitive("bitwise_xor", "binary", _binary_rule("bitwise_xor"))
left_shift_p = def_primitive("left_shift", "binary", _binary_rule("left_shift"))
right_shift_p = def_primitive("right_shift", "binary", _binary_rule("right_shift"))
bitwise_invert_p = def_primitive("bitwise_invert", "unary", _unary_rule("bitwise_invert"))

_BINARY = (bitwise_and_p, bitwise_or_p, bitwise_xor_p, left_shift_p, right_shift_p)


def _binary(prim):
    def op(x, y):
        """The primitive on two integer operands of one dtype and shape (or a scalar)."""
        if type(x) is int:
            x = literal(x, aval_of(y).dtype)
        elif type(y) is int:
            y = literal(y, aval_of(x).dtype)
        return bind(prim, x, y)

    op.__name__ = prim.name
    return op


bitwise_and = _binary(bitwise_and_p)
bitwise_or = _binary(bitwise_or_p)
bitwise_xor = _binary(bitwise_xor_p)
left_shift = _binary(left_shift_p)
right_shift = _binary(right_shift_p)


def bitwise_invert(x):
    """``~x`` on an integer operand."""
    return bind(bitwise_invert_p, x)


for _p in (*_BINARY, bitwise_invert_p):
    defzero(_p)
    defelementwise(_p)
    lowerings[_p] = (lambda n: lambda a, ins, outs: f"mx.{n}({', '.join(a)})")(_p.name)

impls[bitwise_and_p] = np.bitwise_and
impls[bitwise_or_p] = np.bitwise_or
impls[bitwise_xor_p] = np.bitwise_xor
impls[left_shift_p] = np.left_shift
impls[right_shift_p] = np.right_shift
impls[bitwise_invert_p] = np.bitwise_invert

"""Complex numbers: ``real``, ``imag`` and ``conj`` of complex64 values.

The three are linear over the reals, not over the complex numbers, so their rules carry JAX's
convention for complex derivatives: a tangent is the complex number ``dz = dx + i dy``, and a
cotangent ``c`` pairs with it by ``Re(c * dz)`` (no conjugate), so reverse mode transposes the
forward map instead of taking its adjoint. Hence ``real``'s transpose is ``c + 0j``, ``imag``'s
is ``-i c`` and ``conj``'s is ``conj(c)``; ``grad`` of a real-valued ``f(z)`` is
``df/dx - i df/dy``, as in ``jax.grad``.
"""

from __future__ import annotations

import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_complex, real_dtype
from autodiff.extend import (
    bind,
    def_primitive,
    defelementwise,
    deflinear,
    impls,
    lowerings,
    transpose_rules,
)


def _complex_operand(to_real: bool):
    def rule(x):
        if not is_complex(x.dtype):
            raise TypeError(
                f"expects a complex operand, got {x.str_short()} (autodiff.numpy's real and "
                "conj of a real array are the array itself, its imag is zeros)"
            )
        return [x.update(dtype=real_dtype(x.dtype) if to_real else x.dtype)]

    return rule


real_p = def_primitive("real", "unary", _complex_operand(to_real=True))
imag_p = def_primitive("imag", "unary", _complex_operand(to_real=True))
conj_p = def_primitive("conj", "unary", _complex_operand(to_real=False))


def real(x):
    """The real part of a complex array (float32)."""
    return bind(real_p, x)


def imag(x):
    """The imaginary part of a complex array (float32)."""
    return bind(imag_p, x)


def conj(x):
    """The complex conjugate of a complex array."""
    return bind(conj_p, x)


for _p in (real_p, imag_p, conj_p):
    deflinear(_p)
    defelementwise(_p)
    lowerings[_p] = (lambda name: lambda a, ins, outs: f"mx.{name}({a[0]})")(_p.name)

transpose_rules[real_p] = lambda ct, x: [L.convert(ct, x.aval.dtype)]
transpose_rules[imag_p] = lambda ct, x: [L.mul(L.convert(ct, x.aval.dtype), -1j)]
transpose_rules[conj_p] = lambda ct, x: [conj(ct)]

impls[real_p] = np.real
impls[imag_p] = np.imag
impls[conj_p] = np.conj

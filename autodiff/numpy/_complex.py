"""Complex parts: real, imag, conj/conjugate (``autodiff/ops/complex.py``), and angle.

Derivatives of complex values follow JAX's convention: ``ad.grad`` of a real-valued function
of a complex ``z = x + iy`` is ``df/dx - i df/dy`` (``mx.grad`` gives its conjugate).
"""

from __future__ import annotations

import math

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_complex
from autodiff.numpy._core import mirror
from autodiff.tracing import as_tracer, aval_of


def _complex(a) -> bool:
    return is_complex(aval_of(a).dtype)


@mirror(mx.real)
def real(a, /):
    """The real part, as ``mx.real`` (a real array is returned as it is).

    Example:
        >>> ad.grad(lambda z: anp.real(z * z))(mx.array(1 + 2j))  # 2z = 2+4j
    """
    return lax.real(a) if _complex(a) else a


@mirror(mx.imag)
def imag(a, /):
    """The imaginary part, as ``mx.imag`` (zeros for a real array)."""
    if _complex(a):
        return lax.imag(a)
    return as_tracer(lax.full(aval_of(a).shape, 0, aval_of(a).dtype))


@mirror(mx.conjugate)
def conjugate(a):
    """The complex conjugate, as ``mx.conjugate`` and its alias ``mx.conj`` (a real array is
    returned as it is)."""
    return lax.conj(a) if _complex(a) else a


conj = conjugate  # mx.conj is an alias of mx.conjugate


def angle(z, deg: bool = False):
    """The argument of complex values, ``arctan2(imag(z), real(z))``, as ``numpy.angle``
    (mlx.core has no ``angle``); in degrees with ``deg=True``.

    Example:
        >>> anp.angle(mx.array([1j, -1.0]))  # [pi/2, pi]
    """
    from autodiff.numpy._elementwise import arctan2, multiply

    out = arctan2(imag(z), real(z))
    return multiply(out, 180.0 / math.pi) if deg else out

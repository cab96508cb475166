"""Fast Fourier transforms: one primitive, ``fft``, over the last ``len(fft_lengths)`` axes, of
four types (``jax.lax.fft``'s design):

- ``"fft"``/``"ifft"``: complex64 to complex64, the unnormalised DFT and its inverse (1/N);
- ``"rfft"``: float32 to complex64, the non-negative frequencies of the DFT (last axis n//2+1);
- ``"irfft"``: complex64 (last axis n//2+1) to float32, the inverse of rfft.

Operands already have the transform's sizes: padding, truncation, axis placement and the
``norm=`` scaling are done around the primitive by ``autodiff.numpy.fft``.

All four are linear over the reals, so the JVP is the transform of the tangent. Transposes
(with the bilinear pairing ``Re(ct * t)`` of JAX's complex convention): the DFT matrix is
symmetric, so fft and ifft are their own transposes; rfft is a slice of the complex DFT of a
real input, so its transpose pads the cotangent back to n and keeps the real part of its DFT;
irfft sums each interior frequency twice (it and its Hermitian mirror), so its transpose is
the conjugated rfft of the cotangent, weighted 1 at DC (and Nyquist for even n), 2 elsewhere,
over N.
"""

from __future__ import annotations

import math

import numpy as np

from autodiff import lax as L
from autodiff.extend import (
    aval_of,
    bind,
    def_primitive,
    deffront,
    deflinear,
    impls,
    lowerings,
    transpose_rules,
)
from autodiff.ir import ShapedArray

FFT_TYPES = ("fft", "ifft", "rfft", "irfft")


def _fft_rule(x, *, fft_type, fft_lengths):
    if fft_type not in FFT_TYPES:
        raise ValueError(f"fft_type must be one of {FFT_TYPES}, got {fft_type!r}")
    k = len(fft_lengths)
    if not 1 <= k <= x.ndim:
        raise ValueError(f"cannot transform {k} axes of an array of rank {x.ndim}")
    if any(n <= 0 for n in fft_lengths):
        raise ValueError(f"fft_lengths must be positive, got {fft_lengths}")
    want = "float32" if fft_type == "rfft" else "complex64"
    if x.dtype != want:
        raise TypeError(f"{fft_type} takes a {want} operand, got {x.str_short()}")
    lead, n = x.shape[:-k], fft_lengths[-1]
    half = tuple(fft_lengths[:-1]) + (n // 2 + 1,)
    expected = half if fft_type == "irfft" else tuple(fft_lengths)
    if x.shape[-k:] != expected:
        raise ValueError(
            f"{fft_type} with fft_lengths={fft_lengths} needs the last {k} axes of the operand "
            f"to be {expected}, got {x.str_short()}; pad or slice it first"
        )
    if fft_type == "rfft":
        return [ShapedArray(lead + half, "complex64")]
    if fft_type == "irfft":
        return [ShapedArray(lead + tuple(fft_lengths), "float32")]
    return [x]


fft_p = def_primitive("fft", "fft", _fft_rule)


def fft(x, fft_type: str, fft_lengths):
    """The ``fft_type`` transform of the last ``len(fft_lengths)`` axes of ``x``."""
    return bind(fft_p, x, fft_type=fft_type, fft_lengths=tuple(fft_lengths))


deflinear(fft_p)


def _rfft_t(ct, lengths):
    n, ndim = lengths[-1], len(aval_of(ct).shape)
    padded = L.pad(ct, 0.0, [(0, 0, 0)] * (ndim - 1) + [(0, n - (n // 2 + 1), 0)])
    return L.real(fft(padded, "fft", lengths))


def _irfft_t(ct, lengths):
    x = fft(ct, "rfft", lengths)
    shape = aval_of(x).shape
    n, m = lengths[-1], shape[-1]
    scale = 1.0 / math.prod(lengths)
    parts = [L.full((1,), scale, "complex64")]
    if m > 1:
        inner = m - 1 if n % 2 else m - 2  # the Nyquist bin of an even n is not doubled
        parts += [L.full((inner,), 2 * scale, "complex64")] if inner else []
        parts += [] if n % 2 else [L.full((1,), scale, "complex64")]
    weights = L.broadcast_in_dim(L.concatenate(parts, 0), shape, (len(shape) - 1,))
    return L.conj(L.mul(x, weights))


def _fft_t(ct, x, fft_type, fft_lengths):
    if fft_type == "rfft":
        return [_rfft_t(ct, fft_lengths)]
    if fft_type == "irfft":
        return [_irfft_t(ct, fft_lengths)]
    return [fft(ct, fft_type, fft_lengths)]


transpose_rules[fft_p] = _fft_t
deffront(
    fft_p, lambda size, fft_type, fft_lengths: dict(fft_type=fft_type, fft_lengths=fft_lengths)
)


def _fft_mlx(args, ins, outs, fft_type, fft_lengths):
    axes = list(range(-len(fft_lengths), 0))
    return f"mx.fft.{fft_type}n({args[0]}, s={list(fft_lengths)}, axes={axes})"


lowerings[fft_p] = _fft_mlx


def _fft_np(x, fft_type, fft_lengths):
    axes = tuple(range(-len(fft_lengths), 0))
    return getattr(np.fft, fft_type + "n")(x, s=fft_lengths, axes=axes)


impls[fft_p] = _fft_np

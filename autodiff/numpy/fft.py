"""``anp.fft``: mlx.core.fft's functions, traceable and differentiable to any order.

Every transform is the one ``fft`` primitive (``autodiff/ops/fft.py``) on the last axes of its
operand, with the padding or truncation that ``n``/``s`` ask for, the moves of ``axes`` to the
end and back, and the ``norm`` scaling written around it, as in MLX (whose kernels the lowered
program calls). ``fftshift``/``ifftshift`` are rolls, ``stft``/``istft`` a gather of frames
(with the centre padding folded into the indices), the transform, and an overlap-add scatter.
``fftfreq``/``rfftfreq`` take no arrays, so they are MLX's own functions.

Gradients of complex values follow JAX's convention (see ``autodiff.numpy.real``).

Example:
    >>> import autodiff as ad, autodiff.numpy as anp, mlx.core as mx
    >>> power = lambda x: anp.sum(anp.abs(anp.fft.rfft(x)) ** 2)
    >>> ad.grad(power)(mx.array([1.0, 2.0, 0.5, -1.0]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.numpy._core import astype, mirror
from autodiff.tracing import aval_of

__all__ = [
    "fft",
    "ifft",
    "fft2",
    "ifft2",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfft2",
    "irfft2",
    "rfftn",
    "irfftn",
    "fftfreq",
    "rfftfreq",
    "fftshift",
    "ifftshift",
    "stft",
    "istft",
]

_NORMS = ("backward", "ortho", "forward")


def _scale(norm: str, size: int, inverse: bool, name: str) -> float:
    if norm not in _NORMS:
        raise ValueError(
            f"[{name}] Invalid norm. Expected one of {{'backward', 'ortho', 'forward'}}."
        )
    if norm == "backward":
        return 1.0
    if norm == "ortho":
        return math.sqrt(size) if inverse else 1.0 / math.sqrt(size)
    return float(size) if inverse else 1.0 / size


def _resize(x, shape):
    """Truncate, then zero-pad, ``x`` to ``shape`` (from the end of each axis)."""
    cur = aval_of(x).shape
    if any(t < c for t, c in zip(shape, cur)):
        x = lax.slice_(x, [0] * len(cur), [min(t, c) for t, c in zip(shape, cur)])
        cur = aval_of(x).shape
    if any(t > c for t, c in zip(shape, cur)):
        x = lax.pad(x, 0.0, [(0, t - c, 0) for t, c in zip(shape, cur)])
    return x


def _transform(a, s, axes, fft_type: str, norm: str, name: str):
    """MLX's ``fft_impl``: the ``fft_type`` transform of ``a`` over ``axes`` with sizes ``s``
    (None: the axes' sizes; for irfft the last is ``2 * (size - 1)``)."""
    shape = aval_of(a).shape
    nd = len(shape)
    if nd < 1:
        raise ValueError(f"[{name}] Requires array with at least one dimension.")
    axes = list(axes)
    for ax in axes:
        if not -nd <= ax < nd:
            raise ValueError(f"[{name}] Invalid axis {ax} for an array with {nd} dimensions.")
    canon = [ax % nd for ax in axes]
    if len(set(canon)) != len(canon):
        raise ValueError(f"[{name}] Duplicated axis received {tuple(axes)}")
    if s is None:
        s = [shape[ax] for ax in canon]
        if fft_type == "irfft" and s:
            s[-1] = 2 * (s[-1] - 1)
    s = [int(n) for n in s]
    if len(s) != len(axes):
        raise ValueError(f"[{name}] Shape and axes have different sizes.")
    if not axes:
        return a
    if any(n <= 0 for n in s):
        raise ValueError(f"[{name}] Invalid FFT output size requested {tuple(s)}")
    in_shape = list(shape)
    for ax, n in zip(canon, s):
        in_shape[ax] = n
    if fft_type == "irfft":
        in_shape[canon[-1]] = s[-1] // 2 + 1
    x = _resize(astype(a, "float32" if fft_type == "rfft" else "complex64"), in_shape)
    perm = [i for i in range(nd) if i not in canon] + canon
    y = lax.transpose(lax.fft(lax.transpose(x, perm), fft_type, s), np.argsort(perm).tolist())
    scale = _scale(norm, math.prod(s), fft_type in ("ifft", "irfft"), name)
    return y if scale == 1.0 else lax.mul(y, scale)


def _axes_nd(a, s, axes, name):
    """fftn's defaults: all axes when both are None; ``s`` needs ``axes``."""
    if axes is None:
        if s is not None:
            raise ValueError(f"[{name}] `axes` should not be `None` if `s` is not `None`.")
        return list(range(len(aval_of(a).shape)))
    return [axes] if isinstance(axes, int) else list(axes)


def _one_d(fft_type, mx_fn, what):
    @mirror(mx_fn)
    def f(a, n: int | None = None, axis: int = -1, norm: str = "backward"):
        return _transform(a, None if n is None else [n], [axis], fft_type, norm, fft_type)

    f.__name__ = f.__qualname__ = fft_type
    f.__doc__ = (
        f"{what} along ``axis`` (padded or truncated to ``n``), as ``mx.fft.{fft_type}``; "
        "``norm`` is ``'backward'``, ``'ortho'`` or ``'forward'``."
    )
    return f


def _n_d(fft_type, mx_fn, what, default_axes):
    name = mx_fn.__name__

    @mirror(mx_fn)
    def f(
        a,
        s: Sequence[int] | None = None,
        axes: Sequence[int] | None = default_axes,
        norm: str = "backward",
    ):
        return _transform(a, s, _axes_nd(a, s, axes, name), fft_type, norm, name)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{what} over ``axes`` (sizes ``s``: padded or truncated), as ``mx.fft.{name}``."
    return f


fft = _one_d("fft", mx.fft.fft, "The discrete Fourier transform")
ifft = _one_d("ifft", mx.fft.ifft, "The inverse discrete Fourier transform")
rfft = _one_d(
    "rfft", mx.fft.rfft, "The DFT of a real input (of a complex one's real part), n // 2 + 1 bins,"
)
irfft = _one_d(
    "irfft", mx.fft.irfft, "The inverse of rfft, n real values (2 * (m - 1) by default),"
)
fft2 = _n_d("fft", mx.fft.fft2, "The 2-d DFT", (-2, -1))
ifft2 = _n_d("ifft", mx.fft.ifft2, "The 2-d inverse DFT", (-2, -1))
rfft2 = _n_d("rfft", mx.fft.rfft2, "The 2-d DFT of a real input", (-2, -1))
irfft2 = _n_d("irfft", mx.fft.irfft2, "The inverse of rfft2", (-2, -1))
fftn = _n_d("fft", mx.fft.fftn, "The n-d DFT", None)
ifftn = _n_d("ifft", mx.fft.ifftn, "The n-d inverse DFT", None)
rfftn = _n_d("rfft", mx.fft.rfftn, "The n-d DFT of a real input (the last axis halved)", None)
irfftn = _n_d("irfft", mx.fft.irfftn, "The inverse of rfftn", None)
fft.__doc__ += """

Example:
    >>> ad.grad(lambda x: anp.real(anp.fft.fft(x)[1]))(mx.array([1.0, 2.0, 3.0]))
"""

fftfreq = mx.fft.fftfreq
rfftfreq = mx.fft.rfftfreq


# ---------------------------------------------------------------------------------------------
# shifts


def _roll(x, shift: int, axis: int):
    n = aval_of(x).shape[axis]
    shift %= n
    if shift == 0:
        return x
    tail = lax.slice_in_dim(x, n - shift, n, 1, axis)
    return lax.concatenate([tail, lax.slice_in_dim(x, 0, n - shift, 1, axis)], axis)


def _shift(a, axes, inverse, name):
    shape = aval_of(a).shape
    nd = len(shape)
    if axes is None:
        axes = range(nd)
    elif isinstance(axes, int):
        axes = [axes]
    for ax in axes:
        if not -nd <= ax < nd:
            raise IndexError(f"[{name}] Invalid axis {ax} for array with {nd} dimensions.")
    for ax in axes:
        half = shape[ax % nd] // 2
        a = _roll(a, -half if inverse else half, ax % nd)
    return a


@mirror(mx.fft.fftshift)
def fftshift(a, axes: int | Sequence[int] | None = None):
    """Move the zero frequency to the centre (roll by ``n // 2``), as ``mx.fft.fftshift``."""
    return _shift(a, axes, False, "fftshift")


@mirror(mx.fft.ifftshift)
def ifftshift(a, axes: int | Sequence[int] | None = None):
    """The inverse of :func:`fftshift` (roll by ``-(n // 2)``), as ``mx.fft.ifftshift``."""
    return _shift(a, axes, True, "ifftshift")


# The short-time transforms use the transforms above.
from autodiff.numpy._stft import istft, stft  # noqa: E402

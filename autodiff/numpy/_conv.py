"""Convolutions: conv1d, conv2d, conv3d, conv_general, conv_transpose1d/2d/3d and convolve,
all built on the ``conv_general`` primitive of ``autodiff/ops/conv.py`` with MLX's semantics
(layout ``(N, *spatial, C)``, kernel ``(C_out, *spatial, C_in // groups)``)."""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import is_float
from autodiff.numpy._core import astype, mirror, result_type
from autodiff.ops.conv_layout import dilate
from autodiff.tracing import aval_of


def _per_axis(v, nd: int, name: str) -> tuple[int, ...]:
    """An int or sequence as one entry per spatial axis (a single entry applies to all)."""
    v = [v] if isinstance(v, int) else list(v)
    if len(v) <= 1:
        v = (v or [1 if name != "padding" else 0]) * nd
    if len(v) != nd:
        raise ValueError(f"[conv] Invalid {name} {v} for {nd}D convolution.")
    return tuple(int(i) for i in v)


def _conv(input, weight, nd, stride, lo, hi, kernel_dilation, input_dilation, groups, flip):
    """MLX's ``conv_general``: checks, promotion, and negative padding as MLX does it (a slice
    of the undilated input), then the primitive."""
    xa, wa = aval_of(input), aval_of(weight)
    if not is_float(xa.dtype):
        raise ValueError(
            f"[conv] Invalid input array with type {xa.dtype}. Convolution currently only "
            "supports floating point types"
        )
    if not 1 <= nd <= 3 or xa.ndim != nd + 2 or wa.ndim != nd + 2:
        raise ValueError(
            f"[conv] Expected input (N, ..., C_in) and weight (C_out, ..., C_in) with {nd} "
            f"spatial dimensions (1 to 3), got shapes {xa.shape} and {wa.shape}"
        )
    if groups != 1 and nd == 3:
        raise ValueError("[conv] Can only handle groups != 1 in 1D or 2D convolutions.")
    c = xa.shape[-1]
    if groups < 1 or c % groups or wa.shape[0] % groups or c != groups * wa.shape[-1]:
        raise ValueError(
            f"[conv] With groups={groups}, input channels ({c}) must equal groups * the "
            f"weight's last axis ({wa.shape[-1]}) and output channels ({wa.shape[0]}) be a "
            "multiple of groups"
        )
    dtype = result_type(input, weight)
    input, weight = astype(input, dtype), astype(weight, dtype)
    args = [_per_axis(v, nd, n) for v, n in ((stride, "stride"), (lo, "padding"),
            (hi, "padding"), (kernel_dilation, "kernel dilation"),
            (input_dilation, "input dilation"))]  # fmt: skip
    stride, lo, hi, kd, idl = args
    if min(lo + hi) < 0:
        shape = xa.shape
        starts = [0, *(max(-p, 0) for p in lo), 0]
        limits = [shape[0], *(n + min(p, 0) for n, p in zip(shape[1:-1], hi)), shape[-1]]
        input = lax.slice_(input, starts, limits)
        lo, hi = [max(p, 0) for p in lo], [max(p, 0) for p in hi]
    return lax.conv_general(input, weight, stride, list(zip(lo, hi)), kd, idl, groups, flip)


@mirror(mx.conv_general)
def conv_general(
    input,
    weight,
    /,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | tuple[Sequence[int], Sequence[int]] = 0,
    kernel_dilation: int | Sequence[int] = 1,
    input_dilation: int | Sequence[int] = 1,
    groups: int = 1,
    flip: bool = False,
):
    """General convolution, as ``mx.conv_general``: ``padding`` is an int, one int per
    spatial axis, or ``(low, high)`` lists; ``flip=True`` is convolution proper (the kernel
    reversed), ``False`` cross-correlation. Differentiable in both operands to any order.

    Example:
        >>> x, w = mx.random.normal((1, 8, 8, 3)), mx.random.normal((4, 3, 3, 3))
        >>> ad.grad(lambda w: anp.conv_general(x, w, padding=([0, 1], [1, 0])).sum())(w)
    """
    nd = aval_of(input).ndim - 2
    if isinstance(padding, int) or all(isinstance(p, int) for p in padding):
        lo = hi = padding
    else:
        lo, hi = padding
    return _conv(input, weight, nd, stride, lo, hi, kernel_dilation, input_dilation, groups, flip)


def _convnd(nd):
    def conv(input, weight, /, stride=1, padding=0, dilation=1, groups=1):
        return _conv(input, weight, nd, stride, padding, padding, dilation, 1, groups, False)

    conv.__name__ = f"conv{nd}d"
    conv.__doc__ = (
        f"{nd}-D convolution (cross-correlation), as ``mx.conv{nd}d``: input "
        f"``(N, *{nd} spatial, C_in)``, weight ``(C_out, *{nd} kernel, C_in // groups)``, "
        "symmetric padding. Differentiable in both operands."
    )
    return mirror(getattr(mx, conv.__name__))(conv)


def _conv_transposend(nd):
    def conv_transpose(input, weight, /, stride=1, padding=0, dilation=1, output_padding=0,
                       groups=1):  # fmt: skip
        # MLX's conv_transpose_general: a flipped convolution of the input dilated by stride
        ks = aval_of(weight).shape[1:-1]
        args = [_per_axis(v, nd, n) for v, n in ((stride, "stride"), (padding, "padding"),
                (dilation, "dilation"), (output_padding, "output padding"))]  # fmt: skip
        stride, padding, dilation, output_padding = args
        ke = [dilate(k, d) for k, d in zip(ks, dilation)]
        lo = [k - p - 1 for k, p in zip(ke, padding)]
        hi = [k - 1 - p + op for k, p, op in zip(ke, padding, output_padding)]
        return _conv(input, weight, nd, 1, lo, hi, dilation, stride, groups, True)

    conv_transpose.__name__ = f"conv_transpose{nd}d"
    conv_transpose.__doc__ = (
        f"{nd}-D transposed convolution, as ``mx.conv_transpose{nd}d`` (the input dilated by "
        "``stride``, convolved with the flipped weight; ``output_padding`` extends the high "
        "end). Differentiable in both operands."
    )
    return mirror(getattr(mx, conv_transpose.__name__))(conv_transpose)


conv1d, conv2d, conv3d = _convnd(1), _convnd(2), _convnd(3)
conv_transpose1d, conv_transpose2d, conv_transpose3d = map(_conv_transposend, (1, 2, 3))


@mirror(mx.convolve)
def convolve(a, v, /, mode: str = "full"):
    """Discrete convolution of two 1-D arrays, as ``mx.convolve`` (the shorter one is the
    kernel, flipped; ``mode`` is "full", "valid" or "same").

    Example:
        >>> ad.grad(lambda a: anp.convolve(a, mx.array([1.0, 2.0]), "same").sum())(a)
    """
    if aval_of(a).ndim != 1 or aval_of(v).ndim != 1:
        raise ValueError("[convolve] Inputs must be 1D.")
    if aval_of(a).size == 0 or aval_of(v).size == 0:
        raise ValueError("[convolve] Inputs cannot be empty.")
    x, k = (v, a) if aval_of(a).size < aval_of(v).size else (a, v)
    n = aval_of(k).size
    pads = {"full": (n - 1, n - 1), "valid": (0, 0), "same": (n // 2, n // 2 - 1 + n % 2)}
    if mode not in pads:
        raise ValueError("[convolve] Invalid mode.")
    lo, hi = pads[mode]
    x, k = lax.reshape(x, (1, aval_of(x).size, 1)), lax.reshape(k, (1, n, 1))
    y = _conv(x, k, 1, 1, lo, hi, 1, 1, 1, True)
    return lax.reshape(y, (aval_of(y).shape[1],))

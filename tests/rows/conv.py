"""Rows for autodiff/ops/conv.py: every convolution of mlx.core, on the one conv_general
primitive. MLX has no JVP for convolutions (mx.jvp raises "Not implemented for Convolution"),
so no row compares with mx.jvp or MLX's forward-over-reverse second order (mx_jvp=False,
mx_order=1); MLX's VJP is compared everywhere except where it is wrong (see below)."""

from hypothesis import strategies as st
from rowlib import Row, arrays_s

import autodiff.numpy as anp

NO_MX_JVP = dict(diff=(0, 1), mx_jvp=False, mx_order=1)


def _xw(x_shape, w_shape):
    """Argument strategies for an input of shape ``x_shape(s)`` and a weight ``w_shape(s)``."""
    return (lambda s: arrays_s(x_shape(s)), lambda s: arrays_s(w_shape(s)))


def _sizes(*ranges):
    return st.tuples(*(st.integers(lo, hi) for lo, hi in ranges))


ROWS = [
    Row(
        "conv1d",
        lambda x, w: anp.conv1d(x, w, stride=2, padding=1, dilation=2, groups=2),
        _xw(lambda s: (s[0], s[1], 4), lambda s: (4, 2, 2)),
        shapes=_sizes((1, 2), (3, 7)),
        **NO_MX_JVP,
    ),
    Row(
        "conv2d",
        lambda x, w: anp.conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
        _xw(lambda s: (s[0], s[1], s[2], 2), lambda s: (3, 2, 2, 2)),
        shapes=_sizes((1, 2), (2, 4), (3, 5)),
        **NO_MX_JVP,
    ),
    Row(
        "conv3d",
        lambda x, w: anp.conv3d(x, w, stride=(1, 2, 1), padding=(1, 0, 1)),
        _xw(lambda s: (1, s[0], 2, s[1], 2), lambda s: (2, 2, 1, 2, 2)),
        shapes=_sizes((1, 3), (1, 3)),
        mx_vmap=False,  # mx.vmap over both operands makes a grouped 3-D conv, which MLX lacks
        **NO_MX_JVP,
    ),
    Row(
        "conv_general",  # asymmetric padding, kernel dilation, groups, flip
        lambda x, w: anp.conv_general(
            x,
            w,
            stride=[1, 2],
            padding=([0, 2], [1, 0]),
            kernel_dilation=[2, 1],
            groups=2,
            flip=True,
        ),
        _xw(lambda s: (s[0], s[1], 3, 4), lambda s: (2, 2, 2, 2)),
        shapes=_sizes((1, 2), (2, 4)),
        **NO_MX_JVP,
    ),
    # With input dilation (and so the transposed convolutions with stride > 1) MLX's VJP is
    # wrong for most paddings: gradients of the wrong shape or values, or an error
    # (tests/test_conv.py checks these rows against JAX instead).
    Row(
        "conv_general_input_dilation",
        lambda x, w: anp.conv_general(
            x,
            w,
            stride=[2, 1],
            padding=([1, 0], [0, 2]),
            kernel_dilation=[1, 2],
            input_dilation=[2, 3],
            groups=2,
            flip=True,
        ),
        _xw(lambda s: (s[0], s[1], 2, 2), lambda s: (2, 2, 2, 1)),
        shapes=_sizes((1, 2), (1, 3)),
        diff=(0, 1),
        mx_grad=False,
    ),
    Row(
        "conv_general_negative_padding",  # a crop of the input
        lambda x, w: anp.conv_general(x, w, stride=2, padding=([-1], [2])),
        _xw(lambda s: (s[0], s[1], 2), lambda s: (2, 3, 2)),
        shapes=_sizes((1, 2), (3, 6)),
        **NO_MX_JVP,
    ),
    Row(
        "conv_general_wide_padding",
        lambda x, w: anp.conv_general(x, w, padding=([3], [2]), input_dilation=3, flip=True),
        _xw(lambda s: (s[0], s[1], 1), lambda s: (2, 2, 1)),
        shapes=_sizes((1, 2), (1, 4)),
        diff=(0, 1),
        mx_grad=False,
    ),
    Row(
        "conv_transpose1d",
        lambda x, w: anp.conv_transpose1d(x, w, padding=1, dilation=2, groups=2),
        _xw(lambda s: (s[0], s[1], 4), lambda s: (2, 3, 2)),
        shapes=_sizes((1, 2), (1, 4)),
        **NO_MX_JVP,
    ),
    Row(
        "conv_transpose2d",
        lambda x, w: anp.conv_transpose2d(x, w, stride=(2, 3), padding=(1, 0), output_padding=1),
        _xw(lambda s: (1, s[0], s[1], 2), lambda s: (3, 2, 2, 2)),
        shapes=_sizes((1, 3), (1, 3)),
        diff=(0, 1),
        mx_grad=False,
    ),
    Row(
        "conv_transpose3d",
        lambda x, w: anp.conv_transpose3d(x, w, stride=2, padding=1, output_padding=(1, 0, 1)),
        _xw(lambda s: (1, s[0], 2, 1, 2), lambda s: (1, 2, 3, 2, 2)),
        shapes=_sizes((1, 2)),
        diff=(0, 1),
        mx_grad=False,
        mx_vmap=False,
    ),
    Row(
        "convolve",  # every mode; the shorter operand is the kernel, so both orders are drawn
        lambda a, v: (anp.convolve(a, v), anp.convolve(a, v, "valid"), anp.convolve(a, v, "same")),
        _xw(lambda s: (s[0],), lambda s: (s[1],)),
        shapes=_sizes((1, 6), (1, 5)),
        **NO_MX_JVP,
    ),
]

"""Rows for the quantized and structured products: autodiff/ops/quantized.py,
quantized_matmul.py, gather_mm.py, qqmm.py, masked_mm.py, hadamard.py.

The packed weights are fixed constants (integers, never differentiated); the rows draw the
float operands (activations, scales, biases, masks) and the integer indices (which vmap
batches too). Where MLX lacks a rule (no JVP for quantized_matmul's scales, gather_mm,
gather_qmm, block_masked_mm, segmented_mm; no vmap for most) or gets it wrong, the row says so.
"""

import mlx.core as mx
import numpy as np
from hypothesis import strategies as st
from rowlib import Row, arrays_s

import autodiff.numpy as anp

_rng = np.random.default_rng(7)


def _normal(*shape):
    return mx.array(_rng.standard_normal(shape).astype(np.float32))


K = 64  # two groups of 32
W = _normal(5, K)
WQ, WS, WB = mx.quantize(W, group_size=32, bits=4)
WQ3, _, _ = mx.quantize(W, group_size=32, bits=3)
WQ_T, WS_T, WB_T = mx.quantize(_normal(K, 64), group_size=32, bits=8)  # (K, N=64) for x @ w
WQ_MX, WS_MX = mx.quantize(W, mode="mxfp4")
WQ_NV, WS_NV = mx.quantize(W, mode="nvfp4")
WQ_E, WS_E, WB_E = mx.quantize(_normal(3, 4, K), group_size=32, bits=4)  # 3 experts
WQ8, WS8 = mx.quantize(W, mode="mxfp8")
SEGMENTS = mx.array([[0, 3], [1, 6], [4, 4], [5, 2]])

_M = st.tuples(st.integers(1, 3))  # rows of x


def _x(k=K):
    return lambda s: arrays_s((s[0], k))


def _like(a):
    return lambda s: arrays_s(a.shape)


def _out_mask(a):
    """A boolean (tiles of a's rows, 1) mask: every other block row."""
    return mx.arange(-(-a.shape[0] // 32))[:, None] % 2 == 0


def _idx(n, high):
    return lambda s: arrays_s((n,), dtype=mx.int32, low=0, high=high)


ROWS = [
    # quantize: the scales and biases as functions of w (piecewise linear, as mx.grad);
    # the packed codes as a non-differentiable row (the format, exactly)
    Row(
        "quantize_scales_biases",
        lambda w: anp.quantize(w, group_size=32, bits=4)[1:],
        (lambda s: arrays_s((s[0], K)),),
        shapes=_M,
        mx_vmap=False,
    ),
    Row(
        "quantize_codes",
        lambda w: (
            [anp.quantize(w, 32, b)[0] for b in (2, 3, 5, 8)]
            + anp.quantize(w, mode="mxfp8")
            + anp.quantize(w, mode="nvfp4")
        ),
        (lambda s: arrays_s((s[0], K)),),
        shapes=_M,
        diff=None,
        mx_vmap=False,
    ),
    Row(
        "dequantize",
        lambda s, b: (
            anp.dequantize(WQ, s, b, group_size=32, bits=4)
            + anp.dequantize(WQ3, s, b, group_size=32, bits=3, dtype=mx.float32)
        ),
        (_like(WS), _like(WB)),
        shapes=st.just(()),
        diff=(0, 1),
    ),
    Row(
        "dequantize_fp",
        lambda x: (
            x * anp.dequantize(WQ_MX, WS_MX, mode="mxfp4", dtype=mx.float32)
            + anp.dequantize(WQ_NV, WS_NV, mode="nvfp4", dtype=mx.float32)
        ),
        (lambda s: arrays_s(W.shape),),
        shapes=st.just(()),
    ),
    # quantized_matmul: LoRA's case (x), and the affine scales and biases. MLX has no JVP in
    # the scales (mx_jvp) and no vmap.
    Row(
        "quantized_matmul",
        lambda x, s, b: anp.quantized_matmul(x, WQ, s, b, group_size=32, bits=4),
        (_x(), _like(WS), _like(WB)),
        shapes=_M,
        diff=(0, 1, 2),
        mx_jvp=False,
        mx_vmap=False,
    ),
    Row(
        "quantized_matmul_x",
        lambda x: anp.quantized_matmul(x, WQ, WS, WB, group_size=32, bits=4) ** 2,
        (lambda s: arrays_s((2, s[0], K)),),
        shapes=_M,
        mx_vmap=False,
    ),
    Row(
        "quantized_matmul_no_transpose",
        lambda x, s, b: anp.quantized_matmul(x, WQ_T, s, b, transpose=False, group_size=32, bits=8),
        (_x(), lambda s: arrays_s(WS_T.shape, low=-0.02, high=0.02), _like(WB_T)),
        shapes=_M,
        diff=(0, 1, 2),
        mx_jvp=False,
        mx_vmap=False,
    ),
    Row(
        "quantized_matmul_batched_w",
        lambda x, s, b: anp.quantized_matmul(x, WQ_E, s, b, group_size=32, bits=4),
        (lambda s: arrays_s((3, s[0], K)), _like(WS_E), _like(WB_E)),
        shapes=_M,
        diff=(0, 1, 2),
        mx_jvp=False,
        mx_vmap=False,
    ),
    Row(
        "quantized_matmul_fp_modes",
        lambda x: (
            anp.quantized_matmul(x, WQ_MX, WS_MX, mode="mxfp4")
            * anp.quantized_matmul(x, WQ_NV, WS_NV, mode="nvfp4")
        ),
        (_x(),),
        shapes=_M,
        mx_vmap=False,
    ),
    # gathered products (mixture of experts): indices are drawn (and batched by vmap)
    Row(
        "gather_mm",
        lambda a, b, li, ri: anp.gather_mm(a, b, li, ri),
        (
            lambda s: arrays_s((3, 2, s[0])),
            lambda s: arrays_s((4, s[0], 2)),
            _idx(5, 2),
            _idx(5, 3),
        ),
        shapes=st.tuples(st.integers(1, 3)),
        diff=(0, 1),
        mx_jvp=False,
        mx_order=1,
        mx_vmap=False,
    ),
    Row(
        "gather_mm_rhs_sorted",
        lambda x, w: anp.gather_mm(x, w, None, mx.array([0, 0, 2]), sorted_indices=True),
        (lambda s: arrays_s((3, 1, s[0])), lambda s: arrays_s((3, s[0], 2))),
        shapes=st.tuples(st.integers(1, 3)),
        diff=(0, 1),
        mx_jvp=False,
        mx_order=1,
        mx_vmap=False,
    ),
    Row(
        "gather_qmm",
        lambda x, s, b, li, ri: anp.gather_qmm(x, WQ_E, s, b, li, ri, group_size=32, bits=4),
        (lambda s: arrays_s((2, s[0], K)), _like(WS_E), _like(WB_E), _idx(4, 1), _idx(4, 2)),
        shapes=_M,
        diff=(0, 1, 2),
        mx_jvp=False,
        mx_order=1,
        mx_vmap=False,
    ),
    Row(
        "gather_qmm_rhs_only",
        lambda x: anp.gather_qmm(
            x, WQ_E, WS_E, WB_E, rhs_indices=mx.array([[2], [0]]), group_size=32, bits=4
        ),
        (lambda s: arrays_s((2, s[0], K)),),
        shapes=_M,
        mx_jvp=False,
        mx_order=1,
        mx_vmap=False,
    ),
    # qqmm: forward only (piecewise constant); one row of x, as MLX's CPU kernel needs
    Row(
        "qqmm",
        lambda x: anp.qqmm(x, WQ8, WS8, mode="mxfp8") + anp.qqmm(x, WQ_NV, WS_NV),
        (lambda s: arrays_s((1, K)),),
        shapes=st.just(()),
        diff=None,
        mx_vmap=False,
    ),
    # block_masked_mm: MLX's cotangent of a float out mask keeps the mask's own factor (wrong),
    # so the row differentiating it does not compare with mx.grad; MLX has no JVP.
    Row(
        "block_masked_mm",
        lambda a, b, ml, mr: anp.block_masked_mm(a, b, 32, _out_mask(a), ml, mr),
        (
            lambda s: arrays_s((s[0], 40)),
            lambda s: arrays_s((40, 3)),
            lambda s: arrays_s((-(-s[0] // 32), 2)),
            lambda s: arrays_s((2, 1)),
        ),
        shapes=st.tuples(st.sampled_from([5, 40])),
        diff=(0, 1, 2, 3),
        mx_jvp=False,
        mx_order=1,
        mx_vmap=False,
    ),
    Row(
        "block_masked_mm_out_mask",
        lambda a, m: anp.block_masked_mm(
            a, a.T, 32, m, mx.array([[True, False]]), mx.array([[True], [True]])
        ),
        (lambda s: arrays_s((3, 40)), lambda s: arrays_s((1, 1))),
        shapes=st.just(()),
        diff=(0, 1),
        mx_grad=False,
        mx_vmap=False,
    ),
    Row(
        "segmented_mm",
        lambda a, b: anp.segmented_mm(a, b, SEGMENTS),
        (lambda s: arrays_s((s[0], 6)), lambda s: arrays_s((6, 2))),
        shapes=st.tuples(st.integers(1, 3)),
        diff=(0, 1),
        mx_grad=False,
        mx_vmap=False,
    ),
    Row(
        "hadamard_transform",
        lambda x: anp.hadamard_transform(x) * anp.hadamard_transform(x[..., :12], 0.5).sum(),
        (lambda s: arrays_s(s + (16,)),),
        shapes=st.tuples(st.integers(1, 3)),
    ),
    # sizes with a factor 20 or 28: H is not symmetric; MLX's VJP applies H instead of H.T
    Row(
        "hadamard_transform_20",
        lambda x: anp.hadamard_transform(x, 0.25),
        (lambda s: arrays_s(s + (40,)),),
        shapes=st.tuples(st.integers(1, 2)),
        mx_grad=False,
    ),
]

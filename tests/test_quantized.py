"""Quantized and gathered products: the NumPy formats against mx.quantize bit for bit, the LoRA
use case through mlx.nn.QuantizedLinear, derivatives MLX lacks or gets wrong, the mx.* spelling
under ad.grad, and the errors for what is not differentiable."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff.interpret import interpret
from autodiff.numpy._excluded import EXCLUDED
from autodiff.ops import quantized_format as F
from autodiff.ops.hadamard import matrix
from autodiff.testing import check_grads


def _close(a, b, tol=1e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


CONFIGS = [("affine", g, b) for g in (32, 64, 128) for b in (2, 3, 4, 5, 6, 8)] + [
    ("mxfp4", 32, 4),
    ("mxfp8", 32, 8),
    ("nvfp4", 16, 4),
]


@pytest.mark.parametrize("mode,group_size,bits", CONFIGS)
def test_formats_reproduce_mlx_exactly(mode, group_size, bits):
    w = mx.random.normal((4, 256)) * mx.exp(mx.random.normal((4, 1)))
    theirs = mx.quantize(w, group_size=group_size, bits=bits, mode=mode)
    ours = F.quantize(np.array(w), group_size, bits, mode)
    np.testing.assert_array_equal(ours[0], np.array(theirs[0]))  # the packed codes
    for o, t in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(o, np.array(t).astype(np.float64), rtol=1e-6)
    # the traced dequantize (lowered to MLX and interpreted) reads MLX's packing
    rest = theirs[1:] if mode == "affine" else [theirs[1], None]
    f = lambda q: anp.dequantize(
        q, *rest, group_size=group_size, bits=bits, mode=mode, dtype=mx.float32
    )
    closed = ad.make_jaxpr(f)(theirs[0])
    expected = np.array(f(theirs[0]))
    np.testing.assert_allclose(interpret(closed, theirs[0])[0], expected, rtol=1e-6, atol=1e-6)
    _close(ad.jit(f)(theirs[0]), expected, 0)


def test_nvfp4_global_scale_and_its_derivative():
    w = mx.random.normal((2, 64))
    g = mx.array(3.5)
    wq, s = mx.quantize(w, mode="nvfp4", global_scale=g)
    ours = F.quantize(np.array(w), 16, 4, "nvfp4", np.array(g))
    np.testing.assert_array_equal(ours[0], np.array(wq))
    np.testing.assert_array_equal(ours[1], np.array(s))
    f = lambda g: anp.dequantize(wq, s, mode="nvfp4", global_scale=g, dtype=mx.float32)
    _close(f(g), ad.jit(f)(g))
    check_grads(f, (g,), order=2)  # linear in the global scale
    # quantize with a per-example global scale under vmap: one call per example
    gs = mx.array([2.0, 3.5, 5.0])
    q = lambda w, g: anp.quantize(w, mode="nvfp4", global_scale=g)
    got = ad.vmap(q, in_axes=(None, 0))(w, gs)
    _close(got, [mx.stack(x) for x in zip(*[q(w, g) for g in gs])], 0)


def _lora_model():
    base = nn.QuantizedLinear(64, 16, group_size=32, bits=4)
    a, b = mx.random.normal((64, 4)) * 0.1, mx.random.normal((4, 16)) * 0.1

    def loss(adapter, x):  # written with mlx.core and mlx.nn: routed while tracing
        h = base(x) + (x @ adapter["a"]) @ adapter["b"]
        return mx.mean(mx.square(nn.gelu(h)))

    return loss, {"a": a, "b": b}


def test_lora_on_a_quantized_linear_matches_mx_grad():
    loss, adapter = _lora_model()
    x = mx.random.normal((8, 64))
    _close(ad.grad(loss)(adapter, x), mx.grad(loss)(adapter, x))
    # second order in the activations, and per-example gradients
    hvp = ad.jvp(lambda x: ad.grad(loss, argnums=1)(adapter, x), (x,), (mx.ones_like(x),))[1]
    mx_hvp = mx.jvp(lambda x: mx.grad(loss, argnums=1)(adapter, x), [x], [mx.ones_like(x)])[1][0]
    _close(hvp, mx_hvp, 1e-4)
    per_example = ad.vmap(ad.grad(loss), in_axes=(None, 0))(adapter, x[:, None])
    for i in range(3):
        _close(ad.tree_map(lambda g: g[i], per_example), ad.grad(loss)(adapter, x[i : i + 1]))


def test_quantized_matmul_second_order_in_scales_and_x():
    w = mx.random.normal((8, 64))
    wq, s, b = mx.quantize(w, group_size=32)
    f = lambda x, s, b: anp.tanh(anp.quantized_matmul(x, wq, s, b, group_size=32))
    check_grads(f, (mx.random.normal((2, 64)), s, b), order=2)
    # the mixed second derivative (d/ds of the x-gradient) goes through both transposes
    g = lambda s: ad.grad(lambda x: f(x, s, b).sum())(mx.full((2, 64), 0.02)).sum()
    check_grads(g, (s,), order=1, rtol=1e-4)


def test_gather_qmm_untransposed_scales_gradient_where_mlx_fails():
    wq, s, b = mx.quantize(mx.random.normal((3, 8, 64)), group_size=32)  # (K=8) x (N=64)
    x = mx.random.normal((2, 1, 8))
    li, ri = mx.array([0, 1, 1]), mx.array([2, 0, 2])
    f = lambda x, s, b: anp.gather_qmm(x, wq, s, b, li, ri, transpose=False, group_size=32)
    check_grads(f, (x, s, b), order=2)
    with pytest.raises(ValueError):  # MLX's VJP in the scales fails for transpose=False
        mx.grad(lambda s: f(x, s, b).sum())(s)


def test_mx_spelling_traces():
    wq, s, b = mx.quantize(mx.random.normal((8, 64)), group_size=32)
    e = mx.random.normal((3, 64, 5))

    def f(x):
        y = mx.quantized_matmul(x, wq, s, b, group_size=32)  # (2, 8)
        z = mx.gather_mm(x[:, None], e, None, mx.array([2, 0]))  # (2, 1, 5)
        h = mx.hadamard_transform(y) + mx.dequantize(wq, s, b, group_size=32)[:2, :8]
        return mx.sum(h * h) + mx.sum(z**2)

    x = mx.random.normal((2, 64))
    _close(ad.grad(f)(x), mx.grad(f)(x), 1e-4)


def test_hadamard_transpose_is_h_transposed():
    # H is not symmetric for n = 20 * 2**k: the cotangent is H.T @ ct (MLX's VJP uses H)
    x, ct = mx.random.normal((40,)), mx.random.normal((40,))
    _, vjp = ad.vjp(lambda x: anp.hadamard_transform(x, 0.5), x)
    expected = 0.5 * matrix(40).T @ np.array(ct)
    _close(vjp(ct)[0], expected)
    mx_ct = mx.vjp(lambda x: mx.hadamard_transform(x, 0.5), [x], [ct])[1][0]
    assert not np.allclose(np.array(mx_ct), expected, atol=1e-3)


def test_block_masked_mm_out_mask_cotangent():
    a, b = mx.random.normal((40, 33)), mx.random.normal((33, 8))
    mo = mx.random.uniform(shape=(2, 1))
    f = lambda mo: anp.block_masked_mm(a, b, 32, mo)
    # d/dmo of (a @ b) * up(mo) is the block sums of ct * (a @ b)
    ct = mx.random.normal((40, 8))
    prod = np.array(ct) * np.array(a @ b)
    expected = np.stack([prod[:32].sum(), prod[32:].sum()])[:, None]
    _close(ad.vjp(f, mo)[1](ct)[0], expected, 1e-4)


def test_not_differentiable_and_unsupported_say_why():
    w = mx.random.normal((4, 64))
    wq, s = mx.quantize(w, mode="mxfp8")
    x = mx.random.normal((1, 64))
    with pytest.raises(NotImplementedError, match="piecewise constant"):
        ad.grad(lambda x: anp.qqmm(x, wq, s, mode="mxfp8").sum())(x)
    _close(ad.jit(lambda x: anp.qqmm(x, wq, s, mode="mxfp8"))(x), mx.qqmm(x, wq, s, mode="mxfp8"))
    for name in (
        "gather_qqmm",
        "fast.metal_kernel",
        "fast.cuda_kernel",
        "fast.precompiled_cuda_kernel",
    ):
        assert EXCLUDED[name]
    wq3, s3, b3 = mx.quantize(mx.random.normal((2, 4, 64)), group_size=32)
    with pytest.raises(ValueError, match="batched w"):
        ad.grad(lambda x: anp.quantized_matmul(x, wq3, s3, b3, group_size=32).sum())(x)
    with pytest.raises(NotImplementedError, match="global_scale"):
        ad.grad(
            lambda x: anp.gather_qmm(
                x, wq3, s3, b3, rhs_indices=mx.array([1]), group_size=32, global_scale=mx.array(1.0)
            ).sum()
        )(x)


def test_quantize_scales_gradient_matches_mlx():
    w = mx.random.normal((3, 64))
    for bits in (2, 4, 8):

        def f(w, q=anp.quantize):
            _, s, b = q(w, group_size=32, bits=bits)
            return (s * mx.arange(s.size).reshape(s.shape)).sum() + (b**2).sum()

        _close(ad.grad(f)(w), mx.grad(lambda w: f(w, mx.quantize))(w))

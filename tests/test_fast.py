"""anp.fast: code written with mx.fast and mlx.nn's layers that call it trace under ad.grad
(routing maps mx.fast.X to anp.fast.X), and agree with mx.grad; jit and half precision."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp


def _close(a, b, tol=1e-5):
    la, lb = ad.tree_leaves(a), ad.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(
            np.array(x.astype(mx.float32)), np.array(y.astype(mx.float32)), rtol=tol, atol=tol
        )


def _load(module, params):
    """Put (possibly traced) parameters into a module: ``Module.update`` only takes mx.arrays."""
    for k, v in params.items():
        if isinstance(v, dict):
            _load(module[k], v)
        else:
            module[k] = v


def _layer_loss(layer, *extra):
    params = layer.trainable_parameters()

    def loss(p, x):
        _load(layer, p)
        try:
            return mx.sum(layer(x, *extra) ** 2)
        finally:
            _load(layer, params)

    return loss, params


LAYERS = {
    "RMSNorm": lambda: (nn.RMSNorm(16), ()),
    "LayerNorm": lambda: (nn.LayerNorm(16), ()),
    "LayerNorm_no_affine": lambda: (nn.LayerNorm(16, affine=False), ()),
    "RoPE": lambda: (nn.RoPE(8), ()),
    "RoPE_traditional": lambda: (nn.RoPE(16, traditional=True, base=100.0, scale=0.5), ()),
}


@pytest.mark.parametrize("name", LAYERS)
def test_nn_layers_calling_mx_fast_trace_under_grad(name):
    layer, extra = LAYERS[name]()
    x = mx.random.normal((2, 1, 5, 16))
    loss, params = _layer_loss(layer, *extra)
    _close(ad.grad(loss, argnums=(0, 1))(params, x), mx.grad(loss, argnums=[0, 1])(params, x))


@pytest.mark.skipif(not hasattr(anp, "unflatten"), reason="MultiHeadAttention needs anp.unflatten")
def test_attention_layers_trace_under_grad():
    x = mx.random.normal((2, 5, 16))
    mask = nn.MultiHeadAttention.create_additive_causal_mask(5)
    mha = nn.MultiHeadAttention(16, 4)
    loss, params = _layer_loss(mha, x, x, mask)
    _close(ad.grad(loss, argnums=(0, 1))(params, x), mx.grad(loss, argnums=[0, 1])(params, x))
    enc = nn.TransformerEncoderLayer(16, 4, 32, norm_first=True)
    loss, params = _layer_loss(enc, mask)
    _close(ad.grad(loss)(params, x), mx.grad(loss)(params, x), 1e-4)


def _attention(params, x):
    """A pre-norm attention block written with mx.fast (as mlx-lm's models are)."""
    b, t, d = x.shape
    h = mx.fast.rms_norm(x, params["norm"], 1e-5)
    q, k, v = (
        mx.transpose(mx.reshape(h @ params[n], (b, t, 2, d // 2)), (0, 2, 1, 3))
        for n in ("wq", "wk", "wv")
    )
    q = mx.fast.rope(q, d // 2, traditional=False, base=10000.0, scale=1.0, offset=0)
    k = mx.fast.rope(k, d // 2, traditional=False, base=10000.0, scale=1.0, offset=0)
    o = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.5, mask="causal")
    o = mx.reshape(mx.transpose(o, (0, 2, 1, 3)), (b, t, d))
    return mx.fast.layer_norm(x + o, params["ln"], None, 1e-5)


def test_mx_fast_spelling_traces_and_matches_mx_grad():
    d = 8
    params = {n: mx.random.normal((d, d)) * 0.3 for n in ("wq", "wk", "wv")}
    params["norm"], params["ln"] = mx.random.normal((d,)), mx.random.normal((d,))
    x = mx.random.normal((2, 4, d))
    targets = mx.array([[1, 2, 3, 0], [7, 6, 5, 4]])

    def loss(params, x, targets):
        logits = _attention(params, x)
        return mx.mean(mx.fast.cross_entropy(logits, targets))

    _close(ad.grad(loss)(params, x, targets), mx.grad(loss)(params, x, targets))
    _close(ad.jit(_attention)(params, x), _attention(params, x))
    grad_x = ad.grad(loss, argnums=1)
    per_example = ad.vmap(grad_x, in_axes=(None, 0, 0))(params, x[:, None], targets[:, None])
    _close(per_example[1], grad_x(params, x[1:], targets[1:]))


def test_gated_delta_update_mx_spelling():
    q, k = mx.random.normal((1, 3, 1, 4)), mx.random.normal((1, 3, 1, 4)) * 0.5
    v, g = mx.random.normal((1, 3, 2, 2)), mx.random.uniform(0.5, 1.0, (1, 3, 2))

    def f(q, v):
        y, state = mx.fast.gated_delta_update(q, k, v, g, g * 0.5)
        return mx.sum(y**2) + mx.sum(state)

    _close(ad.grad(f, argnums=(0, 1))(q, v), mx.grad(f, argnums=[0, 1])(q, v))


def test_half_precision_follows_mlx():
    x = mx.random.normal((2, 3, 8)).astype(mx.float16)
    w = mx.random.normal((8,)).astype(mx.float16)
    for f in (
        lambda x: anp.fast.rms_norm(x, w, 1e-5),
        lambda x: anp.fast.layer_norm(x, w, None, 1e-5),
        lambda x: anp.fast.rope(x[None], 8, traditional=True, base=10.0, scale=1.0, offset=1),
        lambda x: anp.fast.scaled_dot_product_attention(x[None], x[None], x[None], scale=0.3),
        lambda x: anp.fast.cross_entropy(x, mx.zeros((2, 3), mx.int32)),
    ):
        eager, traced = f(x), ad.jit(f)(x)
        assert traced.dtype == eager.dtype
        _close(traced, eager, 2e-3)


def test_argument_errors_are_mlx_like():
    x = mx.random.normal((2, 3, 8))
    with pytest.raises(ValueError, match="Exactly one of base and freqs"):
        ad.grad(
            lambda x: anp.fast.rope(x, 8, traditional=False, base=None, scale=1.0, offset=0).sum()
        )(x)
    with pytest.raises(ValueError, match="Invalid mask"):
        ad.grad(
            lambda x: anp.fast.scaled_dot_product_attention(
                x[None], x[None], x[None], scale=1.0, mask="full"
            ).sum()
        )(x)
    with pytest.raises(ValueError, match="weight must have shape"):
        ad.grad(lambda x: anp.fast.rms_norm(x, mx.ones(3), 1e-5).sum())(x)

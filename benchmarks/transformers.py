"""The attention and transformer workloads: a single-head attention block, the multi-head
attention block at two sizes, a Llama-style layer written with ``mlx.core`` and ``mx.fast``
(which the fusion benchmark and tests/test_fuse.py use), and the training step of
``examples/train_transformer.py``."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp
from benchmarks.workloads import (
    Workload,
    _arr,
    _grad_contenders,
    _jax,
    _jax_count,
    _rng,
    _to_jax,
)


def _make_attention(xp):
    def loss(p, x):
        d = x.shape[-1]
        q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
        s = (q @ k.T) / float(np.sqrt(d))
        s = s - xp.max(s, axis=-1, keepdims=True)
        a = xp.exp(s)
        a = a / xp.sum(a, axis=-1, keepdims=True)
        h = x + (a @ v) @ p["wo"]
        mu = xp.mean(h, axis=-1, keepdims=True)
        var = xp.mean((h - mu) ** 2, axis=-1, keepdims=True)
        return xp.mean(((h - mu) / xp.sqrt(var + 1e-5)) ** 2 * p["g"])

    return loss


def attention() -> Workload:
    rng = _rng(5)
    d, s = 64, 128
    params = {k: _arr(rng.standard_normal((d, d)) / np.sqrt(d)) for k in ("wq", "wk", "wv", "wo")}
    params["g"] = mx.ones(d)
    x = _arr(rng.standard_normal((s, d)))
    jax, jnp = _jax()
    c = _grad_contenders(
        _make_attention(anp),
        (params, x),
        jax_f=_make_attention(jnp) if jax else None,
        jax_args=_to_jax((params, x)) if jax else None,
    )
    return Workload(
        "single-head attention block, seq 128, d 64",
        "model",
        c,
        program=lambda: ad.jit(ad.grad(_make_attention(anp))).trace(params, x),
        jax_eqns=_jax_count(_make_attention, (params, x)),
    )


def _example(name: str):
    """A module of examples/ (not a package), loaded by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transformer_step(quick: bool = False) -> Workload:
    """One training step of examples/train_transformer.py's Llama-style model (loss, gradient
    of the trainable parameters, AdamW update of model and optimizer in place)."""
    from functools import partial

    import mlx.nn as nn
    import mlx.optimizers as optim

    import autodiff.mlx.nn as adnn

    ex = _example("train_transformer")
    vocab, dims, layers, seq, batch = 64, 64, 2, 64, 8
    rng = _rng(6)
    w = rng.integers(0, vocab, (batch, seq + 1))
    x, y = mx.array(w[:, :-1]), mx.array(w[:, 1:])

    def setup(value_and_grad):
        mx.random.seed(0)
        model = ex.Llama(vocab, dims=dims, n_layers=layers, n_heads=4)
        opt = optim.AdamW(1e-3)
        loss_and_grad = value_and_grad(model, ex.loss_fn)

        def step(x, y):
            loss, grads = loss_and_grad(model, x, y)
            opt.update(model, grads)
            return loss

        return step, [model.state, opt.state]

    def run(step, state):
        def call():
            loss = step(x, y)
            mx.eval(loss, state)
            return loss

        return call

    mlx_step, mlx_state = setup(nn.value_and_grad)
    mlx_compiled, mlx_cstate = setup(nn.value_and_grad)
    mlx_compiled = partial(mx.compile, inputs=mlx_cstate, outputs=mlx_cstate)(mlx_compiled)
    our_step, our_state = setup(adnn.value_and_grad)
    our_jitted, our_jstate = setup(adnn.value_and_grad)
    our_jitted = ad.jit(our_jitted, inputs=our_jstate, outputs=our_jstate)
    contenders = {
        "mx.grad": run(mlx_step, mlx_state),
        "mx.compile(mx.grad)": run(mlx_compiled, mlx_cstate),
        "ad.grad": run(our_step, our_state),
        "ad.jit(ad.grad)": run(our_jitted, our_jstate),
    }
    return Workload(
        f"Llama-style training step, {layers} layers, d {dims}, seq {seq}, batch {batch}",
        "model",
        contenders,
        program=lambda: our_jitted.trace(x, y),
        notes="MLX: nn.value_and_grad + AdamW update, un-compiled (mx.grad column) and under "
        "partial(mx.compile, inputs=state, outputs=state); ours: autodiff.mlx.nn.value_and_grad "
        "+ the same update, un-compiled (ad.grad) and under ad.jit(step, inputs=state, "
        "outputs=state)",
        extra={"ratios": {"ad.jit step / un-compiled MLX step": ("ad.jit(ad.grad)", "mx.grad")}},
    )


def _make_attention_block(xp, heads=4):
    """A multi-head attention block as transformers write it by hand: layer norms, QKV
    projections with biases, causal softmax attention, an output projection, residuals and a
    ReLU MLP; the loss is the mean square of its output."""

    def layer_norm(x, w, b):
        mu = xp.mean(x, axis=-1, keepdims=True)
        return (x - mu) / xp.sqrt(xp.var(x, axis=-1, keepdims=True) + 1e-5) * w + b

    def block(p, x):
        b, t, d = x.shape
        hd = d // heads

        def split(y):
            return xp.transpose(xp.reshape(y, (b, t, heads, hd)), (0, 2, 1, 3))

        h = layer_norm(x, p["ln1_w"], p["ln1_b"])
        q, k, v = (split(h @ p["w" + n] + p["b" + n]) for n in "qkv")
        s = (q @ xp.swapaxes(k, -1, -2)) * float(1 / np.sqrt(hd))
        s = s + xp.triu(xp.full((t, t), -np.inf, dtype=xp.float32), k=1)
        s = s - xp.max(s, axis=-1, keepdims=True)
        a = xp.exp(s)
        a = a / xp.sum(a, axis=-1, keepdims=True)
        o = xp.reshape(xp.transpose(a @ v, (0, 2, 1, 3)), (b, t, d))
        x = x + o @ p["wo"] + p["bo"]
        h = layer_norm(x, p["ln2_w"], p["ln2_b"])
        return x + xp.maximum(h @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"]

    return lambda p, x: xp.mean(block(p, x) ** 2)


def attention_block_params(d: int, seed: int = 6):
    rng = _rng(seed)
    p = {f"w{n}": _arr(rng.standard_normal((d, d)) / np.sqrt(d)) for n in "qkvo"}
    p |= {f"b{n}": _arr(0.1 * rng.standard_normal(d)) for n in "qkvo"}
    p |= {"w1": _arr(rng.standard_normal((d, 4 * d)) / np.sqrt(d)), "b1": mx.zeros(4 * d)}
    p |= {"w2": _arr(rng.standard_normal((4 * d, d)) / np.sqrt(4 * d)), "b2": mx.zeros(d)}
    p |= {"ln1_w": mx.ones(d), "ln1_b": mx.zeros(d), "ln2_w": mx.ones(d), "ln2_b": mx.zeros(d)}
    return p


def transformer_layer(p, x, heads=4):
    """A pre-norm (Llama-style) layer written with mlx.core and mx.fast, as mlx-lm's models:
    RMS norms, RoPE, causal scaled-dot-product attention and a SwiGLU MLP."""
    b, t, d = x.shape
    hd = d // heads

    def split(y):
        return mx.transpose(mx.reshape(y, (b, t, heads, hd)), (0, 2, 1, 3))

    h = mx.fast.rms_norm(x, p["n1"], 1e-5)
    q, k, v = (split(h @ p["w" + n]) for n in "qkv")
    q = mx.fast.rope(q, hd, traditional=False, base=10000.0, scale=1.0, offset=0)
    k = mx.fast.rope(k, hd, traditional=False, base=10000.0, scale=1.0, offset=0)
    o = mx.fast.scaled_dot_product_attention(q, k, v, scale=hd**-0.5, mask="causal")
    x = x + mx.reshape(mx.transpose(o, (0, 2, 1, 3)), (b, t, d)) @ p["wo"]
    h = mx.fast.rms_norm(x, p["n2"], 1e-5)
    g = h @ p["wg"]
    return x + (g * mx.sigmoid(g) * (h @ p["wu"])) @ p["wd"]


def attention_block(b: int, t: int, d: int) -> Workload:
    params = attention_block_params(d)
    x = _arr(_rng(7).standard_normal((b, t, d)))
    jax, jnp = _jax()
    c = _grad_contenders(
        _make_attention_block(anp),
        (params, x),
        jax_f=_make_attention_block(jnp) if jax else None,
        jax_args=_to_jax((params, x)) if jax else None,
    )
    return Workload(
        f"attention block (4 heads), b{b} t{t} d{d}",
        "model",
        c,
        program=lambda: ad.jit(ad.grad(_make_attention_block(anp))).trace(params, x),
        jax_eqns=_jax_count(_make_attention_block, (params, x)),
    )

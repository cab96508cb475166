"""The fusion pass (autodiff/transforms/fuse): each rewrite is found in the forward and gradient
programs of an attention block and a transformer layer (counted as MLX calls in the lowered
source), and every rewritten program gives the unrewritten program's numbers: run on MLX
(float32 tolerance) and in the float64 interpreter (the rewrite's math, without rounding).
Random programs without the patterns, and near misses of them, are never changed."""

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
import autodiff.numpy as anp
from autodiff.interpret import interpret
from autodiff.ir import typecheck
from autodiff.program import fusion_rules
from autodiff.testing.strategies import arrays, programs, shapes
from autodiff.transforms.fuse import NAMES, SLOWER_ON_CPU, default_rules, fuse
from benchmarks.transformers import transformer_layer  # the layer the fusion benchmark times


@pytest.fixture(autouse=True)
def _every_rule():
    """Test every rewrite (on the CPU, ``fuse=True`` leaves out those that are slower there)."""
    with ad.config.override(fuse=NAMES):
        yield


CALLS = {
    "sdpa": "mx.fast.scaled_dot_product_attention(",
    "layer_norm": "mx.fast.layer_norm(",
    "rms_norm": "mx.fast.rms_norm(",
    "rope": "mx.fast.rope(",
    "addmm": "mx.addmm(",
    "softmax": "mx.softmax(",
    "logsumexp": "mx.logsumexp(",
    "cross_entropy": "mx.fast.cross_entropy(",
}


def _f32(rng, *shape, scale=1.0):
    return mx.array((scale * rng.standard_normal(shape)).astype(np.float32))


def layer_norm(x, w, b, eps=1e-5):
    """Written by hand: mean, var, rsqrt."""
    mu = anp.mean(x, axis=-1, keepdims=True)
    return (x - mu) * anp.rsqrt(anp.var(x, axis=-1, keepdims=True) + eps) * w + b


def attention_block(p, x, heads=4):
    """A post-residual attention block (GPT-2 style) written with autodiff.numpy by hand:
    biases, an additive causal mask from triu, anp.softmax, hand-written layer norms."""
    b, t, d = x.shape
    hd = d // heads

    def split(y):
        return anp.transpose(anp.reshape(y, (b, t, heads, hd)), (0, 2, 1, 3))

    h = layer_norm(x, p["ln1_w"], p["ln1_b"])
    q, k, v = (split(h @ p["w" + n] + p["b" + n]) for n in "qkv")
    s = (q @ anp.swapaxes(k, -1, -2)) * (1 / math.sqrt(hd))
    a = anp.softmax(s + anp.triu(anp.full((t, t), -math.inf), k=1), axis=-1)
    x = x + anp.reshape(anp.transpose(a @ v, (0, 2, 1, 3)), (b, t, d)) @ p["wo"] + p["bo"]
    h = layer_norm(x, p["ln2_w"], p["ln2_b"])
    return x + anp.maximum(h @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"]


def block_params(d=32, f=64, vocab=16, seed=0):
    rng = np.random.default_rng(seed)
    p = {f"w{n}": _f32(rng, d, d, scale=d**-0.5) for n in "qkvo"}
    p |= {f"b{n}": _f32(rng, d, scale=0.1) for n in "qkvo"}
    p |= {"w1": _f32(rng, d, f, scale=d**-0.5), "b1": _f32(rng, f, scale=0.1)}
    p |= {"w2": _f32(rng, f, d, scale=f**-0.5), "b2": _f32(rng, d, scale=0.1)}
    for n in ("ln1", "ln2"):
        p |= {f"{n}_w": 1 + _f32(rng, d, scale=0.1), f"{n}_b": _f32(rng, d, scale=0.1)}
    p["head"] = _f32(rng, d, vocab, scale=d**-0.5)
    return p


def layer_params(d=32, f=64, vocab=16, seed=1):
    rng = np.random.default_rng(seed)
    p = {f"w{n}": _f32(rng, d, d, scale=d**-0.5) for n in "qkvo"}
    p |= {n: _f32(rng, d, f, scale=d**-0.5) for n in ("wg", "wu")}
    p |= {"wd": _f32(rng, f, d, scale=f**-0.5), "head": _f32(rng, d, vocab, scale=d**-0.5)}
    p |= {"n1": 1 + _f32(rng, d, scale=0.1), "n2": 1 + _f32(rng, d, scale=0.1)}
    return p


def block_loss(p, x, targets):
    """Next-token loss through mlx.nn's cross_entropy (logsumexp minus the target logit)."""
    logits = attention_block(p, x) @ p["head"]
    return mx.mean(nn.losses.cross_entropy(logits, targets))


def layer_loss(p, x, targets):
    """The same through a log-softmax (mlx.nn's: x minus logsumexp) and a gather."""
    logp = nn.log_softmax(transformer_layer(p, x) @ p["head"], axis=-1)
    return -mx.mean(mx.take_along_axis(logp, targets[..., None], axis=-1))


def _data(b=2, t=8, d=32, vocab=16, seed=2):
    rng = np.random.default_rng(seed)
    return _f32(rng, b, t, d), mx.array(rng.integers(0, vocab, (b, t)).astype(np.int32))


MODELS = {"block": (block_loss, block_params), "layer": (layer_loss, layer_params)}


def _programs(model):
    loss, params = MODELS[model]
    return {
        "fwd": loss,
        "grad": ad.grad(loss),
        "value_and_grad": ad.value_and_grad(loss),
    }, (params(), *_data())


def _counts(text: str) -> dict:
    return {k: text.count(call) for k, call in CALLS.items()}


def _close(a, b, tol=1e-5):
    la, lb = ad.tree_leaves(a), ad.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(
            np.array(x.astype(mx.float32)), np.array(y.astype(mx.float32)), rtol=tol, atol=tol
        )


def _fused_and_plain(f, args, tol=1e-5, interpreter=True):
    """Lowered source of ``ad.jit(f)`` with fusion; asserts its results equal the unfused
    program's on MLX, and the rewritten jaxpr's equal the original's in float64."""
    jitted = ad.jit(f)
    text = jitted.lower(*args).as_text()
    out = jitted(*args)
    closed = jitted.trace(*args)
    with ad.config.override(fuse=False):
        plain = ad.jit(f)
        ref = plain(*args)
        assert "mx.fast." not in plain.lower(*args).as_text()
    _close(out, ref, tol)
    if interpreter:
        fused = fuse(closed)
        typecheck(fused)
        flat = ad.tree_leaves(args)
        for a, b in zip(interpret(fused, *flat), interpret(closed, *flat)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    return text


# What each program holds once fused. Gradient programs keep the attention, layer-norm and
# RMS-norm forward intermediates the backward reads (so those stay unfused, save where the
# norm's input is data: its backward is not needed), and gain mx.softmax (the backward
# rewritten to read the probabilities) and the transposed RoPE.
EXPECTED = {
    ("block", "fwd"): dict(sdpa=1, layer_norm=2, addmm=6, cross_entropy=1),
    ("block", "grad"): dict(layer_norm=1, addmm=9, softmax=2),
    ("block", "value_and_grad"): dict(layer_norm=1, addmm=9, softmax=2, cross_entropy=1),
    ("layer", "fwd"): dict(sdpa=1, rms_norm=2, rope=2, addmm=2, logsumexp=1),
    ("layer", "grad"): dict(rms_norm=1, rope=4, addmm=5, softmax=2),
    ("layer", "value_and_grad"): dict(rms_norm=1, rope=4, addmm=5, softmax=2, logsumexp=1),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["fwd", "grad", "value_and_grad"])
def test_models_fuse_and_agree(model, kind):
    progs, args = _programs(model)
    text = _fused_and_plain(progs[kind], args, tol=2e-5)
    counts = {k: n for k, n in _counts(text).items() if n}
    assert counts == EXPECTED[(model, kind)]


@pytest.mark.parametrize("rule", list(CALLS))
def test_every_rewrite_is_found_in_forward_and_gradient_programs(rule):
    # EXPECTED, per rule (so a failing rule is named): each one is in a forward program and
    # in a derivative program of the two models; attention in the gradient programs of the
    # next test
    fwd = sum(EXPECTED[(m, "fwd")].get(rule, 0) for m in MODELS)
    grad = sum(EXPECTED[(m, k)].get(rule, 0) for m in MODELS for k in ("grad", "value_and_grad"))
    # (in forward programs the softmax is inside the attention)
    assert (fwd or rule == "softmax") and (grad or rule == "sdpa")


def test_attention_in_gradient_programs():
    # The attention's forward is fused in a gradient program only where its backward is not
    # needed: here the loss is differentiated in the MLP's weights, not the attention's.
    p, (x, targets) = block_params(), _data()
    mlp = {k: p[k] for k in ("w1", "b1", "w2", "b2", "head")}
    rest = {k: v for k, v in p.items() if k not in mlp}

    def loss(mlp, rest, x, targets):
        return block_loss({**rest, **mlp}, x, targets)

    text = _fused_and_plain(ad.grad(loss), (mlp, rest, x, targets), tol=2e-5)
    assert _counts(text)["sdpa"] == 1 and _counts(text)["layer_norm"] == 2
    text = _fused_and_plain(ad.grad(loss, argnums=(0, 1)), (mlp, rest, x, targets), tol=2e-5)
    assert _counts(text)["sdpa"] == 0 and _counts(text)["softmax"] >= 1


# ---------------------------------------------------------------------------------------------
# Each rewrite on its own, in the ways it is written


def _qkv(rng, b=2, h=3, t=8, d=16, dtype=mx.float32):
    return tuple(_f32(rng, b, h, t, d).astype(dtype) for _ in range(3))


def _hand_attention(q, k, v, mask=None, *, how):
    d = q.shape[-1]
    if how == "scale_q":
        s = (q * d**-0.5) @ mx.swapaxes(k, -1, -2)
    elif how == "divide":
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
    elif how == "einsum":
        s = anp.einsum("bhqd,bhkd->bhqk", q, k) * d**-0.5
    else:
        s = (q @ mx.swapaxes(k, -1, -2)) * d**-0.5
    if mask is not None:
        s = anp.where(mask, s, -math.inf) if mask.dtype == mx.bool_ else s + mask
    if how == "exp_sum":
        e = mx.exp(s - mx.max(s, axis=-1, keepdims=True))
        return (e / mx.sum(e, axis=-1, keepdims=True)) @ v
    return mx.softmax(s, axis=-1) @ v


@pytest.mark.parametrize("how", ["scale_q", "divide", "einsum", "scale_scores", "exp_sum"])
@pytest.mark.parametrize("mask", ["none", "causal_bool", "causal_additive", "additive", "bool"])
def test_attention_written_any_way(how, mask):
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng)
    t = q.shape[2]
    masks = {
        "none": None,
        "causal_bool": mx.array(np.tril(np.ones((t, t), bool))),
        "causal_additive": anp.triu(anp.full((t, t), -math.inf), k=1),
        "additive": _f32(rng, t, t),
        "bool": mx.array(rng.random((2, 1, t, t)) < 0.7) | mx.eye(t, dtype=mx.bool_),
    }
    m = masks[mask]
    text = _fused_and_plain(lambda q, k, v: _hand_attention(q, k, v, m, how=how), (q, k, v))
    assert _counts(text)["sdpa"] == 1
    if mask.startswith("causal"):
        assert "mask='causal'" in text


@pytest.mark.parametrize("mask", [None, "causal", "array_bool", "array_add"])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_anp_fast_attention_composite(mask, dtype):
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, t=6, dtype=dtype)
    m = {
        None: None,
        "causal": "causal",
        "array_bool": mx.array(rng.random((6, 6)) < 0.8) | mx.eye(6, dtype=mx.bool_),
        "array_add": _f32(rng, 1, 3, 6, 6).astype(dtype),
    }[mask]

    def f(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=m)

    tol = 1e-5 if dtype == mx.float32 else 2e-2
    text = _fused_and_plain(f, (q, k, v), tol=tol, interpreter=dtype == mx.float32)
    assert _counts(text)["sdpa"] == 1


@pytest.mark.parametrize("shape", [(8, 16), (3, 8, 16), (2, 2, 2, 8, 16)])
def test_attention_any_number_of_batch_axes(shape):
    rng = np.random.default_rng(5)
    q, k, v = (_f32(rng, *shape) for _ in range(3))

    def f(q, k, v):
        return anp.softmax(q @ anp.swapaxes(k, -1, -2) * 0.25, axis=-1) @ v

    assert _counts(_fused_and_plain(f, (q, k, v)))["sdpa"] == 1


@pytest.mark.parametrize("mask", [None, "causal", "array"])
def test_grouped_query_attention(mask):
    # k and v are broadcast over the query heads of a group: the kernel takes them untiled
    rng = np.random.default_rng(6)
    q = _f32(rng, 2, 4, 5, 8)
    k, v = _f32(rng, 2, 2, 5, 8), _f32(rng, 2, 2, 5, 8)
    m = _f32(rng, 4, 5, 5) if mask == "array" else mask

    def f(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.5, mask=m)

    text = _fused_and_plain(f, (q, k, v))
    assert _counts(text)["sdpa"] == 1 and "broadcast_to" not in text
    g = ad.grad(lambda q, k, v: mx.sum(f(q, k, v) ** 2), argnums=(0, 1, 2))
    _fused_and_plain(g, (q, k, v))


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_norms(dtype, affine):
    rng = np.random.default_rng(7)
    x = _f32(rng, 2, 5, 16).astype(dtype)
    w = (1 + _f32(rng, 16, scale=0.1)).astype(dtype)
    b = _f32(rng, 16, scale=0.1).astype(dtype)
    ww, bb = (w if affine != "none" else None), (b if affine == "both" else None)
    tol = 1e-5 if dtype == mx.float32 else 2e-2
    f32 = dtype == mx.float32
    ln = _fused_and_plain(lambda x: mx.fast.layer_norm(x, ww, bb, 1e-5), (x,), tol, f32)
    assert _counts(ln)["layer_norm"] == 1
    rms = _fused_and_plain(lambda x: mx.fast.rms_norm(x, ww, 1e-6), (x,), tol, f32)
    assert _counts(rms)["rms_norm"] == 1
    if f32:  # by hand: x / sqrt(var + eps), (x - mu) ** 2, mean(x * x)

        def ln2(x):
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return (x - mu) / mx.sqrt(var + 1e-5) * w + b

        def rms2(x):
            return x * mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + 1e-6) * w

        assert _counts(_fused_and_plain(ln2, (x,)))["layer_norm"] == 1
        assert _counts(_fused_and_plain(rms2, (x,)))["rms_norm"] == 1


@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dims", [16, 8])
@pytest.mark.parametrize("base,scale,offset", [(10000.0, 1.0, 0), (100.0, 0.5, 3)])
def test_rope_forward_and_transposed(traditional, dims, base, scale, offset):
    rng = np.random.default_rng(8)
    x = _f32(rng, 2, 3, 7, 16)

    def f(x):
        return mx.fast.rope(x, dims, traditional=traditional, base=base, scale=scale, offset=offset)

    text = _fused_and_plain(f, (x,), tol=2e-5)
    assert _counts(text)["rope"] == 1
    assert f"base={base!r}" in text and f"offset={offset}" in text
    g = ad.grad(lambda x, c: mx.sum(f(x) * c))
    text = _fused_and_plain(g, (x, _f32(rng, 2, 3, 7, 16)), tol=2e-5)
    assert _counts(text)["rope"] == 1  # the transposed rotation: RoPE with -scale
    assert f"scale={-scale!r}" in text


def test_rope_with_other_tables_is_left_alone():
    rng = np.random.default_rng(9)
    x = _f32(rng, 1, 1, 6, 8)
    freqs = mx.array([1.0, 3.0, 7.0, 20.0])  # custom frequencies: not a base's

    def f(x):
        return mx.fast.rope(x, 8, traditional=False, base=None, scale=1.0, offset=0, freqs=freqs)

    assert _counts(_fused_and_plain(f, (x,), tol=2e-5))["rope"] == 0


@pytest.mark.parametrize("how", ["bias", "residual", "update", "scaled"])
def test_addmm(how):
    rng = np.random.default_rng(10)
    x, w, c = _f32(rng, 3, 5, 8), _f32(rng, 8, 6), _f32(rng, 3, 5, 6)
    b = _f32(rng, 6)
    f = {
        "bias": lambda x, w, c: x @ w + b,
        "residual": lambda x, w, c: c + x @ w,
        "update": lambda x, w, c: c - 0.1 * (x @ w),
        "scaled": lambda x, w, c: 2.0 * c - (x @ w),
    }[how]
    assert _counts(_fused_and_plain(f, (x, w, c)))["addmm"] == 1


def test_softmax_logsumexp_and_cross_entropy():
    rng = np.random.default_rng(11)
    x = _f32(rng, 4, 10, scale=3.0)
    t = mx.array(rng.integers(0, 10, 4).astype(np.int32))
    cases = {
        "softmax": (lambda x: mx.softmax(x, axis=0), (x,)),
        "logsumexp": (lambda x: mx.logsumexp(x, axis=-1, keepdims=True), (x,)),
        "cross_entropy": (lambda x, t: mx.fast.cross_entropy(x, t), (x, t)),
    }
    for rule, (f, args) in cases.items():
        assert _counts(_fused_and_plain(f, args))[rule] == 1, rule
    # the gradient of a cross-entropy: mx.softmax, joined with the forward's logsumexp
    vg = ad.value_and_grad(lambda x, t: nn.losses.cross_entropy(x, t).mean())
    counts = _counts(_fused_and_plain(vg, (x, t)))
    assert counts["cross_entropy"] == 1 and counts["softmax"] == 1

    # a log-softmax by hand (the max subtracted), and its gradient
    def log_softmax(x):
        z = x - mx.max(x, axis=-1, keepdims=True)
        return z - mx.log(mx.sum(mx.exp(z), axis=-1, keepdims=True))

    assert _counts(_fused_and_plain(log_softmax, (x,)))["logsumexp"] == 1
    g = ad.grad(lambda x: mx.sum(log_softmax(x) * x))
    assert _counts(_fused_and_plain(g, (x,)))["softmax"] == 1


def test_switch_and_program_caches():
    rng = np.random.default_rng(12)
    x, w, b = _f32(rng, 4, 8), _f32(rng, 8, 8), _f32(rng, 8)
    f = ad.jit(lambda x: x @ w + b)
    assert "mx.addmm" in f.lower(x).as_text()
    with ad.config.override(fuse=False):  # switching empties the caches: lowered anew
        assert "mx.addmm" not in f.lower(x).as_text()
        _close(f(x), x @ w + b)
        _close(ad.grad(lambda x: mx.sum(x @ w + b))(x), mx.grad(lambda x: mx.sum(x @ w + b))(x))
    assert "mx.addmm" in f.lower(x).as_text()


def test_default_rules_by_device():
    assert default_rules(gpu=True) == NAMES
    assert default_rules(gpu=False) == NAMES - set(SLOWER_ON_CPU)
    with ad.config.override(fuse=True):
        gpu = mx.default_device().type == mx.DeviceType.gpu
        assert fusion_rules() == default_rules(gpu)
    with ad.config.override(fuse=["addmm"]):
        rng = np.random.default_rng(14)
        x, w, b = _f32(rng, 4, 8), _f32(rng, 8, 8), _f32(rng, 8)
        text = ad.jit(lambda x: mx.softmax(x @ w + b, axis=-1)).lower(x).as_text()
        assert _counts(text)["addmm"] == 1 and _counts(text)["softmax"] == 0
    with pytest.raises(ValueError, match="unknown rule"):
        fuse(ad.make_jaxpr(lambda x: x)(x), {"flash"})


def test_mx_compile_of_fused_programs(compiled):
    p, (x, t) = layer_params(), _data()
    g = ad.jit(ad.value_and_grad(layer_loss))
    out = g(p, x, t)
    out = g(p, x, t)
    _close(out, mx.value_and_grad(layer_loss)(p, x, t), 2e-5)


# ---------------------------------------------------------------------------------------------
# Programs without the patterns, and near misses: never changed


@settings(max_examples=25)
@given(programs(max_steps=6), shapes(1, 3, 1, 5).flatmap(lambda s: arrays(s)))
def test_random_programs_are_unchanged(prog, x):
    for f in (prog, ad.grad(prog)):
        closed = ad.jit(f).trace(x)
        fused = fuse(closed)
        if fused is not closed:  # a rewrite must give the same numbers
            typecheck(fused)
            for a, b in zip(interpret(fused, x), interpret(closed, x)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        with ad.config.override(fuse=False):
            ref = ad.jit(f)(x)
        _close(ad.jit(f)(x), ref, 1e-5)


NEAR_MISSES = {
    # softmax over one axis, normalised over another
    "softmax_axes": lambda x: mx.exp(x) / mx.sum(mx.exp(x), axis=0, keepdims=True),
    # the shift varies along the axis: not a softmax
    "softmax_shift": lambda x: (
        mx.exp(x - x[:, :1] * x) / mx.sum(mx.exp(x - x[:, :1] * x), -1, keepdims=True)
    ),
    # a norm over the first axis, and one whose epsilon is an array
    "norm_axis": lambda x: (x - x.mean(0)) * mx.rsqrt(x.var(0) + 1e-5),
    "norm_eps": lambda x: x * mx.rsqrt(mx.mean(x * x, -1, keepdims=True) + x[:, :1] ** 2),
    # the mean's factor is not 1/n
    "norm_factor": lambda x: x * mx.rsqrt(mx.sum(x * x, -1, keepdims=True) * 0.5 + 1e-5),
    # a bias along the first axis, and a product used twice
    "addmm_bias": lambda x: x @ x.T + mx.arange(x.shape[0], dtype=mx.float32)[:, None],
    "addmm_twice": lambda x: (x @ x.T + 1.0) * (x @ x.T),
    # logsumexp with a different shift added back
    "lse_shift": lambda x: mx.log(mx.sum(mx.exp(x - 1.0), -1)) + 2.0,
    # attention whose softmax is over the query axis
    "attention_axis": lambda x: mx.softmax(x @ x.T, axis=0) @ x,
    # (not misses) attention whose scores are shifted by a number (a softmax ignores it: no
    # mask), and one masked along the keys only
    "attention_shift": lambda x: mx.softmax(x @ x.T + 3.0, -1) @ x,
    "attention_key_mask": lambda x: (
        mx.softmax(mx.where(mx.arange(5) < 3, x @ x.T, -mx.inf), -1) @ x
    ),
    # attention masked by a finite fill that is not the lowest value
    "attention_fill": lambda x: mx.softmax(mx.where(x @ x.T > 0, x @ x.T, -5.0), -1) @ x,
}


@pytest.mark.parametrize("name", NEAR_MISSES)
def test_near_misses_keep_their_results(name):
    rng = np.random.default_rng(13)
    x = _f32(rng, 5, 6)
    f = NEAR_MISSES[name]
    text = _fused_and_plain(f, (x,))
    _close(ad.jit(f)(x), f(x))
    if name in ("attention_shift", "attention_key_mask"):  # not misses: attention
        assert _counts(text)["sdpa"] == 1
    elif name.startswith(("norm", "attention")):
        assert "mx.fast." not in text
    _fused_and_plain(ad.grad(lambda x: mx.sum(f(x) ** 2)), (x,))


@settings(max_examples=20)
@given(
    st.sampled_from(["scale_q", "divide", "einsum", "scale_scores", "exp_sum"]),
    st.sampled_from([None, "bool", "add"]),
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 9),
    st.booleans(),
)
def test_random_attention_variants(how, mask, heads, tq, tk, grad):
    rng = np.random.default_rng(tq * 31 + tk)
    q = _f32(rng, 2, heads, tq, 4)
    k, v = _f32(rng, 2, heads, tk, 4), _f32(rng, 2, heads, tk, 4)
    m = None
    if mask == "bool":
        m = mx.array(rng.random((tq, tk)) < 0.6)
        m = m | mx.array(np.arange(tk)[None] == 0)  # every row keeps a key
    elif mask == "add":
        m = _f32(rng, heads, tq, tk)

    def f(q, k, v):
        return _hand_attention(q, k, v, m, how=how)

    if grad:
        f = ad.grad(lambda q, k, v, f=f: mx.sum(f(q, k, v) ** 2), argnums=(0, 1, 2))
    _fused_and_plain(f, (q, k, v), tol=2e-5)

"""Whole mlx.nn models under autodiff, against MLX running the same script: an MLP, a CNN
(Conv2d, MaxPool2d/AvgPool2d, BatchNorm in training mode) and the Llama-style transformer of
examples/train_transformer.py (Embedding, RMSNorm, RoPE, mx.fast attention, SwiGLU, dropout).

For each: the gradient at initialisation equals ``mlx.nn.value_and_grad``'s, and 50 training
steps from the same initialisation and data give MLX's losses, parameters and running
statistics, both un-compiled and compiled. The training script is one function run with
``mx``/``nn`` bound to ``mlx.core``/``mlx.nn`` (MLX) or ``autodiff.mlx``/``autodiff.mlx.nn``
(autodiff), plus a variant compiled with ``ad.jit(..., inputs=, outputs=)`` that
differentiates the model as a pytree with ``ad.value_and_grad``.
"""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path

import mlx.core as mxc
import mlx.nn as mnn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import autodiff as ad
import autodiff.mlx as admx
import autodiff.mlx.nn as adnn
import autodiff.numpy as anp
from autodiff.config import config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# the models, their data and losses


def mlp():
    return mnn.Sequential(
        mnn.Linear(16, 32), mnn.ReLU(), mnn.Linear(32, 32), mnn.GELU(), mnn.Linear(32, 5)
    )


class CNN(mnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = mnn.Conv2d(1, 8, 3, padding=1, bias=False)  # BatchNorm follows
        self.bn1 = mnn.BatchNorm(8)
        self.pool1 = mnn.MaxPool2d(2)
        self.conv2 = mnn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = mnn.BatchNorm(16)
        self.pool2 = mnn.AvgPool2d(2)
        self.head = mnn.Linear(16 * 2 * 2, 5)

    def __call__(self, x):
        x = self.pool1(mnn.relu(self.bn1(self.conv1(x))))
        x = self.pool2(mnn.relu(self.bn2(self.conv2(x))))
        return self.head(x.reshape(x.shape[0], -1))


def llama(dropout=0.1):
    return _example("train_transformer").Llama(
        vocab=20, dims=32, n_layers=2, n_heads=4, dropout=dropout
    )


def classification(m, x, y):
    return mnn.losses.cross_entropy(m(x), y, reduction="mean")


def _batches(kind, n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if kind == "mlp":
            x = rng.standard_normal((32, 16))
            y = rng.integers(0, 5, 32)
        elif kind == "cnn":
            x = rng.standard_normal((16, 8, 8, 1))
            y = rng.integers(0, 5, 16)
        else:
            w = rng.integers(0, 20, (8, 13))
            x, y = w[:, :-1], w[:, 1:]
        out.append((mxc.array(x.astype(np.float32) if x.dtype.kind == "f" else x), mxc.array(y)))
    return out


MODELS = {
    "mlp": (mlp, classification, lambda: optim.Adam(1e-2)),
    "cnn": (CNN, classification, lambda: optim.Adam(3e-3)),
    "llama": (llama, classification, lambda: optim.AdamW(3e-3, weight_decay=0.01)),
}


def _make(kind):
    mxc.random.seed(3)
    model = MODELS[kind][0]()
    mxc.eval(model.parameters())
    return model


def _close(a, b, rtol, atol, what):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb], what
    for (k, x), (_, y) in zip(fa, fb):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=rtol, atol=atol, err_msg=k)


# ---------------------------------------------------------------------------------------------
# gradients at initialisation


@pytest.mark.parametrize("kind", list(MODELS))
def test_gradients_equal_mlx(kind):
    _, loss_fn, _ = MODELS[kind]
    x, y = _batches(kind)[0]
    ref = _make(kind)
    value, expected = mnn.value_and_grad(ref, loss_fn)(ref, x, y)

    model = _make(kind)
    ours_value, ours = adnn.value_and_grad(model, loss_fn)(model, x, y)
    _close(ours_value, value, 1e-5, 1e-6, "loss")
    _close(ours, expected, 1e-4, 1e-5, "autodiff.mlx.nn.value_and_grad")
    _close(model.parameters(), ref.parameters(), 1e-5, 1e-6, "state after the call")

    model = _make(kind)
    ours_value, ours = ad.value_and_grad(loss_fn)(model, x, y)
    _close(ours_value, value, 1e-5, 1e-6, "loss")
    _close(ours, expected, 1e-4, 1e-5, "ad.value_and_grad of the module")
    _close(model.parameters(), ref.parameters(), 1e-5, 1e-6, "state after the call")


# ---------------------------------------------------------------------------------------------
# 50 training steps


def train(mx, nn, kind, compiled, steps=50):
    """The training script, with ``mx``/``nn`` MLX's or autodiff's. ``compiled``: None,
    "compile" (``partial(mx.compile, inputs=state, outputs=state)``) or "ad.jit"."""
    _, loss_fn, make_opt = MODELS[kind]
    model, optimizer = _make(kind), make_opt()
    state = [model.state, optimizer.state, mxc.random.state]  # dropout draws from the PRNG
    if compiled == "ad.jit":
        loss_and_grad = ad.value_and_grad(loss_fn)
    else:
        loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    if compiled == "compile":
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    elif compiled == "ad.jit":
        step = ad.jit(step, inputs=state, outputs=state)
    data = _batches(kind)
    losses = []
    mxc.random.seed(4)
    for i in range(steps):
        loss = step(*data[i % len(data)])
        mxc.eval(state)
        losses.append(loss.item())
    return np.array(losses), model


TOLERANCES = {"mlp": (1e-4, 1e-5), "cnn": (1e-3, 1e-4), "llama": (1e-3, 1e-4)}


def _check_training(kind, compiled):
    rtol, atol = TOLERANCES[kind]
    ours_mode = compiled
    theirs_mode = None if compiled is None else "compile"
    expected, ref = train(mxc, mnn, kind, theirs_mode)
    losses, model = train(admx, adnn, kind, ours_mode)
    assert losses[-1] < 0.7 * losses[0], "the model trains"
    np.testing.assert_allclose(losses, expected, rtol=rtol, atol=atol)
    _close(model.parameters(), ref.parameters(), 10 * rtol, 10 * atol, "after training")


@pytest.mark.parametrize("compiled", [None, "compile", "ad.jit"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_matches_mlx(kind, compiled):
    with config.override(compile=compiled is not None):
        _check_training(kind, compiled)


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [None, "compile", "ad.jit"])
def test_training_transformer_matches_mlx(compiled):
    with config.override(compile=compiled is not None):
        _check_training("llama", compiled)


def test_compiled_step_traces_once():
    """The compiled step is traced once, and later steps run the compiled program (the
    optimizer's lazily created state and step counter are part of the captured state)."""
    model, optimizer = _make("mlp"), optim.Adam(1e-2)
    state = [model.state, optimizer.state]
    calls = []

    def loss_fn(m, x, y):
        calls.append(1)
        return classification(m, x, y)

    loss_and_grad = adnn.value_and_grad(model, loss_fn)

    @partial(admx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    data = _batches("mlp")
    for i in range(6):
        step(*data[i % len(data)])
    assert len(calls) <= 2  # the first call, and the one where the optimizer state appeared
    assert optimizer.state["step"].item() == 6


@pytest.mark.parametrize("first", ["call", "trace", "lower"])
def test_trace_and_lower_of_a_stateful_step_leave_the_state_as_it_was(first):
    """``.trace()``/``.lower()`` of a jitted step with captured state change nothing: no traced
    value is left in the model or the optimizer (also where the optimizer creates its state in
    the trace), and the steps that follow give MLX's losses."""
    from autodiff.tracing import Tracer

    def run(mxm, nnm, inspect):
        model, opt = _make("mlp"), optim.Adam(1e-2)
        state = [model.state, opt.state]
        loss_and_grad = nnm.value_and_grad(model, classification)

        def step(x, y):
            loss, grads = loss_and_grad(model, x, y)
            opt.update(model, grads)
            return loss

        if inspect:
            step = ad.jit(step, inputs=state, outputs=state)
        else:
            step = partial(mxm.compile, inputs=state, outputs=state)(step)
        data, losses = _batches("mlp"), []
        for i in range(4):
            if inspect and i == (0 if first != "call" else 1):
                before = tree_flatten(state)
                getattr(step, "lower" if first == "lower" else "trace")(*data[i % len(data)])
                after = tree_flatten(state)
                assert [k for k, _ in after] == [k for k, _ in before]
                assert all(a is b for (_, a), (_, b) in zip(after, before))
                assert not any(type(v) is Tracer for _, v in after)
            losses.append(step(*data[i % len(data)]).item())
        return losses

    np.testing.assert_allclose(run(admx, adnn, True), run(mxc, mnn, False), rtol=1e-5)


@pytest.mark.parametrize("dtype", [mxc.float16, mxc.bfloat16])
def test_low_precision_transformer_gradients(dtype):
    """The transformer cast with set_dtype (as mlx-lm runs models): the loss and gradients
    keep MLX's dtypes and agree with MLX's to the precision of the dtype."""
    x, y = _batches("llama")[0]
    ref, model = _make("llama"), _make("llama")
    ref.set_dtype(dtype)
    model.set_dtype(dtype)
    mxc.random.seed(5)  # the same dropout masks
    value, expected = mnn.value_and_grad(ref, classification)(ref, x, y)
    mxc.random.seed(5)
    ours_value, ours = adnn.value_and_grad(model, classification)(model, x, y)
    assert ours_value.dtype == value.dtype == dtype
    np.testing.assert_allclose(ours_value.item(), value.item(), rtol=1e-2)
    for (k, a), (_, b) in zip(tree_flatten(ours), tree_flatten(expected)):
        assert a.dtype == b.dtype, k
        a, b = np.array(a.astype(mxc.float32)), np.array(b.astype(mxc.float32))
        assert np.abs(a - b).max() <= 0.05 * np.abs(b).max() + 1e-3, k


# ---------------------------------------------------------------------------------------------
# every optimizer of mlx.optimizers in a compiled step

OPTIMIZERS = {
    "SGD": lambda: optim.SGD(0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    "RMSprop": lambda: optim.RMSprop(1e-2),
    "Adagrad": lambda: optim.Adagrad(1e-1),
    "AdaDelta": lambda: optim.AdaDelta(1.0),
    "Adam": lambda: optim.Adam(1e-2, bias_correction=True),
    "AdamW": lambda: optim.AdamW(optim.cosine_decay(1e-2, 20)),
    "Adamax": lambda: optim.Adamax(1e-2),
    "Lion": lambda: optim.Lion(1e-3, weight_decay=0.01),
    "Adafactor": lambda: optim.Adafactor(),
    "Muon": lambda: optim.Muon(1e-2),
    "MultiOptimizer": lambda: optim.MultiOptimizer(
        [optim.SGD(0.1), optim.Adam(1e-2)], [lambda name, w: w.ndim > 1]
    ),
}
NEEDS = {"Muon": "linalg"}  # mx.linalg.norm, which another branch adds to autodiff.numpy


def test_every_optimizer_is_listed():
    names = {
        n
        for n in dir(optim)
        if isinstance(getattr(optim, n), type) and issubclass(getattr(optim, n), optim.Optimizer)
    }
    assert names - {"Optimizer"} == set(OPTIMIZERS)


def _optimizer_run(mx, nn, make_opt, compiled, clip):
    model, opt = _make("mlp"), make_opt()
    state = [model.state, opt.state]
    loss_and_grad = nn.value_and_grad(model, classification)

    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        if clip:
            grads, _ = optim.clip_grad_norm(grads, 0.5)
        opt.update(model, grads)
        return loss

    if compiled:
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    data, losses = _batches("mlp"), []
    for i in range(12):
        losses.append(step(*data[i % len(data)]).item())
        mxc.eval(state)
    return np.array(losses), model


@pytest.mark.parametrize(
    "compiled",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # MLX compiles kernels per optimizer
    ids=["eager", "compiled"],
)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_matches_mlx(name, compiled):
    """Each optimizer (with schedules, weight decay, Nesterov momentum, gradient clipping for
    Adam) under autodiff.mlx's value_and_grad and compile: MLX's losses and parameters."""
    if name in NEEDS and not hasattr(anp, NEEDS[name]):
        pytest.skip(f"needs autodiff.numpy.{NEEDS[name]} (another branch)")
    with config.override(compile=compiled):
        for clip in (False, True) if name == "Adam" else (False,):
            expected, ref = _optimizer_run(mxc, mnn, OPTIMIZERS[name], compiled, clip)
            losses, model = _optimizer_run(admx, adnn, OPTIMIZERS[name], compiled, clip)
            np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-6)
            _close(model.parameters(), ref.parameters(), 1e-4, 1e-6, name)

"""Every layer class of ``mlx.nn`` and every loss of ``mlx.nn.losses`` under autodiff's
transforms, against MLX's own (the cases are in tests/nn_table.py).

For each case: the forward pass under ``ad.jit`` with the module's state captured equals
MLX's (``mx.compile`` with the same state) and leaves the module's state as MLX leaves it
(BatchNorm's running statistics); the gradient with respect to the inputs equals
``mx.grad``'s; the gradient with respect to the trainable parameters, taken with the module as
a pytree (``ad.grad(lambda m: ...)(model)``) and with ``autodiff.mlx.nn.value_and_grad``,
equals ``mlx.nn.value_and_grad``'s; and the module's state afterwards is MLX's. Where MLX lacks
the rule, float64 finite differences through our interpreter are the oracle.
"""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from nn_table import (
    EXCLUDED,
    EXCLUDED_LOSSES,
    LAYERS,
    LOSSES,
    PENDING,
    Case,
    layer_classes,
    loss_functions,
)

import autodiff as ad
import autodiff.mlx.nn as adnn
import autodiff.numpy as anp
from autodiff.testing import check_grads

CASES = LAYERS + LOSSES


def _build(case: Case):
    """The module (seeded: every call gives an equal one) and the inputs."""
    if case.needs and not hasattr(anp, case.needs):
        pytest.skip(f"needs autodiff.numpy.{case.needs} (another branch): {case.note}")
    mx.random.seed(7)
    m = case.make()
    if isinstance(m, mnn.Module):
        m.train(case.train)
        mx.eval(m.parameters())
    mx.random.seed(8)
    ins = case.inputs()
    mx.eval([x for x in ins if isinstance(x, mx.array)])
    return m, ins


def _call(case: Case, m, *ins):
    if case.call is not None:
        return case.call(m, *ins)
    return m(*ins, **case.kwargs)


def _leaves(out):
    return [v for _, v in tree_flatten(out)] if not isinstance(out, mx.array) else [out]


def _weights(out):
    """Fixed random weights, one array per output leaf: the scalar the gradients are of is
    ``sum(out * w)``, which sees every output element (a plain sum of softmax is constant)."""
    rng = np.random.default_rng(0)
    leaves = [v for _, v in tree_flatten(out)] if not isinstance(out, mx.array) else [out]
    return [mx.array(rng.standard_normal(x.shape).astype(np.float32)) for x in leaves]


def _scalar(out, ws):
    leaves = [v for _, v in tree_flatten(out)] if not isinstance(out, mx.array) else [out]
    return sum(mx.sum(x * w) for x, w in zip(leaves, ws))


def _close(ours, theirs, case, what):
    a, b = tree_flatten(ours), tree_flatten(theirs)
    assert [k for k, _ in a] == [k for k, _ in b], f"{case.name}: {what}: trees differ"
    for (k, x), (_, y) in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype, f"{case.name}: {what} {k}"
        np.testing.assert_allclose(
            np.array(x.astype(mx.float32) if x.dtype == mx.bfloat16 else x),
            np.array(y.astype(mx.float32) if y.dtype == mx.bfloat16 else y),
            rtol=case.rtol,
            atol=case.atol,
            err_msg=f"{case.name}: {what} {k}",
        )


def _state(m):
    return m.parameters() if isinstance(m, mnn.Module) else {}


def _as_tree(x):
    return {"": x} if isinstance(x, mx.array) else x


IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_jit_with_state(case):
    """ad.jit with the module's state captured, called twice, against mx.compile's with the
    module's state and the PRNG state captured (dropout draws a new mask at every call, the
    same as MLX's from the same seed)."""
    ref, ins = _build(case)
    ours, _ = _build(case)
    ref_state = [ref.state, mx.random.state] if isinstance(ref, mnn.Module) else []
    our_state = [ours.state] if isinstance(ours, mnn.Module) else []
    mlx_step = mx.compile(lambda *a: _call(case, ref, *a), inputs=ref_state, outputs=ref_state)
    our_step = ad.jit(lambda *a: _call(case, ours, *a), inputs=our_state, outputs=our_state)
    runs = []
    for step, m in ((mlx_step, ref), (our_step, ours)):
        mx.random.seed(11)
        runs.append([(step(*ins), _state(m)) for _ in range(2)])
    for (got, got_state), (expected, expected_state) in zip(*runs):
        _close(_as_tree(got), _as_tree(expected), case, "output")
        _close(got_state, expected_state, case, "state after the call")
    if case.random:
        (first, _), (second, _) = runs[1]
        assert not np.array_equal(np.array(first), np.array(second)), "the same mask twice"


@pytest.mark.parametrize("case", [c for c in CASES if c.diff and c.grad], ids=lambda c: c.name)
def test_grad_inputs(case):
    """The gradient with respect to the float inputs, with the value, and the state after."""
    ref, ins = _build(case)
    ours, _ = _build(case)
    ws = _weights(_call(case, _build(case)[0], *ins))
    f_ref = lambda *a: _scalar(_call(case, ref, *a), ws)
    f_ours = lambda *a: _scalar(_call(case, ours, *a), ws)
    mx.random.seed(11)
    value, grads = ad.value_and_grad(f_ours, argnums=case.diff)(*ins)
    if case.mx_grad:
        mx.random.seed(11)
        expected_value, expected = mx.value_and_grad(f_ref, argnums=list(case.diff))(*ins)
        expected = expected if isinstance(expected, tuple) else (expected,)
        _close(value, expected_value, case, "value")
        _close(list(grads), list(expected), case, "gradient")
        _close(_state(ours), _state(ref), case, "state after grad")
    else:
        _finite_differences(case, f_ours, ins)


def _finite_differences(case, f, ins):
    def g(*diffed):
        full = list(ins)
        for i, x in zip(case.diff, diffed):
            full[i] = x
        return f(*full)

    check_grads(g, [ins[i] for i in case.diff], order=1, modes=("rev",))


def _has_trainable(case) -> bool:
    mx.random.seed(7)
    m = case.make()
    return isinstance(m, mnn.Module) and bool(tree_flatten(m.trainable_parameters()))


@pytest.mark.parametrize(
    "case", [c for c in LAYERS if c.grad and _has_trainable(c)], ids=lambda c: c.name
)
def test_grad_parameters(case):
    """ad.value_and_grad with the module as a pytree, and autodiff.mlx.nn.value_and_grad,
    against mlx.nn.value_and_grad (gradients, values, and the state after)."""
    ref, ins = _build(case)
    ws = _weights(_call(case, _build(case)[0], *ins))
    loss = lambda m, *a: _scalar(_call(case, m, *a), ws)
    mx.random.seed(11)
    expected_value, expected = mnn.value_and_grad(ref, lambda *a: loss(ref, *a))(*ins)

    as_tree, _ = _build(case)
    mx.random.seed(11)
    value, grads = ad.value_and_grad(loss)(as_tree, *ins)
    _close(value, expected_value, case, "value (module as pytree)")
    _close(grads, expected, case, "parameter gradient (module as pytree)")
    _close(_state(as_tree), _state(ref), case, "state after grad (module as pytree)")

    frontend, _ = _build(case)
    mx.random.seed(11)
    value, grads = adnn.value_and_grad(frontend, lambda *a: loss(frontend, *a))(*ins)
    _close(value, expected_value, case, "value (autodiff.mlx.nn)")
    _close(grads, expected, case, "parameter gradient (autodiff.mlx.nn)")
    _close(_state(frontend), _state(ref), case, "state after grad (autodiff.mlx.nn)")


def _low(x, dtype):
    if isinstance(x, mx.array) and mx.issubdtype(x.dtype, mx.floating):
        return x.astype(dtype)
    return x


def _rel_err(a, b):
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    return np.abs(a - b).max() / (np.abs(b).max() + 1e-3)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_precision(case, dtype):
    """The module cast with ``set_dtype`` and float inputs in ``dtype``: outputs and input
    gradients have MLX's dtypes and agree with MLX's to the dtype's precision."""
    ref, ins = _build(case)
    ours, _ = _build(case)
    for m in (ref, ours):
        if isinstance(m, mnn.Module):
            m.set_dtype(dtype)
    ins = tuple(_low(x, dtype) for x in ins)
    mx.random.seed(11)
    expected = _call(case, ref, *ins)
    state = [ours.state] if isinstance(ours, mnn.Module) else []
    mx.random.seed(11)
    got = ad.jit(lambda *a: _call(case, ours, *a), inputs=state, outputs=state)(*ins)
    for a, b in zip(tree_flatten(_as_tree(got)), tree_flatten(_as_tree(expected))):
        assert a[1].dtype == b[1].dtype, a[0]
        assert _rel_err(a[1], b[1]) < 0.03, a[0]
    if not (case.diff and case.grad and case.mx_grad):
        return
    ws = [
        _low(w, b.dtype if mx.issubdtype(b.dtype, mx.floating) else dtype)
        for w, b in zip(_weights(expected), _leaves(expected))
    ]
    f_ref = lambda *a: _scalar(_call(case, ref, *a), ws)
    f_ours = lambda *a: _scalar(_call(case, ours, *a), ws)
    mx.random.seed(11)
    expected = mx.grad(f_ref, argnums=list(case.diff))(*ins)
    expected = expected if isinstance(expected, tuple) else (expected,)
    mx.random.seed(11)
    for a, b in zip(ad.grad(f_ours, argnums=case.diff)(*ins), expected):
        assert a.dtype == b.dtype
        assert _rel_err(a, b) < 0.05


# ---------------------------------------------------------------------------------------------
# the lists are complete


def test_every_layer_class_is_covered():
    covered = {c.cls for c in LAYERS}
    names = set(layer_classes())
    missing = names - covered - set(EXCLUDED) - set(PENDING)
    assert not missing, f"mlx.nn layers with no case, exclusion or pending entry: {missing}"
    stale = (covered | set(EXCLUDED) | set(PENDING)) - names
    assert not stale, f"entries for classes mlx.nn no longer has: {stale}"
    assert not covered & set(EXCLUDED), "a class is both covered and excluded"


def test_every_loss_is_covered():
    covered = {c.cls for c in LOSSES}
    names = set(loss_functions())
    missing = names - covered - set(EXCLUDED_LOSSES)
    assert not missing, f"mlx.nn.losses functions with no case or exclusion: {missing}"
    assert not (covered | set(EXCLUDED_LOSSES)) - names


# ---------------------------------------------------------------------------------------------
# routing details the table relies on


def test_checkpointed_layers_are_checkpointed():
    """mlx.nn's checkpoint (mx.checkpoint made while tracing) records autodiff's remat, one
    region per layer, each with its own layer's parameters."""
    mx.random.seed(0)
    m = mnn.TransformerEncoder(2, 8, 2, mlp_dims=16, checkpoint=True)
    x = mx.random.normal((2, 3, 8))
    jaxpr = ad.make_jaxpr(lambda m: mx.sum(m(x, None)))(m)
    assert str(jaxpr).count("remat") == 2
    before = tree_flatten(m.parameters())
    ad.grad(lambda m: mx.sum(m(x, None)))(m)
    for (_, a), (_, b) in zip(before, tree_flatten(m.parameters())):
        assert a is b  # the model keeps its own parameters


def test_mlx_functions_held_by_modules_are_routed():
    """Modules may keep mlx.core functions as attributes (pooling keeps mx.max, mx.mean)."""
    pool = mnn.MaxPool1d(2)
    assert pool._pooling_function is mx.max  # outside traces: MLX's own object
    x = mx.random.normal((1, 4, 2))
    expected = mx.grad(lambda x: mx.sum(pool(x) ** 2))(x)
    np.testing.assert_allclose(ad.grad(lambda x: mx.sum(pool(x) ** 2))(x), expected, rtol=1e-6)
    assert pool._pooling_function is mx.max
    seq = mnn.Sequential(mnn.Linear(2, 3), mx.tanh, mnn.Linear(3, 1))
    f = lambda x: mx.sum(seq(x))
    np.testing.assert_allclose(ad.grad(f)(x), mx.grad(f)(x), rtol=1e-5, atol=1e-7)


def test_mlx_nn_is_untouched_outside_traces():
    before = (dict(vars(mnn.Module)), dict(vars(mnn.Sequential)), mx.checkpoint)
    ad.grad(lambda x: mx.sum(mnn.Sequential(mnn.Linear(2, 2), mx.tanh)(x)))(mx.ones((1, 2)))
    assert (dict(vars(mnn.Module)), dict(vars(mnn.Sequential)), mx.checkpoint) == before
    assert "__getattribute__" not in vars(mnn.Module)


def test_running_statistics_follow_mlx_under_every_transform():
    """BatchNorm in training mode updates its running statistics once per call, as MLX's
    transforms leave them (grad, value_and_grad, vjp, jvp, and jit with captured state),
    including statistics computed from traced values and a module passed as a pytree; nested
    transforms update them once."""
    x = mx.random.normal((6, 3))

    def make():
        mx.random.seed(1)
        return mnn.Sequential(mnn.Linear(3, 4), mnn.BatchNorm(4))

    ref = make()
    loss = lambda m, x: mx.sum(m(x) ** 3)
    mnn.value_and_grad(ref, lambda x: loss(ref, x))(x)
    expected = ref.layers[1].running_var

    for run in (
        lambda m: ad.grad(loss)(m, x),
        lambda m: ad.grad(lambda x: loss(m, x))(x),
        lambda m: adnn.value_and_grad(m, lambda x: loss(m, x))(x),
        lambda m: ad.vjp(lambda x: loss(m, x), x),
        lambda m: ad.jvp(lambda x: loss(m, x), (x,), (x,)),
        lambda m: ad.grad(lambda x: mx.sum(ad.grad(lambda x: loss(m, x))(x)))(x),
        lambda m: ad.jit(ad.grad(loss), inputs=[m.state], outputs=[m.state])(m, x),
    ):
        m = make()
        run(m)
        got = m.layers[1].running_var
        assert type(got) is mx.array
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_jit_warns_about_module_writes_it_discards():
    """BatchNorm's statistics computed inside ad.jit without captured state would be lost
    silently (MLX's compile leaves arrays that cannot be evaluated): a warning says what to do;
    with the state captured they are kept, without a warning."""
    m, x = mnn.BatchNorm(3), mx.random.normal((5, 3))
    with pytest.warns(UserWarning, match=r"BatchNorm.running_mean.*outputs=\[model.state\]"):
        ad.jit(lambda x: m(x))(x)
    assert np.array_equal(np.array(m.running_mean), np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ad.jit(lambda x: m(x), inputs=[m.state], outputs=[m.state])(x)
    np.testing.assert_allclose(m.running_mean, 0.1 * mx.mean(x, axis=0), rtol=1e-5)


def test_compiled_functions_made_and_freed_in_a_loop():
    """Each mx.compile'd function is traced through as itself, though a freed one's id is
    reused by the next (an id-keyed cache gave every call the first function)."""

    def f(x):
        out = 0.0
        for i in range(1, 4):
            out = out + mx.compile(lambda x, i=i: x * i)(x)
        return mx.sum(out)

    x = mx.ones(3)
    np.testing.assert_array_equal(ad.grad(f)(x), mx.full((3,), 6.0))

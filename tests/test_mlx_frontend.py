"""The MLX frontend: code written with mlx.core traces, autodiff.mlx is mlx.core with the
transforms replaced (MLX's signatures and conventions), modules are pytrees, and MLX outside
traces is untouched."""

import threading
from functools import partial

import mlx.core as mxc
import mlx.nn as mnn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import autodiff as ad
import autodiff.mlx as mx
import autodiff.mlx.nn as nn
from autodiff import routing
from autodiff.tracing import Tracer


def close(a, b, tol=1e-5):
    la = [v for _, v in tree_flatten(a)] if isinstance(a, (dict, list, tuple)) else [a]
    lb = [v for _, v in tree_flatten(b)] if isinstance(b, (dict, list, tuple)) else [b]
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


def test_mlx_code_traces_under_every_transform():
    f = lambda x: mxc.sum(mxc.sin(x) * mxc.exp(x))
    x = mxc.array([0.1, 0.5, -0.3])
    close(ad.grad(f)(x), mxc.grad(f)(x))
    close(ad.jit(ad.grad(f))(x), mxc.grad(f)(x))
    close(ad.vmap(ad.grad(f))(mxc.stack([x, x * 2])), mxc.vmap(mxc.grad(f))(mxc.stack([x, x * 2])))
    close(
        ad.grad(ad.grad(lambda x: mxc.sin(x) ** 3))(mxc.array(0.4)),
        mxc.grad(mxc.grad(lambda x: mxc.sin(x) ** 3))(mxc.array(0.4)),
    )
    W = mxc.ones((2, 3))
    close(
        ad.grad(lambda x: mxc.sum(W @ x + mnn.gelu(x)[:2]))(x),
        mxc.grad(lambda x: mxc.sum(W @ x + mnn.gelu(x)[:2]))(x),
    )


def test_the_motivating_example_of_the_issue():
    model = mnn.Sequential(mnn.Linear(4, 16), mnn.ReLU(), mnn.Linear(16, 1))
    x, y = mxc.random.normal((5, 4)), mxc.random.normal((5, 1))

    def loss(params, x, y):
        model.update(params)
        return mnn.losses.mse_loss(model(x), y)

    params = model.trainable_parameters()
    ours = ad.grad(loss)(params, x, y)
    assert type(model.layers[0].weight) is mxc.array  # the model got its parameters back
    theirs = mnn.value_and_grad(model, lambda x, y: mnn.losses.mse_loss(model(x), y))(x, y)[1]
    close(ours, theirs)


def test_modules_are_pytrees_of_trainable_parameters():
    class Net(mnn.Module):
        def __init__(self):
            super().__init__()
            self.a = mnn.Linear(3, 4)
            self.b = [mnn.Linear(4, 2), mnn.Linear(2, 2)]
            self.scale = 2.0

        def __call__(self, x):
            h = self.a(x)
            for layer in self.b:
                h = layer(h)
            return h * self.scale

    net = Net()
    net.a.freeze()
    x = mxc.random.normal((2, 3))
    loss = lambda m: mxc.sum(m(x) ** 2)
    g = ad.grad(loss)(net)
    assert g["a"] == {}  # frozen parameters are not differentiated: an empty entry, as in MLX
    close(g, mnn.value_and_grad(net, lambda: loss(net))()[1])
    optim.SGD(0.1).update(net, g)  # the layout optimizers take


def test_autodiff_mlx_transforms_have_mlx_signatures():
    f = lambda a, b, c=1.0: (mx.sum(a * b * c), a)
    a, b = mx.array(2.0), mx.array(3.0)
    close(mx.value_and_grad(f)(a, b), mxc.value_and_grad(f)(a, b))
    g2 = lambda a, b: mx.sum(a * b * b)
    close(mx.grad(g2, argnums=[1, 0])(a, b), mxc.grad(g2, argnums=[1, 0])(a, b))
    g3 = lambda a, b, c: mx.sum(a * b * c)
    close(
        mx.grad(g3, argnums=1, argnames=["c"])(a, b, c=mx.array(4.0)),
        mxc.grad(g3, argnums=1, argnames=["c"])(a, b, c=mx.array(4.0)),
    )
    h = lambda a, b: [a * b, a + b]
    close(
        mx.vjp(h, [a, b], [mx.array(1.0), mx.array(2.0)]),
        mxc.vjp(h, [a, b], [mx.array(1.0), mx.array(2.0)]),
    )
    close(mx.jvp(lambda x: x * x, [a], [b]), mxc.jvp(lambda x: x * x, [a], [b]))
    xs, w = mx.ones((3, 2)), mx.array([1.0, 2.0])
    close(
        mx.vmap(lambda x, w: x * w, in_axes=[0, None])(xs, w),
        mxc.vmap(lambda x, w: x * w, in_axes=(0, None))(xs, w),
    )
    # higher order through MLX's spelling
    close(
        mx.grad(mx.grad(lambda x: mx.sin(x) * x))(a),
        mxc.grad(mxc.grad(lambda x: mxc.sin(x) * x))(a),
    )


def test_complex_gradients_follow_mlx_convention_in_autodiff_mlx():
    z = mx.array(1.0 + 2.0j)
    f = lambda z: mx.abs(z * (1 - 0.5j)) ** 2 + mx.real(z)
    close(mx.grad(f)(z), mxc.grad(f)(z))
    close(ad.grad(f)(z), mxc.conj(mxc.grad(f)(z)))  # JAX's: the conjugate


def test_compile_captures_state_and_treats_python_scalars_as_constants():
    calls = []

    def f(x, n):
        calls.append(n)
        return x * n

    c = mx.compile(f)
    x = mx.ones(2)
    assert c(x, 2).tolist() == [2.0, 2.0] and c(x, 2).tolist() == [2.0, 2.0]
    assert c(x, 3).tolist() == [3.0, 3.0]
    assert calls == [2, 3]  # one trace per constant, as mx.compile

    model = mnn.Linear(3, 1)
    opt = optim.SGD(learning_rate=0.1)
    state = [model.state, opt.state]
    lg = nn.value_and_grad(model, lambda m, x, y: mnn.losses.mse_loss(m(x), y))

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = lg(model, x, y)
        opt.update(model, grads)
        return loss

    ref = mnn.Linear(3, 1)
    ref.update(model.parameters())
    ref_opt = optim.SGD(learning_rate=0.1)
    ref_lg = mnn.value_and_grad(ref, lambda m, x, y: mnn.losses.mse_loss(m(x), y))
    x, y = mx.random.normal((8, 3)), mx.random.normal((8, 1))
    for _ in range(5):
        ours = step(x, y)
        theirs, grads = ref_lg(ref, x, y)
        ref_opt.update(ref, grads)
        close(ours, theirs)
    close(model.parameters(), ref.parameters())
    assert all(type(v) is mxc.array for _, v in tree_flatten(model.parameters()))


def test_custom_function_vjp_jvp_vmap_and_captured_constants():
    @mx.custom_function
    def f(x, y):
        return mx.sin(x) * y

    @f.vjp
    def f_vjp(primals, cotangent, output):
        x, y = primals
        return 2.0 * cotangent * mx.cos(x) * y, cotangent * mx.sin(x)

    @f.jvp
    def f_jvp(primals, tangents):
        x, y = primals
        dx, dy = tangents
        return 3.0 * dx * mx.cos(x) * y + dy * mx.sin(x)

    x, y = mx.array(0.5), mx.array(2.0)
    ref = mxc.custom_function(lambda x, y: mxc.sin(x) * y)
    ref.vjp(lambda p, c, o: (2.0 * c * mxc.cos(p[0]) * p[1], c * mxc.sin(p[0])))
    ref.jvp(lambda p, t: 3.0 * t[0] * mxc.cos(p[0]) * p[1] + t[1] * mxc.sin(p[0]))
    close(mx.grad(f, argnums=[0, 1])(x, y), mxc.grad(ref, argnums=[0, 1])(x, y))  # the vjp
    close(
        mx.jvp(f, [x, y], [mx.array(1.0), mx.array(0.0)]),
        mxc.jvp(ref, [x, y], [mx.array(1.0), mx.array(0.0)]),
    )

    def g(x, y):
        @mx.custom_function
        def h(x):
            return x * y

        @h.vjp
        def h_vjp(x, dx, fx):
            return dx * 10.0

        return h(x)

    assert float(mx.grad(g)(x, y)) == 10.0
    assert float(mx.grad(g, argnums=1)(x, y)) == 0.0  # captured: a constant, as in MLX

    @mx.custom_function
    def k(x):
        return x * 2.0

    @k.vmap
    def k_vmap(inputs, axes):
        return inputs * 5.0, axes

    close(mx.vmap(k)(mx.ones(3)), mx.ones(3) * 5.0)


def test_mlx_outside_traces_is_untouched():
    originals = {n: getattr(mxc, n) for n in ("sin", "add", "matmul", "sum")}
    ops = {n: getattr(mxc.array, n) for n in ("__add__", "__matmul__", "__getitem__")}
    ad.grad(lambda x: mxc.sum(mxc.sin(x)))(mxc.ones(3))
    for n, f in originals.items():
        assert getattr(mxc, n) is f
    for n, f in ops.items():
        assert getattr(mxc.array, n) is f
    assert "__setitem__" not in mnn.Module.__dict__
    assert type(mnn.relu).__call__ is routing._compiled_call


def test_eager_mlx_in_other_threads_is_correct_while_tracing():
    x = mxc.array([0.1, 0.2, 0.3])
    expected = np.array(mxc.sin(x) @ mxc.ones((3,)) + 1)
    errors, stop = [], threading.Event()

    def eager():
        while not stop.is_set():
            got = np.array(mxc.sin(x) @ mxc.ones((3,)) + 1)
            if not np.allclose(got, expected):
                errors.append(got)

    t = threading.Thread(target=eager)
    t.start()
    try:
        for i in range(200):
            ad.grad(lambda v: mxc.sum(mxc.sin(v) * i))(x)
    finally:
        stop.set()
        t.join()
    assert not errors


def test_a_function_imported_by_name_says_how_to_fix():
    from mlx.core import sin  # bound before any trace: routing cannot reach it

    with pytest.raises(TypeError, match="mx.sin"):
        ad.grad(lambda x: mxc.sum(sin(x)))(mxc.ones(2))


def test_tracers_never_stay_in_models():
    model = mnn.Linear(2, 2)

    def loss(params, x):
        model.update(params)
        return mxc.sum(model(x))

    ad.jit(ad.grad(loss))(model.trainable_parameters(), mxc.ones((1, 2)))
    assert not any(type(v) is Tracer for _, v in tree_flatten(model.parameters()))


def test_star_import_gives_all_of_mlx_core_with_our_transforms():
    namespace: dict = {}
    exec("from autodiff.mlx import *", namespace)
    plain: dict = {}
    exec("from mlx.core import *", plain)
    assert set(plain) - {"__builtins__"} <= set(namespace)
    assert namespace["sin"] is plain["sin"] and namespace["grad"] is mx.grad
    assert namespace["compile"] is mx.compile and namespace["compile"] is not plain["compile"]

"""jit, the caches, and compiled execution (a representative few compile for real)."""

import threading

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError
from autodiff.config import config
from autodiff.jit import jit_cache
from autodiff.program import LRUCache, transform_cache


def close(a, b, tol=1e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


def test_jit_traces_once_per_signature():
    calls = []

    def f(x, y):
        calls.append(1)
        return {"s": anp.sin(x) * y, "t": (x + 1, y)}

    jf = ad.jit(f)
    x, y = mx.array([0.1, 0.2]), mx.array(3.0)
    for _ in range(3):
        close(jf(x, y), f(x, y))
    assert len(calls) == 1 + 3  # one trace, plus the three eager reference calls
    jf(mx.ones(3), y)  # new shape: retrace
    assert len(calls) == 5


def test_static_args_and_closure_constants():
    calls = []

    def f(x, n, *, mode):
        calls.append((n, mode))
        return x**n if mode == "pow" else x * n

    jf = ad.jit(f, static_argnums=1, static_argnames="mode")
    x = mx.array(2.0)
    assert float(jf(x, 3, mode="pow")) == 8.0
    assert float(jf(x, 3, mode="pow")) == 8.0
    assert float(jf(x, 2, mode="mul")) == 4.0
    assert calls == [(3, "pow"), (2, "mul")]
    with pytest.raises(TransformError, match="hashable"):
        ad.jit(lambda x, s: x, static_argnums=1)(x, [1, 2])
    w = mx.array(1.0)
    g = ad.jit(lambda x: x * w)
    assert float(g(x)) == 2.0
    w = mx.array(5.0)  # noqa: F841  the closed-over value was baked in, as documented
    assert float(g(x)) == 2.0


def test_lower_shows_mlx_source():
    text = ad.jit(ad.grad(lambda x: anp.sum(anp.sin(x) * anp.cos(x)))).lower(mx.ones(4)).as_text()
    assert (
        text.startswith("def ") and "mx.sin(" in text and "mx.cos(" in text and "return (" in text
    )


def test_jit_composes_with_transforms():
    f = lambda x: anp.sum(anp.tanh(x) ** 2)
    x = mx.array([0.3, -0.7, 1.1])
    expected = mx.grad(f)(x)
    close(ad.jit(ad.grad(f))(x), expected)
    close(ad.grad(ad.jit(f))(x), expected)
    close(ad.vmap(ad.jit(ad.grad(f)))(mx.stack([x, x])), mx.stack([expected, expected]))
    close(ad.jit(lambda x: ad.jit(f)(x) * 2)(x), 2 * f(x))
    # a jitted closure over a traced value is valid only inside its trace: not cached
    close(ad.grad(lambda x: ad.jit(lambda y: anp.sum(x * y))(x))(x), 2 * x)
    close(ad.grad(lambda x: ad.jit(lambda y: anp.sum(x * y))(x))(2 * x), 4 * x)


def test_compiled_execution(compiled):
    f = lambda x: anp.sin(x) ** 3 * anp.exp(x)
    g4 = ad.jit(ad.grad(ad.grad(ad.grad(ad.grad(f)))))
    h = f
    for _ in range(4):
        h = mx.grad(h)
    x = mx.array(0.5)
    assert float(g4(x)) == pytest.approx(float(h(x)), rel=1e-4)
    params = {"w": mx.random.normal((8, 4)), "b": mx.zeros(4)}
    loss = lambda p, x: anp.mean(anp.maximum(x @ p["w"] + p["b"], 0.0) ** 2)
    xs = mx.random.normal((16, 8))
    close(
        ad.jit(ad.value_and_grad(loss))(params, xs), mx.value_and_grad(loss)(params, xs), tol=1e-4
    )


def test_unjitted_transform_compiles_from_second_use():
    old = config.compile
    config.compile = "auto"
    try:
        transform_cache.clear()
        f = lambda x: anp.sum(anp.exp(x) * x)
        x = mx.array([1.0, 2.0])
        for _ in range(3):
            close(ad.grad(f)(x), mx.grad(f)(x))
        (entry,) = [v for v in transform_cache._data.values()]
        program = entry[0]
        assert program.compiled() is not None
    finally:
        config.compile = old


def test_caches_are_bounded_clearable_and_thread_safe():
    cache = LRUCache(2)
    for k in range(3):
        cache.put(k, str(k))
    assert cache.get(0) is None and cache.get(2) == "2" and len(cache) == 2
    ad.clear_caches()
    assert len(transform_cache) == 0 and len(jit_cache) == 0

    errors = []

    def work(seed):
        try:
            x = mx.array([float(seed), 1.0])
            for _ in range(20):
                close(
                    ad.grad(lambda x: anp.sum(anp.sin(x) * x))(x),
                    mx.cos(x) * x + mx.sin(x),
                    tol=1e-4,
                )
                close(ad.jit(lambda x: x * 2)(x), 2 * x)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_direct_path_retraces_on_new_shapes_and_output_trees(compiled):
    calls = []

    def f(x):
        calls.append(x.shape)
        # the output tree depends on the input shape
        return (x * 2.0, x.sum()) if x.shape[0] > 2 else x * 2.0

    jf = ad.jit(f)
    for _ in range(3):
        out = jf(mx.ones(3))
        assert isinstance(out, tuple) and float(out[1]) == 3.0
    out = jf(mx.ones(2))  # another shape and another output tree: falls back, still right
    assert not isinstance(out, tuple) and out.shape == (2,)
    for _ in range(2):
        assert float(jf(mx.ones(3))[1]) == 3.0
        assert jf(mx.ones(2)).shape == (2,)
    assert calls == [(3,), (2,)]  # traced once per signature

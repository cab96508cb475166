"""grad, value_and_grad, vjp, jvp, linearize: pytrees, argnums, has_aux, and their errors."""

from collections import namedtuple

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError
from autodiff.transforms import jvp as jvp_module

Pair = namedtuple("Pair", "a b")


def close(a, b, tol=1e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


def loss(params, x):
    h = anp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
    out = h @ params["layers"][1]["w"]
    extra = params["pair"].a * params["pair"].b
    return anp.mean(out**2) + anp.sum(extra)


def make_params():
    return {
        "layers": [
            {"w": mx.random.normal((3, 4)), "b": mx.zeros(4)},
            {"w": mx.random.normal((4, 2)), "b": None},
        ],
        "pair": Pair(mx.array(1.5), mx.array([0.5, -1.0])),
    }


def test_nested_params_dict_gradient_has_same_structure():
    params, x = make_params(), mx.random.normal((5, 3))
    g = ad.grad(loss)(params, x)
    assert ad.tree_flatten(g)[1] == ad.tree_flatten(params)[1]
    assert isinstance(g["pair"], Pair) and g["layers"][1]["b"] is None
    leaves, treedef = ad.tree_flatten(params)  # mx.grad does not take None leaves
    close(g, mx.grad(lambda ls: loss(ad.tree_unflatten(treedef, ls), x))(leaves))


def test_value_and_grad_has_aux_argnums_order():
    f = lambda a, b, c: (anp.sum(a * b**2 + c), {"mean": anp.mean(a)})
    a, b, c = mx.array([1.0, 2.0]), mx.array([3.0, 4.0]), mx.array(5.0)
    (value, aux), grads = ad.value_and_grad(f, argnums=(1, 0), has_aux=True)(a, b, c)
    assert float(value) == pytest.approx(1 * 9 + 2 * 16 + 10)
    assert float(aux["mean"]) == pytest.approx(1.5)
    close(grads[0], 2 * a * b)  # argnums order kept: (1, 0) -> (d/db, d/da)
    close(grads[1], b**2)
    g, aux = ad.grad(f, argnums=2, has_aux=True)(a, b, c)
    assert float(g) == 2.0 and float(aux["mean"]) == 1.5
    assert float(ad.grad(lambda x, y: x * y, argnums=-1)(mx.array(2.0), mx.array(3.0))) == 2.0


def test_python_scalars_and_kwargs():
    f = lambda x, scale=1.0: x**2 * scale
    assert float(ad.grad(f)(3.0, scale=2.0)) == pytest.approx(12.0)
    n = 3
    assert float(ad.grad(lambda x, k: x**k)(2.0, n)) == pytest.approx(12.0)  # k stays a Python int


def test_allow_int():
    f = lambda x, i: anp.sum(x * i)
    x, i = mx.array([1.0, 2.0]), mx.array([3, 4])
    with pytest.raises(TypeError, match=r"\[grad\] `<lambda>`.*i32\[2\].*allow_int"):
        ad.grad(f, argnums=1)(x, i)
    gx, gi = ad.grad(f, argnums=(0, 1), allow_int=True)(x, i)
    close(gx, mx.array([3.0, 4.0]))
    assert gi.dtype == mx.int32 and not np.any(np.array(gi))


def test_errors_are_worded_like_jax_and_name_the_function():
    def vector_loss(x):
        return x * 2

    with pytest.raises(TypeError, match=r"`vector_loss`.*f32\[3\].*jacrev.*\.sum\(\)"):
        ad.grad(vector_loss)(mx.ones(3))
    with pytest.raises(TypeError, match="floating-point scalar"):
        ad.grad(lambda x: anp.sum(x).astype(mx.int32))(mx.ones(3))
    with pytest.raises(
        TransformError, match=r"argnums=2 is out of range.*`vector_loss`.*1 positional"
    ):
        ad.grad(vector_loss, argnums=2)(mx.ones(3))
    with pytest.raises(TransformError, match="duplicates"):
        ad.grad(lambda x, y: x * y, argnums=(0, -2))(mx.ones(()), mx.ones(()))
    with pytest.raises(TransformError, match="has_aux=True requires"):
        ad.grad(lambda x: x, has_aux=True)(mx.ones(()))


def test_vjp_reusable_and_checks_cotangents():
    f = lambda x, y: {"s": anp.sin(x) * y, "c": anp.cos(x)}
    x, y = mx.array([0.1, 0.2, 0.3]), mx.array(2.0)
    out, vjp_fn = ad.vjp(f, x, y)
    close(out["s"], mx.sin(x) * y)
    for k in range(3):
        ct = {"s": mx.ones(3) * k, "c": mx.ones(3)}
        gx, gy = vjp_fn(ct)
        close(gx, k * mx.cos(x) * y - mx.sin(x))
        close(gy, k * mx.sum(mx.sin(x)))
    with pytest.raises(TypeError, match=r"cotangent f32\[2\].*output type f32\[3\]"):
        vjp_fn({"s": mx.ones(2), "c": mx.ones(3)})
    with pytest.raises(TypeError, match="structure"):
        vjp_fn([mx.ones(3)])
    _, vjp_fn, aux = ad.vjp(lambda x: (x * 2, x.sum()), x, has_aux=True)
    close(vjp_fn(mx.ones(3))[0], 2 * mx.ones(3))
    close(aux, x.sum())


def test_jvp_and_linearize():
    f = lambda x: anp.sin(x) * x
    x, t = mx.array([0.5, 1.0]), mx.array([1.0, -2.0])
    y, dy = ad.jvp(f, (x,), (t,))
    close(dy, (mx.cos(x) * x + mx.sin(x)) * t)
    y2, f_jvp = ad.linearize(f, x)
    close(y2, y)
    close(f_jvp(t), dy)
    close(f_jvp(2 * t), 2 * dy)
    with pytest.raises(TypeError, match=r"equal types.*f32\[2\].*f32\[3\]"):
        ad.jvp(f, (x,), (mx.ones(3),))
    with pytest.raises(TypeError, match="tree structure"):
        ad.jvp(lambda a, b: a * b, (x, x), (t,))
    out, t_out, aux = ad.jvp(lambda x: (x**2, "aux-data" and x.sum()), (x,), (t,), has_aux=True)
    close(t_out, 2 * x * t)
    close(aux, x.sum())


def test_hessian_vector_product():
    f = lambda x: anp.sum(x**3) + anp.prod(x)
    x, v = mx.array([1.0, 2.0, 3.0]), mx.array([1.0, 0.0, -1.0])
    hvp = ad.jvp(ad.grad(f), (x,), (v,))[1]
    H = np.diag(6 * np.array(x)) + np.array([[0, 3, 2], [3, 0, 1], [2, 1, 0]])
    close(hvp, H @ np.array(v))


def test_missing_rule_raises_not_implemented(monkeypatch):
    from autodiff import primitives as P

    monkeypatch.delitem(jvp_module.jvp_rules, P.tanh)
    with pytest.raises(NotImplementedError, match="jvp rule for 'tanh' is not implemented"):
        ad.grad(lambda x: anp.tanh(x) * 2.0)(mx.array(3.14))


def test_registered_pytree_node():
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    ad.register_pytree_node(Point, lambda p: ((p.x, p.y), None), lambda _, c: Point(*c))
    g = ad.grad(lambda p: p.x * p.y**2)(Point(mx.array(2.0), mx.array(3.0)))
    assert isinstance(g, Point) and float(g.x) == 9.0 and float(g.y) == 12.0


def test_structural_cache_reuses_programs_and_closures_stay_fresh():
    from autodiff.program import transform_cache

    transform_cache.clear()
    f = lambda x, w: anp.sum(anp.sin(x) * w)
    for k in range(3):
        w = mx.array(float(k))
        g = ad.grad(lambda x: f(x, w))(mx.array([0.5, 1.0]))  # a new closure every time
        close(g, mx.cos(mx.array([0.5, 1.0])) * k)
    assert transform_cache.hits >= 2 and len(transform_cache) == 1

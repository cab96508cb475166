"""Tracing: jaxpr printing, consts and literals, closure conversion, and the errors users see."""

import re

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff import ConcretizationError, UnexpectedTracerError
from autodiff.ir import Eqn, Jaxpr, JaxprTypeError, Params, ShapedArray, Var
from autodiff.primitives import add, sin


def mlp_loss(params, x, y):
    h = anp.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return -anp.mean(anp.sum(y * (logits - anp.logsumexp(logits, axis=-1, keepdims=True)), axis=-1))


def mlp_params():
    return {"w1": mx.zeros((4, 8)), "b1": mx.zeros(8), "w2": mx.zeros((8, 3)), "b2": mx.zeros(3)}


def test_mlp_jaxpr_prints_like_jax():
    text = str(ad.make_jaxpr(mlp_loss)(mlp_params(), mx.ones((5, 4)), mx.ones((5, 3))))
    lines = text.splitlines()
    assert (
        lines[0] == "{ lambda ; a:f32[8] b:f32[3] c:f32[4,8] d:f32[8,3] e:f32[5,4] f:f32[5,3]. let"
    )
    assert "    g:f32[5,8] = dot_general[dimension_numbers=(((1,), (0,)), ((), ()))] e c" in lines
    assert "    h:f32[5,8] = broadcast_in_dim[broadcast_dimensions=(1,) shape=(5, 8)] a" in lines
    assert "    j:f32[5,8] = tanh i" in lines
    assert re.fullmatch(r"  in \([a-z]+,\) \}", lines[-1])
    for line in lines[1:-1]:
        assert re.fullmatch(
            r"    [a-z]+:(f32|bool|i32)\[[\d,]*\] = [a-z_]+(\[.*\])?( [a-z]+| [\d.e+-]+| inf)+",
            line,
        ), line


def test_consts_and_weak_literals():
    w = mx.ones((3,))
    closed = ad.make_jaxpr(lambda x: x * w + 2)(mx.ones(3))
    assert len(closed.consts) == 1 and closed.consts[0] is w
    assert "add" in str(closed) and " 2.0" in str(closed)  # int literal took the float dtype
    half = ad.make_jaxpr(lambda x: x * 2.0)(mx.ones(3, dtype=mx.float16))
    assert half.out_avals[0].dtype == "float16"
    ints = ad.make_jaxpr(lambda x: x * 2.5)(mx.ones(3, dtype=mx.int32))
    assert ints.out_avals[0].dtype == "float32"
    assert (
        ad.make_jaxpr(lambda x: x + x.astype(mx.int64))(mx.ones(2, dtype=mx.int32))
        .out_avals[0]
        .dtype
        == "int64"
    )


def test_concrete_array_on_the_left_defers_to_tracers():
    W = mx.ones((2, 3))
    b = np.ones(2, np.float32)
    f = lambda x: anp.sum(W @ x + b * x[:2] + mx.array(1.0) - x[0])
    # W^T 1 + [b, 0] - 2 e_0. (mx.grad gives [0, 2, 2]: NumPy's `b * x` drops MLX's graph.)
    assert np.allclose(ad.grad(f)(mx.arange(3.0)), [1.0, 3.0, 2.0])
    assert mx.array.__add__ is type(W).__add__  # restored, and untouched outside traces
    assert (W + 1).shape == (2, 3)
    # a different operator with a concrete left operand, and indexing a concrete array with a
    # traced index, in later traces
    g = lambda x: anp.sum(mx.array([1.0, 2.0, 3.0]) - x) + mx.array([5.0, 7.0])[anp.argmax(x)]
    assert np.allclose(ad.grad(g)(mx.array([0.0, 2.0, 1.0])), [-1.0, -1.0, -1.0])
    assert float(ad.jit(g)(mx.array([0.0, 2.0, 1.0]))) == 6.0 - 3.0 + 7.0


def test_closure_conversion_no_perturbation_confusion():
    # d/dx [x * d/dy (x * y)] = d/dx x^2 = 2x; the inner derivative must not see x's tangent
    f = lambda x: x * ad.grad(lambda y: x * y)(x)
    assert float(ad.grad(f)(mx.array(3.0))) == pytest.approx(6.0)
    assert float(ad.grad(lambda x: ad.grad(lambda y: x * y)(x))(mx.array(2.0))) == pytest.approx(
        1.0
    )
    # JAX's classic: grad(lambda x: x * grad(lambda y: x + y)(1.))(1.) == 1
    g = lambda x: x * ad.grad(lambda y: x + y)(mx.array(1.0))
    assert float(ad.grad(g)(mx.array(1.0))) == pytest.approx(1.0)


def _raise_line(fn, *args):
    with pytest.raises(ConcretizationError) as info:
        fn(*args)
    return str(info.value)


def test_concretization_errors_name_function_and_line():
    def branchy(x):
        if x > 0:  # line marker: branchy-if
            return x
        return -x

    msg = _raise_line(ad.grad(branchy), mx.array(1.0))
    assert "`branchy`" in msg and "test_tracing.py:" in msg and "if x > 0:" in msg
    assert "anp.where" in msg.replace("autodiff.numpy.where", "anp.where")

    def to_float(x):
        return float(x) * x

    msg = _raise_line(ad.grad(to_float), mx.array(1.0))
    assert "float()" in msg and "`to_float`" in msg and "return float(x) * x" in msg

    def to_int(x):
        return x[: int(x.sum())]

    assert "int()" in _raise_line(ad.vmap(to_int), mx.ones((2, 3)))

    def item(x):
        return x.item() * x

    assert ".item()" in _raise_line(ad.grad(item), mx.array(1.0))

    def to_numpy(x):
        return anp.sum(x * np.asarray(x))

    assert "NumPy" in _raise_line(ad.grad(to_numpy), mx.ones(2))

    def builds_mx_array(x):
        return mx.sum(mx.array(x) * 2)

    msg = _raise_line(ad.grad(builds_mx_array), mx.ones(2))
    assert "mx.stack" in msg and "mx.array(x) * 2" in msg


def test_escaped_tracer():
    leaked = []

    def leak(x):
        leaked.append(x)
        return anp.sum(x)

    ad.grad(leak)(mx.ones(2))
    with pytest.raises(UnexpectedTracerError) as info:
        ad.grad(lambda y: anp.sum(y * leaked[0]))(mx.ones(2))
    msg = str(info.value)
    assert "`leak`" in msg and "test_tracing.py" in msg and "Return it" in msg


def test_typecheck_catches_ill_typed_jaxprs():
    a, b = Var(ShapedArray((3,), "float32")), Var(ShapedArray((2,), "float32"))
    out = Var(ShapedArray((3,), "float32"))
    bad = Jaxpr([], [a, b], [Eqn(add, [a, b], Params(), [out])], [out])
    with pytest.raises(JaxprTypeError, match="shapes differ"):
        ad.typecheck(bad)
    wrong_out = Var(ShapedArray((4,), "float32"))
    with pytest.raises(JaxprTypeError, match="declares outputs"):
        ad.typecheck(Jaxpr([], [a], [Eqn(sin, [a], Params(), [wrong_out])], [wrong_out]))
    with pytest.raises(JaxprTypeError, match="before it is defined"):
        ad.typecheck(Jaxpr([], [], [Eqn(sin, [a], Params(), [out])], [out]))
    with pytest.raises(TypeError, match="frozen"):
        Params(x=1)["x"] = 2


def test_eval_jaxpr_is_differentiable():
    f = lambda x: anp.sum(anp.sin(x) * x)
    x = mx.array([0.3, 1.2])
    closed = ad.make_jaxpr(f)(x)
    assert np.allclose(ad.eval_jaxpr(closed, x)[0], f(x))
    assert np.allclose(ad.grad(lambda x: ad.eval_jaxpr(closed, x)[0])(x), mx.grad(f)(x))

"""Derivatives of any order: nested grad against closed forms, equation counts, compositions."""

import math

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff.testing import check_grads


def f(x):
    return anp.sin(x) ** 3 * anp.exp(x)


def f_derivative(n: int, x: float) -> float:
    # sin^3 x = (3 sin x - sin 3x) / 4 and d^n/dx^n e^x sin(kx) = (1+k^2)^(n/2) e^x sin(kx + n atan k)
    return (
        math.exp(x)
        / 4
        * (
            3 * 2 ** (n / 2) * math.sin(x + n * math.pi / 4)
            - 10 ** (n / 2) * math.sin(3 * x + n * math.atan(3))
        )
    )


def nested_grad(depth):
    g = f
    for _ in range(depth):
        g = ad.grad(g)
    return g


# JAX's unoptimised equation counts for the same function: 13, 37, 96, 246.
JAX_COUNTS = {1: 13, 2: 37, 3: 96, 4: 246}


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("x", [-1.3, 0.5, 2.0])
def test_nested_grad_matches_closed_form(depth, x):
    got = float(nested_grad(depth)(mx.array(x)))
    assert got == pytest.approx(f_derivative(depth, x), rel=2e-5, abs=2e-5)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_nested_grad_equation_counts(depth):
    n = len(ad.make_jaxpr(nested_grad(depth))(mx.array(0.5)).eqns)
    assert n <= JAX_COUNTS[depth] // 2 if depth >= 3 else n <= JAX_COUNTS[depth]


def test_forward_and_reverse_compositions_agree():
    x = mx.array(0.7)
    rr = ad.grad(ad.grad(f))(x)
    fr = ad.jvp(ad.grad(f), (x,), (mx.array(1.0),))[1]
    rf = ad.grad(lambda x: ad.jvp(f, (x,), (mx.array(1.0),))[1])(x)
    ff = ad.jvp(lambda x: ad.jvp(f, (x,), (mx.array(1.0),))[1], (x,), (mx.array(1.0),))[1]
    for v in (rr, fr, rf, ff):
        assert float(v) == pytest.approx(f_derivative(2, 0.7), rel=1e-5)


def test_grad_of_vjp_and_linearize():
    x = mx.array([0.3, -0.4])
    g = ad.grad(lambda x: anp.sum(ad.vjp(anp.sin, x)[1](x * x)[0]))(x)
    expected = 2 * x * mx.cos(x) - x * x * mx.sin(x)
    np.testing.assert_allclose(np.array(g), np.array(expected), rtol=1e-5)
    g2 = ad.grad(lambda x: anp.sum(ad.linearize(anp.sin, x)[1](x)))(x)
    np.testing.assert_allclose(np.array(g2), np.array(mx.cos(x) - x * mx.sin(x)), rtol=1e-5)


def test_mlp_loss_second_order_check_grads():
    params = {
        "w1": mx.random.normal((3, 4)) * 0.5,
        "b1": mx.zeros(4),
        "w2": mx.random.normal((4, 2)) * 0.5,
    }
    x, y = mx.random.normal((5, 3)), mx.random.normal((5, 2))

    def loss(p):
        h = anp.tanh(x @ p["w1"] + p["b1"])
        return anp.mean((h @ p["w2"] - y) ** 2)

    check_grads(loss, (params,), order=2)


def test_fourth_order_matches_mlx():
    h = f
    for _ in range(4):
        h = mx.grad(h)
    x = mx.array(0.5)
    assert float(nested_grad(4)(x)) == pytest.approx(float(h(x)), rel=1e-4)

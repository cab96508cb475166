"""Random programs: hypothesis composes functions from the primitives and checks grad, jvp,
vjp and vmap against each other, against float64 finite differences, and MLX execution against
the NumPy interpreter."""

import mlx.core as mx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from autodiff.interpret import interpret
from autodiff.testing import check_grads
from autodiff.testing.strategies import arrays, programs, shapes

args = shapes(0, 2, 1, 3).flatmap(lambda s: arrays(s, low=-1.5, high=1.5))


@settings(max_examples=30)
@given(programs(), args, st.integers(0, 2**31 - 1))
def test_grad_jvp_vjp_agree(prog, x, seed):
    rng = np.random.default_rng(seed)
    v = mx.array(rng.standard_normal(x.shape).astype(np.float32))
    g = ad.grad(prog)(x)
    _, dy = ad.jvp(prog, (x,), (v,))
    y, vjp_fn = ad.vjp(prog, x)
    (ct,) = vjp_fn(mx.array(1.0))
    np.testing.assert_allclose(np.array(ct), np.array(g), rtol=1e-5, atol=1e-5)
    inner = float(mx.sum(g * v))
    assert abs(inner - float(dy)) <= 1e-3 * max(1.0, abs(inner))
    # MLX execution agrees with the float64 interpreter
    closed = ad.make_jaxpr(ad.grad(prog))(x)
    np.testing.assert_allclose(np.array(g), interpret(closed, x)[0], rtol=1e-3, atol=1e-4)


@settings(max_examples=15)
@given(programs(max_steps=4), args)
def test_against_finite_differences_second_order(prog, x):
    check_grads(prog, (x,), order=2, atol=1e-4, rtol=1e-4)


@settings(max_examples=15)
@given(
    programs(max_steps=4),
    shapes(0, 2, 1, 3).flatmap(lambda s: arrays((3,) + s, low=-1.5, high=1.5)),
)
def test_vmap_of_grad_matches_loop(prog, xs):
    batched = ad.vmap(ad.grad(prog))(xs)
    for i in range(xs.shape[0]):
        np.testing.assert_allclose(
            np.array(batched[i]), np.array(ad.grad(prog)(xs[i])), rtol=1e-4, atol=1e-5
        )

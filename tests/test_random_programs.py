"""Random programs: hypothesis composes functions from the primitives and checks grad, jvp,
vjp, vmap, jit and the Jacobians against each other, against float64 finite differences, and
MLX execution against the NumPy interpreter. Inputs include exact zeros and ties."""

import mlx.core as mx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from autodiff.interpret import interpret
from autodiff.testing import check_grads
from autodiff.testing.strategies import arrays, programs, shapes, special_arrays

args = shapes(0, 2, 1, 3).flatmap(lambda s: arrays(s, low=-1.5, high=1.5))
special = shapes(0, 2, 1, 3).flatmap(special_arrays)


def close(a, b, tol=1e-4):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


@settings(max_examples=30)
@given(programs(kinks=True), special, st.integers(0, 2**31 - 1))
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
@given(programs(max_steps=4), st.one_of(args, special))
def test_against_finite_differences_second_order(prog, x):
    check_grads(prog, (x,), order=2, atol=1e-4, rtol=1e-4)


@settings(max_examples=15)
@given(
    programs(max_steps=4, kinks=True),
    shapes(0, 2, 1, 3).flatmap(lambda s: special_arrays((3,) + s)),
)
def test_vmap_of_grad_matches_loop(prog, xs):
    batched = ad.vmap(ad.grad(prog))(xs)
    for i in range(xs.shape[0]):
        close(batched[i], ad.grad(prog)(xs[i]), tol=1e-4)


@settings(max_examples=12)
@given(programs(max_steps=4, kinks=True), shapes(1, 1, 1, 3).flatmap(special_arrays))
def test_hessian_jacfwd_jacrev_agree(prog, x):
    h = ad.hessian(prog)(x)
    close(h, ad.jacrev(ad.grad(prog))(x), tol=2e-3)
    close(h, ad.jacfwd(ad.grad(prog))(x), tol=2e-3)
    close(h, mx.transpose(h), tol=2e-3)  # symmetric, ties and zeros included
    for i in range(x.shape[0]):  # Hessian-vector products, forward over reverse
        e = mx.zeros(x.shape).at[i].add(1.0)
        close(ad.jvp(ad.grad(prog), (x,), (e,))[1], h[:, i], tol=2e-3)


@settings(max_examples=10)
@given(programs(max_steps=4, kinks=True), special)
def test_jit_of_post_processed_gradients(prog, x):
    # gradients that are folded constants (the unused argument), post-processed in the
    # jitted function, compiled and called repeatedly: once a segfault in MLX's compiler
    def unused_and_used(a, b):
        return prog(b)

    step = ad.jit(lambda a, b: [g * 2.0 + 1.0 for g in ad.grad(unused_and_used, (0, 1))(a, b)])
    a = mx.array(1.0)
    expected = [mx.array(1.0), ad.grad(prog)(x) * 2.0 + 1.0]
    with ad.config.override(compile=True):
        results = [step(a, x) for _ in range(3)]
    for r in results:
        close(r, expected)

"""jacfwd, jacrev, hessian and per-example gradients, and how they compose."""

import mlx.core as mx
import numpy as np
import pytest
from device import matmul_tol

import autodiff as ad
import autodiff.numpy as anp
from autodiff.interpret import interpret


def close(a, b, tol=1e-5):
    tol = matmul_tol(tol)  # most of these programs take matrix products (TF32 on CUDA)
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


def test_hessian_50d_against_finite_differences_of_grad():
    rng = np.random.default_rng(0)
    n = 50
    A = mx.array((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32))
    c = mx.array(rng.standard_normal(n).astype(np.float32))

    def f(x):  # log-sum-exp of a quadratic form
        return anp.logsumexp(0.5 * x * (A @ x) + c * x)

    x = mx.array(rng.standard_normal(n).astype(np.float32) * 0.5)
    H = ad.hessian(f)(x)
    assert H.shape == (n, n)
    grad_jaxpr = ad.make_jaxpr(ad.grad(f))(x)
    x64, eps = np.array(x, np.float64), 1e-5
    fd = np.stack(
        [
            (interpret(grad_jaxpr, x64 + eps * e)[0] - interpret(grad_jaxpr, x64 - eps * e)[0])
            / (2 * eps)
            for e in np.eye(n)
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        interpret(ad.make_jaxpr(ad.hessian(f))(x), x64)[0], fd, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(np.array(H), fd, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.array(H), np.array(H).T, atol=1e-5)


def test_jacfwd_jacrev_agree_on_non_square_pytrees():
    def f(p, x):
        return {"a": anp.sin(p["w"] @ x), "b": anp.sum(p["w"]) * x[:2]}

    p, x = {"w": mx.random.normal((4, 3))}, mx.random.normal((3,))
    jf = ad.jacfwd(f, argnums=(0, 1))(p, x)
    jr = ad.jacrev(f, argnums=(0, 1))(p, x)
    assert jf["a"][0]["w"].shape == (4, 4, 3) and jf["a"][1].shape == (4, 3)
    assert jf["b"][0]["w"].shape == (2, 4, 3) and jf["b"][1].shape == (2, 3)
    close(jf, jr)
    # against a direct formula: d sin(Wx)/dx = diag(cos(Wx)) W
    close(jf["a"][1], mx.cos(p["w"] @ x)[:, None] * p["w"])


def test_jacobian_has_aux_and_hessian_of_params_dict():
    f = lambda x: (anp.sum(x**3), {"n": x.shape[0] * 1.0})
    J, aux = ad.jacfwd(lambda x: (x**2, anp.sum(x)), has_aux=True)(mx.arange(3.0))
    close(J, mx.diag(2 * mx.arange(3.0)))
    close(aux, mx.array(3.0))
    H, aux = ad.hessian(f, has_aux=True)(mx.array([1.0, 2.0]))
    close(H, mx.diag(mx.array([6.0, 12.0])))

    def loss(p):
        return anp.sum(p["a"] ** 2 * p["b"]) + anp.sum(p["b"] ** 3)

    p = {"a": mx.array([1.0, 2.0]), "b": mx.array([3.0, 4.0])}
    H = ad.hessian(loss)(p)
    close(H["a"]["a"], mx.diag(2 * p["b"]))
    close(H["a"]["b"], mx.diag(2 * p["a"]))
    close(H["b"]["b"], mx.diag(6 * p["b"]))


def _mlp_loss(params, x, y):
    h = anp.maximum(x @ params["w1"] + params["b1"], 0.0)
    logits = h @ params["w2"] + params["b2"]
    return -anp.sum(y * (logits - anp.logsumexp(logits, axis=-1, keepdims=True)))


def test_per_example_gradients_mlp_batch_128():
    rng = np.random.default_rng(1)
    params = {
        "w1": mx.array(rng.standard_normal((20, 32)).astype(np.float32) * 0.3),
        "b1": mx.zeros(32),
        "w2": mx.array(rng.standard_normal((32, 10)).astype(np.float32) * 0.3),
        "b2": mx.zeros(10),
    }
    xs = mx.array(rng.standard_normal((128, 20)).astype(np.float32))
    ys = mx.array(np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)])
    per_example = ad.vmap(ad.grad(_mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert per_example["w1"].shape == (128, 20, 32)
    for i in range(128):
        close(
            ad.tree_map(lambda g: g[i], per_example),
            ad.grad(_mlp_loss)(params, xs[i], ys[i]),
            tol=1e-4,
        )
    close(
        ad.tree_map(lambda g: g.sum(0), per_example), ad.grad(_mlp_loss)(params, xs, ys), tol=1e-3
    )


@pytest.mark.parametrize(
    "compose", ["grad_vmap", "vmap_vmap", "jacfwd_jacrev", "jacrev_jacfwd", "vmap_hessian"]
)
def test_compositions(compose):
    f = lambda x: anp.sum(anp.sin(x) * x**2)
    xs = mx.random.normal((3, 4))
    if compose == "grad_vmap":
        close(
            ad.grad(lambda x: anp.sum(ad.vmap(f)(x)))(xs),
            mx.grad(lambda x: mx.sum(mx.vmap(f)(x)))(xs),
        )
    elif compose == "vmap_vmap":
        close(
            ad.vmap(ad.vmap(ad.grad(f)))(xs[:, :, None]),
            ad.vmap(ad.grad(f))(xs.reshape(-1, 1)).reshape(3, 4, 1),
        )
    elif compose == "jacfwd_jacrev":
        close(ad.jacfwd(ad.jacrev(f))(xs[0]), ad.jacrev(ad.jacfwd(f))(xs[0]), tol=1e-4)
    elif compose == "jacrev_jacfwd":
        close(ad.jacrev(ad.jacrev(f))(xs[0]), ad.hessian(f)(xs[0]), tol=1e-4)
    else:
        H = ad.vmap(ad.hessian(f))(xs)
        for i in range(3):
            close(H[i], ad.hessian(f)(xs[i]), tol=1e-4)

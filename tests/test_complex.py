"""Complex numbers: gradients in JAX's convention (checked against JAX), ``holomorphic=`` and
JAX's errors without it, the conversion from MLX's convention, weakly typed complex scalars,
printing and lowering of complex literals, the mx.* spelling under a transform, and
check_grads along complex directions (including that it catches a wrong rule)."""

import mlx.core as mx
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff.testing import check_grads

jax, jnp = optional_jax(jax_platforms="cpu")

Z = np.array([1 + 2j, -0.5 + 0.3j, 0.7 - 1.1j], np.complex64)
X = np.array([0.3, -1.2, 2.0], np.float32)


def close(ours, theirs, tol=2e-5):
    leaves = jax.tree_util.tree_leaves if jax is not None else ad.tree_leaves
    for a, b in zip(ad.tree_leaves(ours), leaves(theirs)):
        np.testing.assert_allclose(np.array(a), np.asarray(b), rtol=tol, atol=tol)


# Each function is written once for a namespace m (autodiff.numpy or jax.numpy).
REAL_OF_COMPLEX = {
    "abs_sq": lambda m, z: m.sum(m.abs(z) ** 2),
    "real_sq": lambda m, z: m.sum(m.real(z * z)),
    "imag_sq": lambda m, z: m.sum(m.imag(z * z)),
    "abs": lambda m, z: m.sum(m.abs(z)),
    "angle": lambda m, z: m.sum(m.angle(z) * m.abs(z)),
    "conj_mix": lambda m, z: m.sum(m.real(m.conj(z) * m.exp(z) / (z + 3.0))),
    "holo_chain": lambda m, z: m.sum(m.abs(m.sqrt(z) * m.log(z) + m.sin(z) * m.tanh(z))),
    "matmul": lambda m, z: m.real(m.sum(m.outer(z, m.conj(z)) @ z)),
    "where": lambda m, z: m.sum(m.real(m.where(m.real(z) > 0, z * z, 1j * z))),
}


@requires_jax
@pytest.mark.parametrize("name", REAL_OF_COMPLEX)
def test_grad_of_real_function_of_complex_input_matches_jax(name):
    f = REAL_OF_COMPLEX[name]
    ours = ad.grad(lambda z: f(anp, z))(mx.array(Z))
    close(ours, jax.grad(lambda z: f(jnp, z))(jnp.asarray(Z)))
    # and its derivative along a complex direction, forward over reverse
    t = np.array([0.5 - 1j, 1.0 + 0.2j, -0.3j], np.complex64)
    hvp = ad.jvp(ad.grad(lambda z: f(anp, z)), (mx.array(Z),), (mx.array(t),))[1]
    theirs = jax.jvp(jax.grad(lambda z: f(jnp, z)), (jnp.asarray(Z),), (jnp.asarray(t),))[1]
    close(hvp, theirs, tol=1e-4)


def test_the_examples_of_the_brief_match_jax():
    if jax is not None:
        for f in (
            lambda m, z: m.abs(z) ** 2,
            lambda m, z: m.real(z * z),
            lambda m, z: m.abs(z),
            lambda m, z: m.abs(m.exp(z)) * m.imag(z),
        ):
            ours = ad.grad(lambda z: f(anp, z))(mx.array(1 + 2j))
            close(ours, jax.grad(lambda z: f(jnp, z))(1 + 2j))
    # |z| at 0: JAX's rule gives 0 for complex (1 for real)
    assert complex(ad.grad(anp.abs)(mx.array(0j))) == 0
    assert float(ad.grad(anp.abs)(mx.array(0.0))) == 1.0


@requires_jax
def test_real_input_complex_intermediate_matches_jax():
    f = lambda m, x: m.sum(m.abs(m.fft.fft(x * (1 + 2j))) + m.real(m.exp(1j * x)))
    close(ad.grad(lambda x: f(anp, x))(mx.array(X)), jax.grad(lambda x: f(jnp, x))(X))


@requires_jax
def test_holomorphic_grad_and_jacobians_match_jax():
    z = mx.array(Z)
    g = lambda m, z: m.exp(m.sin(z)) * z**2
    close(
        ad.grad(lambda z: g(anp, z[1]), holomorphic=True)(z),
        jax.grad(lambda z: g(jnp, z[1]), holomorphic=True)(jnp.asarray(Z)),
    )
    theirs = jax.jacrev(lambda z: g(jnp, z), holomorphic=True)(jnp.asarray(Z))
    close(ad.jacrev(lambda z: g(anp, z), holomorphic=True)(z), theirs)
    close(ad.jacfwd(lambda z: g(anp, z), holomorphic=True)(z), theirs)
    h = lambda m, z: m.sum(z**3)
    close(
        ad.hessian(lambda z: h(anp, z), holomorphic=True)(z),
        jax.hessian(lambda z: h(jnp, z), holomorphic=True)(jnp.asarray(Z)),
    )
    # value_and_grad, and non-holomorphic jacobians of mixed real/complex functions
    v, dv = ad.value_and_grad(lambda z: g(anp, z), holomorphic=True)(mx.array(0.5 + 0.5j))
    close((v, dv), jax.value_and_grad(lambda z: g(jnp, z), holomorphic=True)(0.5 + 0.5j))
    close(
        ad.jacrev(lambda z: anp.abs(z) * anp.real(z))(z),
        jax.jacrev(lambda z: jnp.abs(z) * jnp.real(z))(jnp.asarray(Z)),
    )
    close(
        ad.jacfwd(lambda x: x * (1 + 2j) + anp.exp(1j * x))(mx.array(X)),
        jax.jacfwd(lambda x: x * (1 + 2j) + jnp.exp(1j * x))(X),
    )


def test_vjp_transposes_and_jvp_is_plain():
    z = mx.array(1 + 2j)
    _, vjp_fn = ad.vjp(lambda z: z * z, z)
    if jax is not None:
        _, jvjp = jax.vjp(lambda z: z * z, jnp.complex64(1 + 2j))
        close(vjp_fn(mx.array(1j)), jvjp(jnp.complex64(1j)))
    close(ad.jvp(lambda z: z * z, (z,), (mx.array(1j),))[1], -4 + 2j)


def test_mlx_convention_is_the_conjugate():
    # ad.grad(f)(z) == conj(mx.grad(f)(z)); ad.vjp(f, z)[1](c) == conj(mx.vjp(f, z, conj(c)))
    f = lambda z: anp.sum(anp.abs(anp.sin(z)) ** 2 + anp.real(z * z))
    z = mx.array(Z)
    np.testing.assert_allclose(np.array(ad.grad(f)(z)), np.array(mx.conj(mx.grad(f)(z))), 1e-5)
    c = mx.array(np.array([0.3 + 1j, -2j, 1.0], np.complex64))
    ours = ad.vjp(anp.exp, z)[1](c)[0]
    theirs = mx.conj(mx.vjp(mx.exp, [z], [mx.conj(c)])[1][0])
    np.testing.assert_allclose(np.array(ours), np.array(theirs), 1e-5)


def test_errors_are_jax_s():
    z = mx.array(1 + 2j)
    with pytest.raises(TypeError, match=r"\[grad\].*real floating-point scalar.*c64.*holomorphic"):
        ad.grad(lambda z: z * z)(z)
    with pytest.raises(TypeError, match=r"holomorphic=True requires inputs with complex dtype"):
        ad.grad(lambda x: x * x, holomorphic=True)(mx.array(1.0))
    with pytest.raises(TypeError, match=r"holomorphic=True requires `<lambda>` to return a comp"):
        ad.grad(lambda z: anp.abs(z), holomorphic=True)(z)
    with pytest.raises(TypeError, match=r"\[jacfwd\] jacfwd requires real-valued inputs.*c64"):
        ad.jacfwd(lambda z: z * z)(z)
    with pytest.raises(TypeError, match=r"\[jacrev\].*real floating-point outputs.*c64"):
        ad.jacrev(lambda x: x * (1 + 2j))(mx.array(1.0))
    with pytest.raises(TypeError, match=r"\[jacfwd\].*holomorphic=True.*complex outputs.*f32\[\]"):
        ad.jacfwd(anp.abs, holomorphic=True)(z)
    with pytest.raises(TypeError, match=r"real operand.*c64"):
        ad.grad(lambda z: anp.sum(anp.remainder(z, z).real))(mx.array(Z))
    with pytest.raises(TypeError, match=r"floating-point operand.*c64"):
        ad.grad(lambda z: anp.erf(z).real)(z)


def test_complex_scalars_are_weakly_typed_and_promote_as_mlx():
    f32, i32, f16 = mx.array(X), mx.array([1, 2, 3]), mx.array(X).astype(mx.float16)
    for f in (
        lambda a: a + 1j,
        lambda a: a * (2 - 1j),
        lambda a: a + mx.array(Z),
        lambda a: anp.where(a > 0, a, 1j),
    ):
        for a in (f32, i32, f16):
            expected = f(a)
            got = ad.jit(f)(a)
            assert got.dtype == expected.dtype == mx.complex64
            np.testing.assert_allclose(np.array(got), np.array(expected), 1e-3)
    # a complex64 array with Python floats and ints stays complex64
    g = lambda z: z * 2 + 1.5 - z / 3
    assert ad.jit(g)(mx.array(Z)).dtype == mx.complex64


def test_complex_literals_print_and_lower():
    closed = ad.make_jaxpr(lambda z: z * (1 + 2j) + complex(float("nan"), float("inf")))(
        mx.array(Z)
    )
    text = str(closed)
    assert "(1+2j)" in text and "c64[3]" in text
    got = ad.jit(lambda z: z * (1 + 2j) - 0.5j)(mx.array(Z))
    np.testing.assert_allclose(np.array(got), Z * (1 + 2j) - 0.5j, 1e-6)
    src = ad.jit(lambda z: anp.where(anp.abs(z) > 1, 2j, z)).lower(mx.array(Z)).as_text()
    assert "complex(0.0, 2.0)" in src


def test_mx_spelling_is_routed_under_transforms():
    f = lambda z: mx.sum(mx.real(mx.conj(z) * z) + mx.abs(mx.fft.fft(z)) + z.real * z.imag)
    g = lambda z: mx.sum(z.conj().real + mx.conjugate(z).imag + mx.imag(mx.fft.ifft(z)))
    for fun in (f, g):
        ours = ad.grad(fun)(mx.array(Z))
        np.testing.assert_allclose(
            np.array(ours), np.array(mx.conj(mx.grad(fun)(mx.array(Z)))), 1e-5
        )


def test_vmap_and_jit_of_complex_functions():
    zs = mx.array(np.stack([Z, Z * 2, Z - 1]))
    f = lambda z: anp.abs(z) * anp.exp(z) + anp.conj(z) @ z
    got = ad.vmap(f)(zs)
    np.testing.assert_allclose(np.array(got), np.array(mx.vmap(f)(zs)), 1e-5)
    per_example = ad.vmap(ad.grad(lambda z: anp.sum(anp.abs(z * z))))(zs)
    if jax is not None:
        jax_per_example = jax.vmap(jax.grad(lambda z: jnp.sum(jnp.abs(z * z))))(np.array(zs))
        close(per_example, jax_per_example)
        close(
            ad.jit(ad.grad(lambda z: anp.sum(anp.abs(z) ** 3)))(mx.array(Z)),
            jax.grad(lambda z: jnp.sum(jnp.abs(z) ** 3))(Z),
            tol=1e-4,
        )


def test_check_grads_along_complex_directions():
    z = mx.array(Z)
    check_grads(lambda z: anp.abs(z) ** 2 + anp.imag(z * z), (z,), order=3)
    check_grads(lambda z, x: anp.exp(z) * x + anp.conj(z) * anp.real(z), (z, mx.array(X)))
    check_grads(lambda x: anp.fft.rfft(x) * (1 + 1j), (mx.array(X),))


def test_check_grads_catches_a_wrong_complex_rule(monkeypatch):
    from autodiff import lax
    from autodiff.extend import transpose_rules
    from autodiff.ops.complex import imag_p

    ad.clear_caches()
    wrong = lambda ct, x: [lax.mul(lax.convert(ct, x.aval.dtype), 1j)]  # the adjoint's sign
    monkeypatch.setitem(transpose_rules, imag_p, wrong)
    try:
        with pytest.raises(AssertionError, match="inner-product"):
            check_grads(lambda z: anp.imag(z * z), (mx.array(Z),), order=1, modes=("rev",))
    finally:
        ad.clear_caches()

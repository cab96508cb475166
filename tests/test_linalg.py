"""anp.linalg beyond the rule table: the mx.linalg spelling under transforms, CPU-stream
placement, gradients against JAX (slogdet, inv, solve, cholesky, eigh, svd, qr, det at singular
matrices), the cases with no derivative (eig, non-square svd vectors) and their errors, LU's
permutation against MLX's on larger matrices, and the thin SVD."""

import inspect

import mlx.core as mx
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff import lax
from autodiff.numpy import linalg as anp_linalg
from autodiff.testing import check_grads

LA = anp.linalg
RNG = np.random.default_rng(0)


def rand(*shape):
    return mx.array(RNG.uniform(-1, 1, shape).astype(np.float32))


def spd(x):
    return x @ mx.swapaxes(x, -1, -2) + x.shape[-1] * mx.eye(x.shape[-1])


def close(a, b, tol=2e-4):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.asarray(y), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# surface: names, signatures, streams, routing


def test_every_mlx_linalg_function_is_mirrored_with_its_signature():
    names = sorted(n for n in dir(mx.linalg) if not n.startswith("_"))
    assert names == sorted(LA.__all__)
    for name in names:
        ours = inspect.signature(getattr(LA, name))
        params = list(ours.parameters)
        assert params[-1] == "stream", name
        doc_sig = getattr(mx.linalg, name).__doc__.splitlines()[0]
        for p in params[:-1]:
            assert p in doc_sig, (name, p)


def test_eager_calls_default_to_the_cpu_stream():
    seen = anp_linalg._on_cpu(lambda *a, stream=None: stream)
    assert seen() == mx.cpu
    assert seen(stream=mx.cpu) == mx.cpu
    a = rand(3, 3) + 3 * mx.eye(3)
    close(LA.inv(a), mx.linalg.inv(a, stream=mx.cpu), 0)
    close(LA.norm(a, "nuc"), mx.linalg.norm(a, "nuc", stream=mx.cpu), 0)


def test_lowered_programs_place_linalg_on_the_cpu_stream():
    a = rand(4, 4) + 4 * mx.eye(4)

    def f(a):
        out = LA.inv(a).sum() + LA.det(a) + LA.slogdet(a)[1] + LA.pinv(a).sum()
        out = out + LA.solve(a, mx.ones(4)).sum() + LA.cholesky(spd(a)).sum()
        out = out + LA.tri_inv(a).sum() + LA.qr(a)[1].sum() + LA.eigvalsh(a).sum()
        return out + LA.svd(a)[1].sum() + LA.lu(a)[2].sum()

    src = ad.jit(f).lower(a).as_text()
    for call in src.split("mx.linalg.")[1:]:
        assert "stream=mx.cpu" in call.split("\n")[0], call
    assert src.count("mx.linalg.") >= 10 and "_lu(" in src
    close(ad.jit(f)(a), f(a), 1e-4)


def test_mlx_spelling_traces_and_differentiates():
    a = rand(3, 3) + 3 * mx.eye(3)
    b = rand(3, 2)

    def with_mx(a, b):
        return mx.linalg.solve(a, b).sum() + mx.linalg.slogdet(a)[1] + mx.linalg.inv(a)[0, 1]

    def with_anp(a, b):
        return LA.solve(a, b).sum() + LA.slogdet(a)[1] + LA.inv(a)[0, 1]

    close(ad.grad(with_mx, argnums=(0, 1))(a, b), ad.grad(with_anp, argnums=(0, 1))(a, b), 1e-6)
    assert ad.grad(lambda a: mx.linalg.eigvalsh(a).sum())(a).shape == (3, 3)
    # mx.matrix_norm is MLX's alias of mx.linalg.norm, and so is ours
    assert anp.matrix_norm is LA.norm
    close(
        ad.grad(lambda a: mx.matrix_norm(a, "nuc"))(a), ad.grad(lambda a: LA.norm(a, "nuc"))(a), 0
    )


def test_errors_name_the_function_and_the_fix():
    with pytest.raises(TypeError, match="float32 or float64"):
        ad.grad(lambda a: LA.inv(a.astype(mx.float16)).sum())(rand(2, 2))
    with pytest.raises(ValueError, match="square"):
        ad.grad(lambda a: LA.cholesky(a).sum())(rand(2, 3))
    with pytest.raises(ValueError, match="UPLO"):
        ad.grad(lambda a: LA.eigvalsh(a, UPLO="X").sum())(rand(2, 2))


# ---------------------------------------------------------------------------------------------
# against JAX

jax, jnp = optional_jax(jax_platforms="cpu")


def _both(ours, theirs, *args, tol=5e-4, hess=True):
    """Gradients (and Hessian-vector products) of ours (anp) and theirs (jnp) at args."""
    jargs = [jnp.asarray(np.array(x)) for x in args]
    nums = tuple(range(len(args)))
    close(ad.grad(ours, argnums=nums)(*args), jax.grad(theirs, argnums=nums)(*jargs), tol)
    if hess:
        v = rand(*args[0].shape)
        g, gj = ad.grad(lambda x: ours(x, *args[1:])), jax.grad(lambda x: theirs(x, *jargs[1:]))
        hv = ad.jvp(g, (args[0],), (v,))[1]
        hv_j = jax.jvp(gj, (jargs[0],), (jnp.asarray(np.array(v)),))[1]
        close(hv, hv_j, 10 * tol)


def _weights(*shape):
    """The same weights for us and for JAX (None without JAX)."""
    w = RNG.standard_normal(shape).astype(np.float32)
    return mx.array(w), (jnp.asarray(w) if jnp is not None else None)


@requires_jax
def test_slogdet_inv_solve_match_jax():
    a = rand(2, 5, 5) + 5 * mx.eye(5)
    b = rand(2, 5, 3)
    w, wj = _weights(5, 5)
    _both(lambda a: LA.slogdet(a)[1].sum(), lambda a: jnp.linalg.slogdet(a)[1].sum(), a)
    _both(lambda a: (LA.inv(a) * w).sum(), lambda a: (jnp.linalg.inv(a) * wj).sum(), a)
    _both(
        lambda a, b: (LA.solve(a, b) ** 2).sum(),
        lambda a, b: (jnp.linalg.solve(a, b) ** 2).sum(),
        a,
        b,
    )


@requires_jax
def test_cholesky_and_triangular_solves_match_jax():
    x = rand(4, 4)
    b = rand(4, 2)
    jsl = jax.scipy.linalg
    spd_j = lambda x: x @ x.T + 4 * jnp.eye(4)
    _both(
        lambda x: (LA.cholesky(spd(x)) ** 2).sum() + LA.cholesky(spd(x))[3, 1],
        lambda x: (jnp.linalg.cholesky(spd_j(x)) ** 2).sum() + jnp.linalg.cholesky(spd_j(x))[3, 1],
        x,
    )
    _both(
        lambda x, b: (LA.solve_triangular(LA.cholesky(spd(x)), b) ** 2).sum(),
        lambda x, b: (
            jsl.solve_triangular(jnp.linalg.cholesky(spd_j(x)), b, lower=True) ** 2
        ).sum(),
        x,
        b,
    )
    _both(
        lambda x: LA.cholesky_inv(LA.cholesky(spd(x)))[0, 2],
        lambda x: jnp.linalg.inv(spd_j(x))[0, 2],
        x,
    )


@requires_jax
def test_eigh_with_distinct_eigenvalues_matches_jax():
    x = rand(4, 4)
    d = np.diag([1.0, 2.0, 3.5, 5.0]).astype(np.float32)
    c, cj = _weights(4)
    sym = lambda x: mx.array(d) + 0.2 * (x + x.T)
    sym_j = lambda x: jnp.asarray(d) + 0.2 * (x + x.T)

    def f(x):  # V diag(c) V^T does not depend on the eigenvectors' signs
        w, v = LA.eigh(sym(x))
        return (((v * c) @ v.T) ** 2 * sym(x)).sum() + (w * c).sum()

    def fj(x):
        w, v = jnp.linalg.eigh(sym_j(x))
        return (((v * cj) @ v.T) ** 2 * sym_j(x)).sum() + (w * cj).sum()

    _both(f, fj, x)
    _both(
        lambda x: (LA.eigvalsh(sym(x)) * c).sum(),
        lambda x: (jnp.linalg.eigvalsh(sym_j(x)) * cj).sum(),
        x,
    )


@requires_jax
def test_svd_with_distinct_singular_values_matches_jax():
    x = rand(4, 4)
    d = np.diag([1.0, 2.0, 3.5, 5.0]).astype(np.float32)
    c, cj = _weights(4)
    w, wj = _weights(4, 4)

    def f(x):  # U diag(c) Vt does not depend on the singular vectors' (joint) signs
        u, s, vt = LA.svd(mx.array(d) + 0.2 * x)
        return ((u * c) @ vt * w).sum() + (s**2 * c).sum()

    def fj(x):
        u, s, vt = jnp.linalg.svd(jnp.asarray(d) + 0.2 * x)
        return ((u * cj) @ vt * wj).sum() + (s**2 * cj).sum()

    _both(f, fj, x)
    tall = rand(5, 3)
    _both(
        lambda x: (LA.svd(x, compute_uv=False) * c[:3]).sum(),
        lambda x: (jnp.linalg.svd(x, compute_uv=False) * cj[:3]).sum(),
        tall,
    )


def test_qr_matches_jax():
    for shape in [(4, 4), (5, 3)]:
        x = rand(*shape) + 3 * mx.eye(*shape)
        w, wj = _weights(shape[0], min(shape))
        v, vj = _weights(min(shape), shape[1])
        # Householder QR fixes the signs the same way in MLX's and JAX's LAPACK calls
        if jax is not None:
            _both(
                lambda x: (LA.qr(x)[0] * w).sum() + (LA.qr(x)[1] * v).sum(),
                lambda x: (jnp.linalg.qr(x)[0] * wj).sum() + (jnp.linalg.qr(x)[1] * vj).sum(),
                x,
            )
    # wide matrices, where JAX has no derivative: against finite differences
    x = rand(2, 4) + 3 * mx.eye(2, 4)
    check_grads(lambda x: LA.qr(x), (x,), order=2)


@requires_jax
def test_lu_and_pinv_match_jax():
    for shape in [(4, 4), (5, 3), (3, 5)]:
        x = rand(*shape) + 3 * mx.array(np.eye(*shape)[::-1].copy())
        k = min(shape)
        w, wj = _weights(shape[0], k)
        v, vj = _weights(k, shape[1])

        def f(x):
            _, lo, up = LA.lu(x)
            return (lo * w).sum() + (up * v).sum()

        def fj(x):
            _, lo, up = jax.scipy.linalg.lu(x)  # the same partial pivoting (LAPACK getrf)
            return (lo * wj).sum() + (up * vj).sum()

        _both(f, fj, x)
        p, pj = _weights(shape[1], shape[0])
        _both(lambda x: (LA.pinv(x) * p).sum(), lambda x: (jnp.linalg.pinv(x) * pj).sum(), x)


def test_det_gradient_at_singular_matrices_matches_jax():
    for n in (4, 5):
        x = np.array(rand(n, n))
        x[-1] = 2 * x[0]  # rank n - 1
        x = mx.array(x)
        if jax is not None:
            close(ad.grad(LA.det)(x), jax.grad(jnp.linalg.det)(jnp.asarray(np.array(x))), 1e-4)
        g = np.array(ad.grad(LA.det)(x), np.float64)  # adj(A)^T
        np.testing.assert_allclose(g.T @ np.array(x, np.float64), 0, atol=1e-4)  # adj(A) A = 0
        assert np.abs(g).max() > 1e-3  # the adjugate of a rank n-1 matrix is not zero
        x2 = np.array(x)
        x2[-2] = 3 * x2[0]  # rank n - 2: the adjugate vanishes
        np.testing.assert_allclose(np.array(ad.grad(LA.det)(mx.array(x2))), 0, atol=1e-6)
    # non-singular, and through vmap
    if jax is not None:
        a = rand(3, 4, 4) + 4 * mx.eye(4)
        close(
            ad.vmap(ad.grad(LA.det))(a),
            jax.vmap(jax.grad(jnp.linalg.det))(jnp.asarray(np.array(a))),
        )
        _both(lambda a: LA.det(a), lambda a: jnp.linalg.det(a), rand(4, 4) + 4 * mx.eye(4))


# ---------------------------------------------------------------------------------------------
# what has no derivative, and says so


def test_eig_traces_batches_and_matches_mlx():
    a = rand(2, 4, 4)
    w, v = ad.jit(LA.eig)(a)
    we, ve = mx.linalg.eig(a, stream=mx.cpu)
    close(w, we, 0)
    close(v, ve, 0)
    # A V = V diag(w), in complex128
    an, wn, vn = np.array(a), np.array(w), np.array(v)
    np.testing.assert_allclose(an @ vn, vn * wn[:, None, :], atol=1e-4)
    close(ad.vmap(LA.eigvals)(a), mx.linalg.eigvals(a, stream=mx.cpu), 0)


def test_eig_derivatives_match_finite_differences_and_jax():
    d = np.diag([1.0, 2.5, 4.0, 5.5]).astype(np.float32)
    d[0, 1], d[1, 0] = 2.0, -2.0  # a complex pair, 1.75 +- 1.98i
    x = rand(4, 4)
    a = lambda x: mx.array(d) + 0.2 * x

    def parts(x):  # eigenvectors as |v|^2 (the phase is LAPACK's: up to sign), and raw
        w, v = LA.eig(a(x))
        return anp.real(w), anp.imag(w), anp.real(v), anp.imag(v)

    check_grads(parts, (x,), order=2)
    if jax is None:
        return  # the rest is against JAX
    # against JAX: functions of the spectrum that do not depend on its order or phases
    c, cj = _weights(4)

    def f(x):
        w, v = LA.eig(a(x))
        return (anp.real(w**2) * anp.imag(w)).sum() + (anp.real(w) * (c @ anp.abs(v) ** 2)).sum()

    def fj(x):
        w, v = jax.lax.linalg.eig(
            jnp.asarray(d) + 0.2 * x, compute_left_eigenvectors=False, enable_eigvec_derivs=True
        )
        return (jnp.real(w**2) * jnp.imag(w)).sum() + (jnp.real(w) * (cj @ jnp.abs(v) ** 2)).sum()

    _both(f, fj, x)
    # complex tangents, JAX's convention: the jvp of the eigenvalues (matched by value, as
    # the two LAPACK calls may order them differently)
    t = rand(4, 4)
    w, dw = ad.jvp(lambda x: LA.eigvals(a(x)), (x,), (t,))
    jx, jt = jnp.asarray(np.array(x)), jnp.asarray(np.array(t))
    wj, dwj = jax.jvp(lambda x: jnp.linalg.eigvals(jnp.asarray(d) + 0.2 * x), (jx,), (jt,))
    order = [int(np.argmin(np.abs(np.asarray(wj) - wi))) for wi in np.array(w)]
    close(dw, np.asarray(dwj)[order])


def test_svd_vectors_of_non_square_matrices_raise_and_thin_factors_are_differentiable():
    x = rand(4, 2)
    with pytest.raises(NotImplementedError, match="square matrices only"):
        ad.grad(lambda x: LA.svd(x)[0].sum())(x)
    assert ad.grad(lambda x: LA.svd(x, compute_uv=False).sum())(x).shape == (4, 2)
    sep = mx.array(np.array([[3.0, 0.0], [0.0, 1.5], [0.0, 0.0], [0.0, 0.0]], np.float32))
    sep_w = mx.array(np.array([[3.0, 0.0, 0.0, 0.0], [0.0, 1.5, 0.0, 0.0]], np.float32))
    c = mx.array([0.7, -1.3])
    for m, base in ((x, sep), (rand(2, 4), sep_w)):
        thin = lambda m, base=base: lax.svd(base + 0.2 * m, True, False)

        def invariant(m, thin=thin):
            u, s, vt = thin(m)
            return (u * c) @ vt + s.sum()  # sign-invariant, so finite differences apply

        check_grads(invariant, (m,), order=2)


def test_lu_permutation_equals_mlx_on_larger_matrices():
    for shape in [(37, 37), (9, 30), (30, 9), (3, 17, 17)]:
        a = rand(*shape)
        p, lo, up = ad.jit(LA.lu)(a)
        pe, le, ue = mx.linalg.lu(a, stream=mx.cpu)
        assert np.array_equal(np.array(p), np.array(pe))
        close(lo, le, 0)
        close(up, ue, 0)
        lu_, piv = ad.jit(LA.lu_factor)(a)
        assert np.array_equal(np.array(piv), np.array(mx.linalg.lu_factor(a, stream=mx.cpu)[1]))


@requires_jax
def test_hessian_of_a_gaussian_log_likelihood_matches_jax():
    y, t = np.array(rand(5)), np.linspace(0, 1, 5, dtype=np.float32)

    def nll(theta, xp):
        ys, ts = xp.asarray(y), xp.asarray(t)
        ell, sig = xp.exp(theta[0]), xp.exp(theta[1])
        k = sig * xp.exp(-((ts[:, None] - ts[None, :]) ** 2) / ell) + 0.1 * xp.eye(5)
        return 0.5 * (ys @ xp.linalg.solve(k, ys)) + 0.5 * xp.linalg.slogdet(k)[1]

    theta = mx.array([0.2, -0.3])
    close(
        ad.hessian(lambda th: nll(th, anp))(theta),
        jax.hessian(lambda th: nll(th, jnp))(jnp.asarray(np.array(theta))),
        1e-3,
    )


def test_mlx_vmap_of_tri_inv_is_the_general_inverse_ours_is_not():
    # a documented difference: MLX's batching rule for tri_inv drops the triangle flag
    xs = rand(3, 3, 3) + 3 * mx.eye(3)
    loop = mx.stack([mx.linalg.tri_inv(x, stream=mx.cpu) for x in xs])
    close(ad.vmap(LA.tri_inv)(xs), loop, 1e-6)
    theirs = mx.vmap(lambda x: mx.linalg.tri_inv(x, stream=mx.cpu))(xs)
    close(theirs, mx.linalg.inv(xs, stream=mx.cpu), 1e-5)

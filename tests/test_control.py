"""Control flow and custom derivatives against Python references: values, JVP, VJP, second
order, vmap (batched predicates too), jit, the lowered driver, and the errors."""

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError
from autodiff.testing import check_grads


def close(a, b, tol=1e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


W = mx.array([[0.5, -0.3, 0.2], [0.1, 0.4, -0.6], [-0.2, 0.3, 0.1]])


def rnn(w, h0, xs):
    def step(h, x):
        h = anp.tanh(w @ h + x)
        return h, anp.sum(h * x)

    h, ys = ad.scan(step, h0, xs)
    return anp.sum(h) + anp.sum(ys * ys)


def rnn_unrolled(w, h0, xs):
    h, ys = h0, []
    for i in range(xs.shape[0]):
        h = anp.tanh(w @ h + xs[i])
        ys.append(anp.sum(h * xs[i]))
    return anp.sum(h) + anp.sum(anp.stack(ys) ** 2)


H0, XS = mx.array([0.1, -0.2, 0.3]), mx.random.normal((6, 3), key=mx.random.key(1))


def test_scan_matches_the_unrolled_loop_in_every_mode():
    args = (W, H0, XS)
    close(rnn(*args), rnn_unrolled(*args))
    nums = (0, 1, 2)
    close(ad.grad(rnn, nums)(*args), ad.grad(rnn_unrolled, nums)(*args), 1e-4)
    tangents = (W * 0 + 1.0, H0, XS)
    close(ad.jvp(rnn, args, tangents), ad.jvp(rnn_unrolled, args, tangents), 1e-4)
    close(ad.hessian(rnn, 1)(*args), ad.hessian(rnn_unrolled, 1)(*args), 1e-3)
    close(ad.jit(ad.grad(rnn, nums))(*args), ad.grad(rnn_unrolled, nums)(*args), 1e-4)
    check_grads(rnn, args, order=2, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll", [1, 4])
def test_scan_reverse_and_unroll(reverse, unroll):
    def f(xs):
        c, ys = ad.scan(
            lambda c, x: (c * 0.9 + x, c * x), mx.zeros(3), xs, reverse=reverse, unroll=unroll
        )
        return anp.sum(c) + anp.sum(ys)

    def ref(xs):
        c, tot = mx.zeros(3), 0.0
        order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
        for i in order:
            tot = tot + anp.sum(c * xs[i])
            c = c * 0.9 + xs[i]
        return anp.sum(c) + tot

    close(ad.jit(f)(XS), ref(XS))
    close(ad.grad(f)(XS), ad.grad(ref)(XS))


def test_scan_vmap_matches_a_loop_and_batches_the_carry():
    ws = mx.stack([W, W * 0.5, -W])
    got = ad.vmap(ad.grad(rnn), in_axes=(0, None, None))(ws, H0, XS)
    for i in range(3):
        close(got[i], ad.grad(rnn)(ws[i], H0, XS), 1e-4)
    hs = mx.stack([H0, H0 * 2.0])
    close(ad.vmap(rnn, in_axes=(None, 0, None))(W, hs, XS), mx.stack([rnn(W, h, XS) for h in hs]))


def cond_f(x, y):
    return ad.cond(anp.sum(x) > 0, lambda a, b: anp.sin(a) * b, lambda a, b: a * a - b, x, y)


def cond_ref_for(x_concrete):
    """The branch cond_f takes at this x, as a plain function."""
    if float(mx.sum(x_concrete)) > 0:
        return lambda x, y: anp.sin(x) * y
    return lambda x, y: x * x - y


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_values_derivatives_and_jit(sign):
    x, y = mx.array([0.5, 1.5]) * sign, mx.array([2.0, -1.0])
    cond_ref = cond_ref_for(x)
    close(ad.jit(cond_f)(x, y), cond_ref(x, y))
    g = lambda f: ad.grad(lambda x, y: anp.sum(f(x, y)), (0, 1))(x, y)
    close(g(cond_f), g(cond_ref))
    close(ad.jvp(cond_f, (x, y), (y, x)), ad.jvp(cond_ref, (x, y), (y, x)))
    check_grads(cond_f, (x, y), order=2)


def test_cond_with_a_batched_predicate_selects_per_example():
    xs = mx.array([[0.5, 1.5], [-1.0, -2.0], [0.2, -0.1]])
    y = mx.array([2.0, -1.0])
    got = ad.vmap(cond_f, in_axes=(0, None))(xs, y)
    close(got, mx.stack([cond_ref_for(x)(x, y) for x in xs]))
    grads = ad.vmap(ad.grad(lambda x, y: anp.sum(cond_f(x, y))), in_axes=(0, None))(xs, y)
    refs = [cond_ref_for(x) for x in xs]
    expected = [ad.grad(lambda x, r=r: anp.sum(r(x, y)))(x) for x, r in zip(xs, refs)]
    close(grads, mx.stack(expected))


def test_switch_clamps_its_index_and_runs_only_the_taken_branch():
    branches = [lambda x: x * 2.0, lambda x: anp.sin(x), lambda x: -x]
    f = lambda i, x: ad.switch(i, branches, x)
    x = mx.array(0.7)
    for i, expected in [(-3, 1.4), (0, 1.4), (1, np.sin(0.7)), (2, -0.7), (9, -0.7)]:
        assert float(ad.jit(f)(mx.array(i), x)) == pytest.approx(expected, rel=1e-6)
    assert float(ad.grad(f, 1)(mx.array(1), x)) == pytest.approx(np.cos(0.7), rel=1e-6)


def test_large_branches_run_in_the_driver_only_the_taken_one():
    def big(x):  # more equations than the select lowering takes
        for _ in range(12):
            x = anp.sin(x) * 1.01 + 0.1
        return x

    f = ad.jit(lambda p, x: ad.cond(p > 0, big, lambda x: x * 0.0, x))
    text = f.lower(mx.array(1.0), mx.array(0.3)).as_text()
    assert "_cond_run_taken" in text
    close(f(mx.array(1.0), mx.array(0.3)), big(mx.array(0.3)))
    close(f(mx.array(-1.0), mx.array(0.3)), mx.array(0.0))
    small = ad.jit(cond_f).lower(mx.array([1.0, 2.0]), mx.array([1.0, 2.0])).as_text()
    assert "_cond_select_all" in small  # small branches: both inside the compiled segment


def test_lowered_scan_and_while_are_python_drivers_over_compiled_segments():
    text = ad.jit(ad.grad(rnn)).lower(W, H0, XS).as_text()
    assert "_scan_run(" in text and "def scan_body" in text
    assert text.count("_scan_run(") == 2  # the forward scan, and the transposed one
    w = ad.jit(lambda x: ad.while_loop(lambda v: v < 10.0, lambda v: v * 2.0, x))
    assert "_while_run(" in w.lower(mx.array(1.0)).as_text()
    assert float(w(mx.array(1.0))) == 16.0


def test_while_loop_forward_mode_vmap_and_the_reverse_mode_error():
    f = lambda x: ad.while_loop(
        lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * x), (0, mx.array(1.0))
    )[1]
    x = mx.array(1.1)
    close(f(x), x**5)
    close(ad.jit(f)(x), x**5)
    close(ad.jvp(f, (x,), (mx.array(1.0),))[1], 5 * x**4)
    close(ad.jacfwd(f)(x), 5 * x**4)
    with pytest.raises(NotImplementedError, match="max_steps"):
        ad.grad(f)(x)
    # a batched predicate: examples finish at different steps
    h = lambda x: ad.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x)
    close(ad.vmap(h)(mx.array([1.0, 3.0, 20.0])), mx.array([16.0, 12.0, 20.0]))


def test_bounded_while_reverse_mode_agrees_with_the_unrolled_loop():
    def newton_sqrt(a):
        return ad.while_loop(
            lambda x: anp.abs(x * x - a) > 1e-5, lambda x: 0.5 * (x + a / x), a, max_steps=30
        )

    def unrolled(a):
        x = a
        for _ in range(30):
            x = anp.where(anp.abs(x * x - a) > 1e-5, 0.5 * (x + a / x), x)
        return x

    for a in (2.0, 9.0, 0.3):
        close(newton_sqrt(mx.array(a)), np.sqrt(a), 1e-5)
        close(ad.grad(newton_sqrt)(mx.array(a)), ad.grad(unrolled)(mx.array(a)), 1e-5)
        close(ad.grad(newton_sqrt)(mx.array(a)), 0.5 / np.sqrt(a), 1e-4)


def test_fori_loop_concrete_bounds_are_a_scan_traced_bounds_a_while():
    g = lambda x: ad.fori_loop(0, 5, lambda i, v: v * x + i, mx.array(1.0))
    ref = lambda x: ((((x + 0) * x + 1) * x + 2) * x + 3) * x + 4
    x = mx.array(1.1)
    close(ad.jit(g)(x), ref(x))
    close(ad.grad(g)(x), ad.grad(ref)(x))
    assert "scan" in str(ad.make_jaxpr(g)(x))
    h = lambda n, x: ad.fori_loop(0, n, lambda i, v: v * x, mx.array(1.0))
    assert "while" in str(ad.make_jaxpr(h)(mx.array(3), x))
    close(ad.jit(h)(mx.array(3), x), x**3)


def test_custom_jvp_safe_softplus_is_finite_where_the_naive_gradient_is_nan():
    @ad.custom_jvp
    def softplus(x):
        return anp.log1p(anp.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t * anp.sigmoid(x)

    x = mx.array([100.0, 0.5, -3.0])
    naive = ad.grad(lambda x: anp.sum(anp.log1p(anp.exp(x))))(x)
    assert np.isnan(np.array(naive)[0])
    got = ad.grad(lambda x: anp.sum(softplus(x)))(x)
    close(got, mx.sigmoid(x))
    close(ad.jit(ad.vmap(ad.grad(softplus)))(x), mx.sigmoid(x))
    s = float(mx.sigmoid(mx.array(0.5)))
    close(ad.grad(ad.grad(softplus))(mx.array(0.5)), s * (1 - s))  # higher order via the rule


def test_custom_rules_may_close_over_traced_values_but_not_differentiate_them():
    def loss(w, x):
        @ad.custom_jvp
        def f(y):
            return anp.sin(y) * w

        @f.defjvp
        def f_jvp(p, t):
            return f(p[0]), anp.cos(p[0]) * t[0] * w

        return anp.sum(f(x))

    x = mx.array([0.3, 1.2])
    close(ad.grad(loss, 1)(mx.array(2.0), x), 2.0 * mx.cos(x))
    with pytest.raises(TransformError, match="closes over"):
        ad.grad(loss, 0)(mx.array(2.0), x)


def test_custom_vjp_in_reverse_mode_and_its_forward_mode_error():
    @ad.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (anp.clip(g, -1.0, 1.0),))
    x = mx.array([1.0, -2.0])
    f = lambda x: anp.sum(clip_gradient(x) * 5.0)
    close(ad.grad(f)(x), mx.array([1.0, 1.0]))
    close(ad.jit(ad.grad(f))(x), mx.array([1.0, 1.0]))
    close(ad.vmap(ad.grad(lambda x: clip_gradient(x) * -5.0))(x), mx.array([-1.0, -1.0]))
    close(ad.grad(lambda x: anp.sum(ad.vmap(clip_gradient)(x) * 5.0))(x), mx.array([1.0, 1.0]))
    with pytest.raises(TransformError, match="custom_jvp"):
        ad.jvp(clip_gradient, (x,), (x,))


def mlp_loss(ws, x, layer):
    for w in ws:
        x = layer(x, w)
    return anp.sum(x * x)


def test_checkpoint_gives_the_same_gradients_and_recomputes_in_the_backward_pass():
    key = mx.random.key(0)
    ws = [mx.random.normal((8, 8), key=mx.random.split(key, 32)[i]) * 0.3 for i in range(32)]
    x = mx.random.normal((4, 8), key=key)
    plain = lambda h, w: anp.tanh(h @ w)
    for policy in (None, ad.checkpoint_policies.dots_saveable):
        layer = ad.checkpoint(plain, policy=policy)
        close(ad.grad(mlp_loss)(ws, x, layer), ad.grad(mlp_loss)(ws, x, plain), 1e-5)
    jaxpr = str(ad.make_jaxpr(ad.grad(mlp_loss), static_argnums=2)(ws, x, ad.checkpoint(plain)))
    assert jaxpr.count("remat[") == 32  # each backward layer recomputes its tanh
    saved = ad.make_jaxpr(ad.grad(mlp_loss), static_argnums=2)(
        ws, x, ad.checkpoint(plain, policy=ad.checkpoint_policies.everything_saveable)
    )
    assert sum(e.prim.name == "tanh" for e in saved.eqns) == 32  # nothing recomputed


def test_checkpoint_name_and_save_only_these_names():
    def layer(h, w):
        z = ad.checkpoint_name(h @ w, "pre")
        return anp.tanh(z)

    policy = ad.checkpoint_policies.save_only_these_names("pre")
    f = lambda w, x: anp.sum(ad.checkpoint(layer, policy=policy)(x, w) ** 2)
    w, x = W, mx.array([[1.0, 2.0, 3.0]])
    close(ad.grad(f)(w, x), ad.grad(lambda w, x: anp.sum(layer(x, w) ** 2))(w, x))
    jaxpr = ad.make_jaxpr(ad.grad(f))(w, x)
    remats = [e for e in jaxpr.eqns if e.prim.name == "remat"]
    assert remats and not any(
        e.prim.name == "dot_general" and e.outputs[0].aval.shape == (1, 3)
        for r in remats
        for e in r.params["jaxpr"].eqns
    )


def test_scan_errors_say_what_to_fix():
    with pytest.raises(TypeError, match=r"carry of the types it takes \(f32\[3\]\)"):
        ad.jit(lambda xs: ad.scan(lambda c, x: (c[:2], x), mx.zeros(3), xs))(XS)
    with pytest.raises(ValueError, match="disagree"):
        ad.jit(lambda xs: ad.scan(lambda c, x: (c, x), mx.zeros(3), xs, length=2))(XS)
    with pytest.raises(TransformError, match="identical types"):
        ad.jit(lambda x: ad.cond(x > 0, lambda x: x, lambda x: x.astype(mx.int32), x))(
            mx.array(1.0)
        )

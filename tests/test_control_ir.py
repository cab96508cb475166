"""The IR of control flow: loop bodies and cond branches are optimised (dead code removed,
loop-invariant work hoisted before the loop) without changing results, and ``make_jaxpr``
prints the sub-jaxprs of ``scan`` and ``cond`` nested, in JAX's notation. And how custom rules
take ``nondiff_argnums`` arguments (JAX's convention), to any order, under jit and vmap.
(tests/test_control.py has the values and derivatives of each control-flow primitive.)"""

import functools
from functools import partial

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError
from autodiff.ir import all_eqns


def close(a, b, tol=1e-5):
    for x, y in zip(ad.tree_leaves(a), ad.tree_leaves(b)):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=tol, atol=tol)


def names(jaxpr) -> list[str]:
    """The primitive names of ``jaxpr``'s own equations (not those of its sub-jaxprs)."""
    return [e.prim.name for e in jaxpr.eqns]


def all_names(jaxpr) -> list[str]:
    """The primitive names of every equation, sub-jaxprs included."""
    return [e.prim.name for e in all_eqns(jaxpr)]


def only(jaxpr, prim: str):
    """The one equation of ``jaxpr`` (top level) that binds ``prim``."""
    (eqn,) = [e for e in jaxpr.eqns if e.prim.name == prim]
    return eqn


def section(text: str, header: str) -> str:
    """The part of lowered source after ``# <header>`` up to the next ``# `` header."""
    start = text.index(f"# {header}")
    end = text.find("\n# ", start + 1)
    return text[start : end if end >= 0 else len(text)]


# ---------------------------------------------------------------------------------------------
# Optimisation inside bodies and branches

W, C0, XS = mx.array(0.3), mx.array([1.0, 2.0]), mx.array([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]])


def scan_f(w, c0, xs):
    def step(c, x):
        anp.exp(c)  # dead
        return c * anp.sin(w) + x, c * 2.0  # sin(w) reads only a closed-over value

    return ad.scan(step, c0, xs)


def scan_ref(w, c0, xs):
    c, ys = c0, []
    for i in range(xs.shape[0]):
        ys.append(c * 2.0)
        c = c * anp.sin(w) + xs[i]
    return c, anp.stack(ys)


def test_scan_body_is_optimised_dead_code_gone_invariant_hoisted():
    traced = ad.make_jaxpr(scan_f)(W, C0, XS).jaxpr  # as traced: both still in the body
    body = only(traced, "scan").params["jaxpr"].jaxpr
    assert "exp" in names(body) and "sin" in names(body)

    opt = ad.jit(scan_f).trace(W, C0, XS).jaxpr
    scan = only(opt, "scan")
    body = scan.params["jaxpr"].jaxpr
    assert "exp" not in all_names(opt)  # the dead exp is gone, from the body too
    assert "sin" not in names(body)  # the invariant sin(w) runs once ...
    top = names(opt)
    assert top.index("sin") < top.index("scan")  # ... before the loop
    (sin,) = [e for e in opt.eqns if e.prim.name == "sin"]
    assert sin.inputs == [opt.invars[0]]  # of w itself
    # it enters the body as a const (after its broadcast, which is invariant too)
    assert scan.params["num_consts"] >= 1 and "broadcast_in_dim" not in names(body)
    assert sorted(names(body)) == ["add", "mul", "mul"]

    text = ad.jit(scan_f).lower(W, C0, XS).as_text()
    loop = section(text, "_body")
    assert "def scan_body" in loop and "mx.sin" not in loop and "mx.exp" not in loop
    assert "mx.sin" in section(text, "_seg")  # computed once, in the segment before the loop
    assert "mx.exp" not in text

    expected = scan_ref(W, C0, XS)
    close(ad.jit(scan_f)(W, C0, XS), expected)
    close(scan_f(W, C0, XS), expected)  # eagerly: a Python loop
    # the hoisted value is still differentiated through (w's gradient flows via sin(w))
    grad = lambda f: ad.grad(lambda w: anp.sum(f(w, C0, XS)[0]))
    close(ad.jit(grad(scan_f))(W), grad(scan_ref)(W))


def while_f(w, x):
    def body(c):
        anp.exp(c)  # dead
        return c * anp.sin(w) + 1.0  # sin(w) is invariant

    return ad.while_loop(lambda c: anp.sum(c) < 10.0, body, x)


def while_ref(w, x):
    c = np.array(x)
    while c.sum() < 10.0:
        c = c * np.sin(float(w)) + 1.0
    return c


def test_while_body_is_optimised_dead_code_gone_invariant_hoisted():
    w, x = mx.array(1.2), mx.array([1.0, 2.0])
    traced = ad.make_jaxpr(while_f)(w, x).jaxpr
    body = only(traced, "while").params["body_jaxpr"].jaxpr
    assert "exp" in names(body) and "sin" in names(body)

    opt = ad.jit(while_f).trace(w, x).jaxpr
    loop = only(opt, "while")
    body = loop.params["body_jaxpr"].jaxpr
    assert "exp" not in all_names(opt)
    assert "sin" not in names(body)
    assert names(opt).index("sin") < names(opt).index("while")
    assert sorted(names(body)) == ["add", "mul"]
    # the predicate is untouched: it reads only the carry
    assert names(loop.params["cond_jaxpr"].jaxpr) == ["reduce_sum", "lt"]

    text = ad.jit(while_f).lower(w, x).as_text()
    body_src = section(text, "_body")
    assert "def while_body" in body_src and "mx.sin" not in body_src
    assert "mx.exp" not in text

    close(ad.jit(while_f)(w, x), while_ref(w, x))
    close(while_f(w, x), while_ref(w, x))


def cond_f(p, w, x):
    def big(x):
        anp.exp(x)  # dead
        return anp.sin(w) * x

    return ad.cond(p > 0, big, lambda x: x - w, x)


def test_cond_branches_are_optimised_dead_code_gone():
    w, x = mx.array(0.3), mx.array([1.0, 2.0])
    traced = ad.make_jaxpr(cond_f)(mx.array(1.0), w, x).jaxpr
    taken = only(traced, "cond").params["branches"][1].jaxpr
    assert "exp" in names(taken)

    opt = ad.jit(cond_f).trace(mx.array(1.0), w, x).jaxpr
    false_b, true_b = (b.jaxpr for b in only(opt, "cond").params["branches"])
    assert "exp" not in all_names(opt)
    assert "sin" in names(true_b)  # a branch's work stays in the branch (it may not run)
    assert names(false_b) == ["broadcast_in_dim", "sub"]

    text = ad.jit(cond_f).lower(mx.array(1.0), w, x).as_text()
    assert "mx.exp" not in text and "mx.sin" in section(text, "_branches0[1]")

    for p in (1.0, -1.0):
        expected = np.sin(0.3) * np.array(x) if p > 0 else np.array(x) - 0.3
        close(ad.jit(cond_f)(mx.array(p), w, x), expected)
        close(cond_f(mx.array(p), w, x), expected)


def test_nested_loop_bodies_are_optimised_too():
    def f(w, c0, xs):
        def outer(c, x):
            inner = lambda c, _: (c * anp.cos(w) + x, anp.log(c))
            c, _ = ad.scan(inner, c, None, length=2)  # its ys are dead
            return c, None

        return ad.scan(outer, c0, xs)[0]

    opt = ad.jit(f).trace(W, C0, XS).jaxpr
    assert names(opt).index("cos") < names(opt).index("scan")  # hoisted out of both loops
    outer = only(opt, "scan").params["jaxpr"].jaxpr
    inner = only(outer, "scan").params["jaxpr"].jaxpr
    assert "cos" not in all_names(outer)
    assert "log" not in all_names(opt)  # the inner scan's unused ys were dropped
    assert only(outer, "scan").params["num_carry"] == 1 and len(inner.outvars) == 1

    def ref(w, c0, xs):
        c = c0
        for i in range(xs.shape[0]):
            for _ in range(2):
                c = c * np.cos(float(w)) + xs[i]
        return c

    close(ad.jit(f)(W, C0, XS), ref(W, C0, XS))


# ---------------------------------------------------------------------------------------------
# Printing


def printed_f(w, x, xs):
    def step(c, x):
        return c * x + w, anp.sin(c)

    c, ys = ad.scan(step, x, xs, reverse=True)
    return ad.cond(c > 0, lambda a: a * 2.0, lambda a: -a, ys)


PRINTED = """\
{ lambda ; a:f32[] b:f32[] c:f32[3]. let
    d:f32[] e:f32[3] = scan[
      jaxpr=
        { lambda ; f:f32[] g:f32[] h:f32[]. let
            i:f32[] = mul g h
            j:f32[] = add i f
            k:f32[] = sin g
          in (j, k) }
      length=3 num_carry=1 num_consts=1 reverse=True unroll=1
    ] a b c
    l:bool[] = gt d 0.0
    m:i32[] = convert[new_dtype=int32] l
    n:f32[3] = cond[
      branches=(
        { lambda ; o:f32[3]. let
            p:f32[3] = neg o
          in (p,) }
        { lambda ; q:f32[3]. let
            r:f32[3] = mul q 2.0
          in (r,) }
      )
    ] m e
  in (n,) }"""


def test_make_jaxpr_prints_scan_and_cond_sub_jaxprs_nested():
    args = (mx.array(0.1), mx.array(0.5), mx.array([1.0, 2.0, 3.0]))
    text = str(ad.make_jaxpr(printed_f)(*args))
    assert text == PRINTED
    assert str(ad.make_jaxpr(printed_f)(*args)) == text  # deterministic names


NESTED = """\
{ lambda ; a:f32[] b:f32[2]. let
    c:f32[] = scan[
      jaxpr=
        { lambda ; d:f32[] e:f32[]. let
            f:bool[] = gt e 0.0
            g:i32[] = convert[new_dtype=int32] f
            h:f32[] = cond[
              branches=(
                { lambda ; i:f32[] j:f32[]. let  in (j,) }
                { lambda ; k:f32[] l:f32[]. let
                    m:f32[] = add k l
                  in (m,) }
              )
            ] g d e
          in (h,) }
      length=2 num_carry=1 num_consts=0 reverse=False unroll=1
    ] a b
  in (c,) }"""


def test_make_jaxpr_prints_a_cond_inside_a_scan_body_one_level_deeper():
    def f(c0, xs):
        step = lambda c, x: (ad.cond(x > 0, lambda c, x: c + x, lambda c, x: x, c, x), None)
        return ad.scan(step, c0, xs)[0]

    assert str(ad.make_jaxpr(f)(mx.array(1.0), mx.array([1.0, -2.0]))) == NESTED


# ---------------------------------------------------------------------------------------------
# nondiff_argnums, as JAX: the rule takes those arguments first; they are not differentiated


@partial(ad.custom_jvp, nondiff_argnums=(0,))
def app(f, x):
    return f(x)


@app.defjvp
def _app_jvp(f, primals, tangents):
    (x,), (t,) = primals, tangents
    return app(f, x), 3.0 * t  # deliberately not f's derivative: shows the rule ran


def test_custom_jvp_nondiff_argnums_go_first_to_the_rule_and_may_be_static():
    x = mx.array(0.7)
    assert float(app(anp.sin, x)) == pytest.approx(np.sin(0.7), rel=1e-6)
    close(ad.grad(lambda x: app(anp.sin, x))(x), 3.0)
    close(ad.jvp(lambda x: app(anp.sin, x), (x,), (mx.array(2.0),)), (np.sin(0.7), 6.0))
    close(ad.jit(ad.grad(app, 1), static_argnums=0)(anp.cos, x), 3.0)
    close(ad.vmap(ad.grad(lambda x: app(anp.exp, x)))(mx.array([0.1, 0.2])), np.full(2, 3.0))


@partial(ad.custom_jvp, nondiff_argnums=(0,))
def scaled_sin(k, x):
    return k * anp.sin(anp.stop_gradient(x))  # without the rule every derivative would be 0


@scaled_sin.defjvp
def _scaled_sin_jvp(k, primals, tangents):
    (x,), (t,) = primals, tangents
    return scaled_sin(k, x), scaled_sin(k, x + np.pi / 2) * t  # k cos x, via the rule again


def nth_grad(n):
    return functools.reduce(lambda f, _: ad.grad(f, 1), range(n), scaled_sin)


@pytest.mark.parametrize("k", [2.0, mx.array(2.0)], ids=["python", "array"])
def test_custom_jvp_higher_order_through_the_rule_under_jit_and_vmap(k):
    x, xs = mx.array(0.7), mx.array([0.1, 0.7, 2.0])
    expected = [2 * np.sin(0.7), 2 * np.cos(0.7), -2 * np.sin(0.7), -2 * np.cos(0.7)]
    for n, e in enumerate(expected):  # d^n/dx^n k sin x = k sin(x + n pi/2)
        close(nth_grad(n)(k, x), e)
    close(ad.jacfwd(ad.jacfwd(ad.jacfwd(scaled_sin, 1), 1), 1)(k, x), -2 * np.cos(0.7))
    close(ad.jacfwd(ad.grad(ad.grad(scaled_sin, 1), 1), 1)(k, x), -2 * np.cos(0.7))
    static = (0,) if isinstance(k, float) else ()  # a traced nondiff argument works too
    close(ad.jit(nth_grad(3), static_argnums=static)(k, x), -2 * np.cos(0.7))
    close(ad.vmap(nth_grad(3), in_axes=(None, 0))(k, xs), -2 * np.cos(np.array(xs)))
    close(ad.jit(ad.vmap(nth_grad(2), in_axes=(None, 0)))(k, xs), -2 * np.sin(np.array(xs)))


@partial(ad.custom_vjp, nondiff_argnums=(1,))
def clip_scale(x, bound, y):
    return x * y


def _clip_scale_fwd(x, bound, y):  # fwd takes every argument, in its place
    return clip_scale(x, bound, y), (x, y)


def _clip_scale_bwd(bound, res, g):  # bwd: the nondiff argument first; cotangents of x and y
    x, y = res
    return anp.clip(g * y, -bound, bound), g * x


clip_scale.defvjp(_clip_scale_fwd, _clip_scale_bwd)


def test_custom_vjp_nondiff_argnums_go_first_to_bwd_under_jit_and_vmap():
    x, y = mx.array([0.5, -2.0]), mx.array([3.0, 0.1])
    loss = lambda x, bound, y: anp.sum(clip_scale(x, bound, y))
    assert np.array(clip_scale(x, 1.0, y)).tolist() == pytest.approx([1.5, -0.2])
    expected = (np.array([1.0, 0.1]), np.array([0.5, -2.0]))
    close(ad.grad(loss, (0, 2))(x, 1.0, y), expected)
    close(ad.jit(ad.grad(loss, (0, 2)), static_argnums=1)(x, 1.0, y), expected)
    close(ad.jit(ad.grad(loss, (0, 2)))(x, mx.array(1.0), y), expected)  # a traced bound
    # per example: vmap of the gradient, and the gradient of a vmap
    close(ad.vmap(ad.grad(lambda x, y: clip_scale(x, 1.0, y), (0, 1)))(x, y), expected)
    per = lambda x: ad.vmap(lambda x, y: clip_scale(x, 1.0, y))(x, y)
    close(ad.grad(lambda x: anp.sum(per(x)))(x), expected[0])
    with pytest.raises(TransformError, match="custom_jvp"):
        ad.jvp(lambda x: clip_scale(x, 1.0, y), (x,), (x,))


def test_nondiff_argnums_reach_the_rules_in_the_order_given():
    @partial(ad.custom_jvp, nondiff_argnums=(2, 0))
    def f(a, x, b):
        return a * anp.sin(x) + b

    @f.defjvp
    def f_jvp(b, a, primals, tangents):  # as JAX: args[2], then args[0]
        (x,), (t,) = primals, tangents
        return f(a, x, b), a * anp.cos(x) * t

    @partial(ad.custom_vjp, nondiff_argnums=(2, 0))
    def g(a, x, b):
        return a * anp.sin(x) + b

    g.defvjp(
        lambda a, x, b: (g(a, x, b), x),  # fwd: every argument, in its place
        lambda b, a, x, ct: (a * anp.cos(x) * ct,),  # bwd: args[2], args[0], residuals, ct
    )
    x = mx.array(0.5)
    for h in (f, g):
        close(h(2.0, x, 10.0), 2.0 * np.sin(0.5) + 10.0)
        close(ad.grad(h, 1)(2.0, x, 10.0), 2.0 * np.cos(0.5))
        close(ad.jit(ad.grad(h, 1), static_argnums=(0, 2))(2.0, x, 10.0), 2.0 * np.cos(0.5))
    close(ad.jvp(lambda x: f(2.0, x, 10.0), (x,), (mx.array(1.0),))[1], 2.0 * np.cos(0.5))


def test_traced_nondiff_arguments_are_not_differentiated():
    @partial(ad.custom_jvp, nondiff_argnums=(0,))
    def f(a, x):
        return a * anp.sin(x)

    f.defjvp(lambda a, p, t: (f(a, p[0]), a * anp.cos(p[0]) * t[0]))

    @partial(ad.custom_vjp, nondiff_argnums=(0,))
    def g(a, x):
        return a * anp.sin(x)

    g.defvjp(lambda a, x: (g(a, x), x), lambda a, x, ct: (a * anp.cos(x) * ct,))
    a, x = mx.array(2.0), mx.array(0.5)
    for h in (f, g):  # as JAX's stop_gradient on them: a zero derivative
        close(ad.grad(h, (0, 1))(a, x), (0.0, 2.0 * np.cos(0.5)))
        close(ad.jit(ad.grad(h, (0, 1)))(a, x), (0.0, 2.0 * np.cos(0.5)))


def test_nondiff_arguments_computed_inside_the_differentiated_function():
    # JAX's clip_gradient (jax-ml/jax#2784): a bound computed from x, not read by the function
    @partial(ad.custom_vjp, nondiff_argnums=(0, 1))
    def clip_gradient(lo, hi, x):
        return x

    clip_gradient.defvjp(lambda lo, hi, x: (x, None), lambda lo, hi, _, g: (anp.clip(g, lo, hi),))
    f = lambda x: clip_gradient(-0.1, x + 0.1, x)
    close(ad.grad(f)(mx.array(0.1)), 0.2)
    close(ad.jit(ad.grad(f))(mx.array(0.1)), 0.2)

    @partial(ad.custom_jvp, nondiff_argnums=(1,))
    def times_two(x, k):
        return x * 2.0

    times_two.defjvp(lambda k, p, t: (times_two(p[0], k), k * t[0]))  # k, not 2: the rule ran
    h = lambda x: times_two(x, anp.exp(x))
    close(ad.grad(h)(mx.array(1.0)), np.e)
    close(ad.jit(ad.grad(ad.grad(lambda x: h(x) * x)))(mx.array(1.0)), 2 * np.e)


def test_vmap_over_a_batched_nondiff_argument():
    ks, x, xs = mx.array([1.0, 2.0, -3.0]), mx.array(0.7), mx.array([0.1, 0.7, 2.0])
    close(ad.vmap(scaled_sin, in_axes=(0, None))(ks, x), np.array(ks) * np.sin(0.7))
    close(ad.vmap(scaled_sin)(ks, xs), np.array(ks) * np.sin(np.array(xs)))
    # derivatives taken inside the vmap: the rule ran before the batching
    close(ad.vmap(nth_grad(3), in_axes=(0, None))(ks, x), -np.array(ks) * np.cos(0.7))
    close(ad.jit(ad.vmap(nth_grad(1)))(ks, xs), np.array(ks) * np.cos(np.array(xs)))
    bounds = mx.array([0.5, 1.5])
    per = ad.vmap(ad.grad(lambda x, b, y: clip_scale(x, b, y), (0, 2)))
    close(
        per(mx.array([1.0, 1.0]), bounds, mx.array([3.0, 0.1])), (np.array([0.5, 0.1]), np.ones(2))
    )
    # after the batching the rule cannot run on the batched argument: a clear error
    with pytest.raises(TransformError, match="differentiated after vmap batched"):
        ad.grad(lambda x: anp.sum(ad.vmap(scaled_sin, in_axes=(0, None))(ks, x)))(x)
    with pytest.raises(TransformError, match="differentiated after vmap batched"):
        ad.grad(lambda x: anp.sum(ad.vmap(clip_scale, in_axes=(None, 0, None))(x, bounds, x)))(x)

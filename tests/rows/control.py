"""Rows for autodiff/control: cond/switch and scan inside ordinary functions. Called on
concrete arrays they run as Python (the branch taken, the loop), which is the oracle."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, A, Row

import autodiff as ad
import autodiff.numpy as anp


def _cond(x, y):
    return ad.cond(
        anp.sum(x) > 0, lambda a, b: anp.sin(a) * b, lambda a, b: a * a - b, x, y
    ) + ad.switch(anp.argmax(x, axis=None), [anp.cos, anp.tanh, lambda v: v * 3.0], x)


def _rnn(w, xs):
    def step(h, x):
        h = anp.tanh(h * w[0] + x)
        return h, anp.sum(h * x)

    h, ys = ad.scan(step, anp.zeros_like(xs[0]), xs)
    return h + ys[-1] + ys[0]


ROWS = [
    Row("cond_switch", _cond, (A(), A()), diff=(0, 1), mx_grad=False, mx_vmap=False),
    Row(
        "scan",
        _rnn,
        (A(), A()),
        shapes=st.tuples(st.integers(1, 4), st.integers(1, 3)),
        diff=(0, 1),
        mx_grad=False,
        mx_vmap=False,
    ),
    Row(
        "scan_reverse_unroll",
        lambda xs: ad.scan(
            lambda c, x: (c * x + 1.0, c), anp.ones_like(xs[0]), xs, reverse=True, unroll=2
        )[1],
        (A(),),
        shapes=S1,
        mx_grad=False,
        mx_vmap=False,
    ),
]
_ = mx


@ad.custom_jvp
def _softplus(x):
    return anp.log1p(anp.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _softplus(x), t * anp.sigmoid(x)


@ad.custom_vjp
def _scaled_grad(x, y):
    return x * y


_scaled_grad.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1], g * res[0]))


def _checkpointed(x, y):
    layer = ad.checkpoint(lambda h, w: anp.tanh(ad.checkpoint_name(h * w, "hw")))
    h = layer(layer(x, y), y)
    policy = ad.checkpoint_policies.save_only_these_names("hw")
    return ad.checkpoint(lambda h: anp.sin(h) * h, policy=policy)(h)


def _while(x):
    return ad.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, anp.sin(c[1]) * x), (0, x))[1]


ROWS += [
    Row("custom_jvp", lambda x: _softplus(x) * x, (A(),), mx_grad=False, mx_vmap=False),
    Row(
        "custom_vjp",
        _scaled_grad,
        (A(), A()),
        diff=(0, 1),
        modes=("rev",),
        mx_grad=False,
        mx_vmap=False,
    ),
    Row("checkpoint", _checkpointed, (A(), A()), diff=(0, 1), mx_grad=False, mx_vmap=False),
    Row("while_loop", _while, (A(),), modes=("fwd",), mx_grad=False, mx_vmap=False),
    Row(
        "bounded_while_fori",
        lambda x: (
            ad.while_loop(lambda v: anp.sum(v) < 10.0, lambda v: v * 1.5 + 0.1, x, max_steps=7)
            + ad.fori_loop(0, 3, lambda i, v: v * x, x)
        ),
        (A(0.5, 2.0),),
        mx_grad=False,
        mx_vmap=False,
    ),
]

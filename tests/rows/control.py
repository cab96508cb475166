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

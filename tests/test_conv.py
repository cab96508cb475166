"""The convolution family (autodiff/ops/conv.py) beyond its table rows: the primitive against
JAX's conv_general_dilated (values, gradients, second order) on strides, asymmetric and
negative padding, both dilations, groups and flip; the transposed convolutions' gradients,
where MLX's VJP is wrong; batching without loops; MLX code (mlx.nn.Conv2d) under ad.grad;
float64 and grouped 3-D lowering; errors."""

import itertools

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff import lax
from autodiff.ops.conv_layout import out_size
from autodiff.testing import check_grads

jax, jnp = optional_jax(jax_platforms="cpu")

SPEC = {1: ("NWC", "OWI", "NWC"), 2: ("NHWC", "OHWI", "NHWC"), 3: ("NDHWC", "ODHWI", "NDHWC")}


def jax_conv(x, w, stride, padding, kernel_dilation, input_dilation, groups, flip):
    """Our primitive in JAX's terms (negative padding crops the dilated input in both)."""
    nd = x.ndim - 2
    if flip:
        w = jnp.flip(w, tuple(range(1, nd + 1)))
    return jax.lax.conv_general_dilated(
        x, w, stride, padding, input_dilation, kernel_dilation, SPEC[nd], feature_group_count=groups
    )


def _close(a, b, tol=2e-4):
    np.testing.assert_allclose(np.array(a), np.asarray(b), rtol=tol, atol=tol)


def _config(rng, nd, negative=False):
    """A random convolution whose kernel fits: sizes, strides, paddings, dilations, groups."""
    while True:
        g = rng.choice([1, 2])
        s, k = rng.integers(1, 5, nd), rng.integers(1, 4, nd)
        lo_min = -2 if negative else 0
        params = dict(
            stride=tuple(int(v) for v in rng.integers(1, 4, nd)),
            padding=tuple((int(a), int(b)) for a, b in rng.integers(lo_min, 4, (nd, 2))),
            kernel_dilation=tuple(int(v) for v in rng.integers(1, 3, nd)),
            input_dilation=tuple(int(v) for v in rng.integers(1, 4, nd)),
            groups=int(g),
            flip=bool(rng.integers(2)),
        )
        sizes = zip(s, k, params["stride"], *zip(*params["padding"]))
        if all(
            out_size(*a, d, i) >= 1
            for a, d, i in zip(sizes, params["kernel_dilation"], params["input_dilation"])
        ):
            x = rng.standard_normal((2, *s, 2 * g)).astype(np.float32)
            w = rng.standard_normal((2 * g, *k, 2)).astype(np.float32)
            return x, w, params


@requires_jax
@pytest.mark.parametrize("nd,negative", [(1, False), (2, False), (3, False), (1, True), (2, True)])
def test_primitive_matches_jax_values_and_gradients(nd, negative):
    rng = np.random.default_rng(nd + 10 * negative)
    for _ in range(3):
        x, w, p = _config(rng, nd, negative)
        f = lambda x, w: lax.conv_general(x, w, **p)
        fj = lambda x, w: jax_conv(x, w, **p)
        loss, loss_j = (lambda x, w: anp.sum(f(x, w) ** 2)), (lambda x, w: jnp.sum(fj(x, w) ** 2))
        _close(ad.jit(f)(mx.array(x), mx.array(w)), fj(x, w))
        ours = ad.grad(loss, argnums=(0, 1))(mx.array(x), mx.array(w))
        theirs = jax.grad(loss_j, argnums=(0, 1))(x, w)
        for a, b in zip(ours, theirs):
            _close(a, b, 1e-3)
        # a mixed second derivative: d/dw <grad_x loss, v>
        v = rng.standard_normal(x.shape).astype(np.float32)
        mixed = ad.grad(lambda w: anp.sum(ad.grad(loss)(mx.array(x), w) * v))(mx.array(w))
        mixed_j = jax.grad(lambda w: jnp.sum(jax.grad(loss_j)(x, w) * v))(w)
        _close(mixed, mixed_j, 2e-3)


def test_check_grads_to_second_order_on_random_configurations():
    rng = np.random.default_rng(7)
    for nd in (1, 2, 3):
        x, w, p = _config(rng, nd, negative=nd < 3)
        x, w = x[:1], w  # small: finite differences in float64 through the interpreter
        check_grads(lambda x, w: lax.conv_general(x, w, **p), (x, w), order=2)


def test_padding_that_crops_all_input_gives_zeros_and_zero_gradients():
    x, w = mx.ones((1, 2, 1)), mx.ones((1, 1, 1))
    f = lambda x, w: lax.conv_general(x, w, (1,), ((-4, 2),), (1,), (2,))
    assert ad.jit(f)(x, w).tolist() == [[[0.0]]]
    gx, gw = ad.grad(lambda x, w: anp.sum(f(x, w)), argnums=(0, 1))(x, w)
    assert not np.any(np.array(gx)) and not np.any(np.array(gw))


@pytest.mark.parametrize(
    "fn,nd,kw",
    [
        (
            anp.conv_transpose1d,
            1,
            dict(stride=2, padding=1, dilation=2, output_padding=1, groups=2),
        ),
        (anp.conv_transpose2d, 2, dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2))),
        (anp.conv_transpose3d, 3, dict(stride=2, padding=1, output_padding=1)),
    ],
)
def test_transposed_convolutions_gradients_match_jax(fn, nd, kw):
    # MLX's own gradients of these are wrong (input dilation with asymmetric padding): JAX,
    # on the definition MLX computes (a flipped conv of the input dilated by the stride).
    rng = np.random.default_rng(nd)
    groups = kw.get("groups", 1)
    x = rng.standard_normal((2, *[3] * nd, 2 * groups)).astype(np.float32)
    w = rng.standard_normal((3 * groups, *[2] * nd, 2)).astype(np.float32)
    ours_fwd = ad.jit(lambda x, w: fn(x, w, **kw))(mx.array(x), mx.array(w))
    _close(ours_fwd, fn(mx.array(x), mx.array(w), **kw), 1e-5)  # == MLX's forward

    def as_jax(x, w):
        per = lambda v: (v,) * nd if isinstance(v, int) else v
        s, p, op = per(kw["stride"]), per(kw["padding"]), per(kw["output_padding"])
        d = per(kw.get("dilation", 1))
        pads = [
            (d_ * (k - 1) - p_, d_ * (k - 1) - p_ + o) for d_, k, p_, o in zip(d, [2] * nd, p, op)
        ]
        return jax_conv(x, w, (1,) * nd, pads, d, s, groups, True)

    if jax is None:
        return  # the gradients are checked against JAX
    _close(ours_fwd, as_jax(x, w))
    ours = ad.grad(lambda x, w: anp.sum(fn(x, w, **kw) ** 2), argnums=(0, 1))(
        mx.array(x), mx.array(w)
    )
    theirs = jax.grad(lambda x, w: jnp.sum(as_jax(x, w) ** 2), argnums=(0, 1))(x, w)
    for a, b in zip(ours, theirs):
        _close(a, b, 1e-3)


def test_second_order_reverse_over_reverse_matches_mlx():
    x, w = mx.random.normal((2, 6, 5, 4)), mx.random.normal((4, 3, 2, 2))
    loss = lambda x, w: mx.sum(mx.tanh(mx.conv2d(x, w, stride=2, padding=1, groups=2)) ** 2)
    inner = lambda grad: lambda w: mx.sum(grad(loss)(x, w) ** 2)
    _close(ad.grad(inner(ad.grad))(w), mx.grad(inner(mx.grad))(w), 1e-3)


def _conv_count(fun, *args, **vmap_kw):
    jaxpr = ad.make_jaxpr(ad.vmap(fun, **vmap_kw))(*args)
    return sum(e.prim.name == "conv_general" for e in jaxpr.eqns), len(jaxpr.eqns)


@pytest.mark.parametrize("groups", [1, 2])
def test_vmap_batched_input_kernel_and_both_without_loops(groups):
    rng = np.random.default_rng(groups)
    xs = mx.array(rng.standard_normal((3, 2, 5, 4 * groups)).astype(np.float32))
    ws = mx.array(rng.standard_normal((3, 2 * groups, 2, 4)).astype(np.float32))
    f = lambda x, w: anp.conv1d(x, w, stride=2, padding=1, groups=groups)
    for in_axes in [(0, None), (None, 0), (0, 0), (2, 1)]:
        args = [xs if in_axes[0] is not None else xs[0], ws if in_axes[1] is not None else ws[0]]
        if in_axes == (2, 1):
            args = [mx.moveaxis(xs, 0, 2), mx.moveaxis(ws, 0, 1)]
        got = ad.vmap(f, in_axes=in_axes)(*args)
        loop = mx.stack(
            [f(xs[i] if in_axes[0] is not None else xs[0], ws[i] if in_axes[1] is not None else ws[0])
             for i in range(3)]
        )  # fmt: skip
        _close(got, loop, 1e-5)
        n_conv, n_eqns = _conv_count(f, *args, in_axes=in_axes)
        assert n_conv == 1 and n_eqns <= 8  # one convolution, a few reshapes/transposes
    # per-example gradients of the kernel: vmap(grad) over a batched input
    per_ex = ad.vmap(ad.grad(lambda w, x: anp.sum(f(x[None], w) ** 2)), in_axes=(None, 0))(
        ws[0], xs[:, 0]
    )
    loop = [mx.grad(lambda w: mx.sum(f(xs[i, :1], w) ** 2))(ws[0]) for i in range(3)]
    _close(per_ex, mx.stack(loop), 1e-4)


def test_mlx_nn_conv2d_traces_under_grad():
    layer = nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1, groups=2)
    x = mx.random.normal((2, 7, 7, 4))

    def loss_x(x):
        return mx.sum(mx.tanh(layer(x)) ** 2)

    def loss_w(w, x):
        layer.weight = w
        return mx.sum(mx.tanh(layer(x)) ** 2)

    w0 = layer.weight
    _close(ad.grad(loss_x)(x), mx.grad(loss_x)(x), 1e-4)
    ours = ad.grad(loss_w)(w0, x)
    layer.weight = w0
    _close(ours, mx.grad(loss_w)(w0, x), 1e-4)
    layer.weight = w0
    # and the transposed layer, with respect to its weight
    up = nn.ConvTranspose1d(3, 2, kernel_size=3, stride=2, padding=1)
    y = mx.random.normal((1, 5, 3))
    check_grads(lambda w: (setattr(up, "weight", w), up(y))[1], (up.weight,), order=1)


def test_lowering_is_one_mlx_call_and_float64_and_grouped_3d_work():
    x, w = mx.random.normal((1, 5, 6, 4)), mx.random.normal((2, 2, 3, 2))
    f = lambda x, w: anp.conv_general(x, w, padding=([1, 0], [0, 2]), groups=2, flip=True)
    src = ad.jit(f).lower(x, w).as_text()
    assert "mx.conv_general(" in src and "_conv_general(" not in src.replace("mx.conv_general(", "")
    # MLX's float64 CPU kernel lacks groups, dilation and flip: the lowering spells them out
    g = lambda x, w: anp.sum(f(x, w) ** 2)
    g32 = ad.grad(g, argnums=(0, 1))(x, w)
    g64 = ad.grad(g, argnums=(0, 1))(x.astype(mx.float64), w.astype(mx.float64))
    for a, b in zip(g32, g64):
        assert b.dtype == mx.float64
        _close(a, b, 1e-4)
    # MLX lacks grouped 3-D convolutions, which batching a 3-D kernel produces
    xs, ws = mx.random.normal((2, 1, 3, 3, 3, 2)), mx.random.normal((2, 2, 2, 2, 2, 2))
    got = ad.vmap(lambda x, w: anp.conv3d(x, w, padding=1))(xs, ws)
    _close(got, mx.stack([mx.conv3d(xs[i], ws[i], padding=1) for i in range(2)]), 1e-5)


def test_errors_say_what_is_wrong():
    x, w = mx.ones((1, 5, 4)), mx.ones((2, 3, 2))
    with pytest.raises(ValueError, match="groups"):
        ad.grad(lambda x: anp.sum(anp.conv1d(x, w, groups=3)))(x)
    with pytest.raises(ValueError, match=r"groups != 1 in 1D or 2D"):
        ad.grad(lambda x: anp.sum(anp.conv3d(x, mx.ones((2, 1, 1, 1, 2)), groups=2)))(
            mx.ones((1, 2, 2, 2, 4))
        )
    with pytest.raises(ValueError, match="larger than the padded input"):
        ad.grad(lambda x: anp.sum(anp.conv1d(x, mx.ones((2, 9, 4)))))(x)
    with pytest.raises(ValueError, match="floating point"):
        ad.jit(lambda i: anp.conv1d(i, w))(mx.ones((1, 5, 2), dtype=mx.int32))
    with pytest.raises(ValueError, match="Invalid mode"):
        ad.grad(lambda a: anp.sum(anp.convolve(a, mx.ones(2), "nope")))(mx.ones(4))


def test_convolve_modes_and_swapped_operands_match_mlx_and_numpy():
    for n, k, mode in itertools.product([1, 4, 7], [1, 2, 3, 6], ["full", "valid", "same"]):
        a, v = mx.random.normal((n,)), mx.random.normal((k,))
        got = ad.jit(lambda a, v: anp.convolve(a, v, mode))(a, v)
        _close(got, mx.convolve(a, v, mode), 1e-5)
        _close(got, np.convolve(np.array(a), np.array(v), mode), 1e-4)

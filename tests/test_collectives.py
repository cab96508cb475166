"""Collectives on one process: named axes under ``ad.vmap(axis_name=...)`` against JAX's
``jax.vmap(axis_name=...)`` and NumPy, derivatives against finite differences, collectives in
control flow and nested named vmaps, ``ad.spmd`` on a group of one (eager, jitted, lowered,
interpreted), the data-parallel helpers, and the errors. The same functions across 2 and 4
processes: tests/test_distributed.py."""

import functools

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff import lax
from autodiff.distributed import average_gradients, buckets
from autodiff.interpret import interpret
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import lower_mlx
from autodiff.named_axes import axis_frame
from autodiff.testing import check_grads

jax, jnp = optional_jax(jax_enable_x64=False)


def close(a, b, tol=1e-5):
    a, b = ad.tree_leaves(a), ad.tree_leaves(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


A = np.array


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def both(fun, x, **vmap_kw):
    """(ours, JAX's) for ``fun(lax_module)`` vmapped over axis name "i"."""
    ours = ad.vmap(fun(lax, anp), axis_name="i", **vmap_kw)(mx.array(x))
    theirs = jax.vmap(fun(jax.lax, jnp), axis_name="i", **vmap_kw)(jnp.asarray(x))
    return ours, theirs


# Functions written once for both libraries: f(lax, np) -> per-example function.
FUNS = {
    "psum": lambda L, N: lambda v: L.psum(v, "i") * v,
    "pmean": lambda L, N: lambda v: v - L.pmean(v, "i"),
    "pmax_pmin": lambda L, N: lambda v: L.pmax(v, "i") - 2 * L.pmin(N.sin(v), "i"),
    "psum_scalar_constant": lambda L, N: lambda v: v * L.psum(2.0, "i"),
    "axis_index": lambda L, N: lambda v: v * L.axis_index("i"),
    "all_gather": lambda L, N: lambda v: L.all_gather(v, "i"),
    "all_gather_axis1": lambda L, N: lambda v: L.all_gather(v * v, "i", axis=1),
    "all_gather_last": lambda L, N: lambda v: L.all_gather(v, "i", axis=-1),
    "all_gather_tiled": lambda L, N: lambda v: L.all_gather(v, "i", axis=1, tiled=True),
    "psum_scatter_tiled": lambda L, N: lambda v: L.psum_scatter(v, "i", tiled=True),
    "psum_scatter_dim1": lambda L, N: (
        lambda v: L.psum_scatter(
            N.concatenate([v, v], axis=1), "i", scatter_dimension=1, tiled=True
        )
    ),
    "normalise": lambda L, N: lambda v: v / L.psum(N.sum(v * v), "i"),
}


@requires_jax
@pytest.mark.parametrize("name", FUNS)
@pytest.mark.parametrize("in_axes", [0, 1])
def test_named_vmap_matches_jax(name, in_axes):
    x = data(4, 4, 2) if in_axes == 0 else data(4, 4, 2).transpose(1, 0, 2)
    ours, theirs = both(FUNS[name], x, in_axes=in_axes)
    close(ours, theirs)


GRAD_FUNS = {
    "psum": lambda L, N: lambda v: N.sum(L.psum(v * v, "i") * N.sin(v)),
    "pmean": lambda L, N: lambda v: N.sum((v - L.pmean(v, "i")) ** 2),
    "all_gather": lambda L, N: lambda v: N.sum(L.all_gather(v, "i", axis=1) ** 3),
    "all_gather_tiled": lambda L, N: lambda v: N.sum(N.cos(L.all_gather(v, "i", tiled=True))),
    "psum_scatter": lambda L, N: lambda v: N.sum(L.psum_scatter(v, "i", tiled=True) ** 2),
    "mixed": lambda L, N: (
        lambda v: N.sum(L.all_gather(N.tanh(v), "i") * L.psum(v, "i") + L.axis_index("i") * v)
    ),
}


@requires_jax
@pytest.mark.parametrize("name", GRAD_FUNS)
def test_grad_inside_named_vmap_matches_jax(name):
    # JAX transposes psum to psum, as we do (see the collectives module docstring)
    x = data(4, 4, 3)
    f = GRAD_FUNS[name]
    ours = ad.vmap(ad.grad(f(lax, anp)), axis_name="i")(mx.array(x))
    theirs = jax.vmap(jax.grad(f(jax.lax, jnp)), axis_name="i")(jnp.asarray(x))
    close(ours, theirs, 1e-4)
    # and the gradient of the whole batch, outside the vmap, is the same function's
    outer = ad.grad(lambda X: anp.sum(ad.vmap(f(lax, anp), axis_name="i")(X)))(mx.array(x))
    close(outer, theirs, 1e-4)


@pytest.mark.parametrize("name", GRAD_FUNS)
def test_named_vmap_derivatives_against_finite_differences(name):
    f = ad.vmap(GRAD_FUNS[name](lax, anp), axis_name="i")
    check_grads(f, (mx.array(data(4, 4, 2)),), order=2)


def test_pmax_pmin_derivatives_split_ties_and_match_finite_differences():
    f = ad.vmap(lambda v: lax.pmax(v, "i") * v + lax.pmin(v * v, "i"), axis_name="i")
    check_grads(f, (mx.array(data(3, 4)),), order=2)
    ones = mx.array([1.0, 3.0, 3.0])
    close(ad.vmap(ad.grad(lambda v: lax.pmax(v, "i")), axis_name="i")(ones), A([0, 1.5, 1.5]))
    close(ad.vmap(ad.grad(lambda v: lax.pmin(v, "i")), axis_name="i")(ones), A([3.0, 0, 0]))
    # pmax's tangent is psum'ed: its JVP under the name is exact
    t = mx.array([0.1, 0.2, 0.3])
    _, tan = ad.jvp(ad.vmap(lambda v: lax.pmax(v, "i"), axis_name="i"), (ones,), (t,))
    close(tan, A([0.25, 0.25, 0.25]))


def test_unbatched_operands_and_nested_names():
    c = mx.array([1.0, 2.0])
    x = mx.array(data(3, 2))
    # a closed-over constant is the same on every instance: psum is 3 * c, all_gather tiles it
    out = ad.vmap(
        lambda v: (lax.psum(c, "i"), lax.all_gather(c, "i"), lax.pmax(c, "i")), axis_name="i"
    )(x)
    close(out, (A([[3.0, 6.0]] * 3), A([[[1.0, 2.0]] * 3] * 3), A([[1.0, 2.0]] * 3)))

    def f(L, N):
        def g(v):
            return (
                L.psum(v, "i") * 10 + L.psum(v, "j") + L.axis_index("i") * 100.0 + L.axis_index("j")
            )

        return g

    if jax is None:
        return  # the nested names are checked against JAX
    X = data(2, 3, 2)
    ours = ad.vmap(ad.vmap(f(lax, anp), axis_name="j"), axis_name="i")(mx.array(X))
    theirs = jax.vmap(jax.vmap(f(jax.lax, jnp), axis_name="j"), axis_name="i")(jnp.asarray(X))
    close(ours, theirs)
    # an inner vmap with another name batches the outer name's collectives like any op
    ours = ad.vmap(ad.vmap(f(lax, anp), axis_name="j", in_axes=1), axis_name="i")(mx.array(X))
    theirs = jax.vmap(jax.vmap(f(jax.lax, jnp), axis_name="j", in_axes=1), axis_name="i")(
        jnp.asarray(X)
    )
    close(ours, theirs)


def test_collectives_in_control_flow_under_a_named_vmap():
    x = mx.array(data(3, 2))

    def body(carry, v):
        return carry + lax.psum(v * carry, "i"), lax.axis_index("i") * carry

    def f(v):
        out = ad.cond(True, lambda: lax.psum(v, "i"), lambda: v)  # unbatched predicate
        carry, ys = ad.scan(body, out, anp.stack([v, v * 2.0]))
        return carry, ys

    if jax is not None:

        def jf(v):
            out = jax.lax.cond(True, lambda: jax.lax.psum(v, "i"), lambda: v)

            def jbody(carry, w):
                return carry + jax.lax.psum(w * carry, "i"), jax.lax.axis_index("i") * carry

            return jax.lax.scan(jbody, out, jnp.stack([v, v * 2.0]))

        close(ad.vmap(f, axis_name="i")(x), jax.vmap(jf, axis_name="i")(jnp.asarray(x)), 1e-4)
    check_grads(lambda v: ad.vmap(f, axis_name="i")(v)[0], (x,), order=1)
    # an equation whose operands are all unbatched but whose body mentions the name
    idx = ad.vmap(lambda v: ad.cond(True, lambda: lax.axis_index("i"), lambda: 0), axis_name="i")
    assert idx(x).tolist() == [0, 1, 2]
    scan = ad.vmap(
        lambda v: ad.scan(lambda c, _: (c + lax.axis_index("i"), c), 0, None, length=3)[1],
        axis_name="i",
    )
    assert scan(x).tolist() == [[0, 0, 0], [0, 1, 2], [0, 2, 4]]
    loop = ad.vmap(
        lambda v: ad.fori_loop(0, 2, lambda k, c: c + lax.psum(1, "i") + lax.axis_index("i"), 0),
        axis_name="i",
    )
    assert loop(x).tolist() == [6, 8, 10]


def test_every_collective_has_a_named_batch_rule():
    from autodiff.primitives import family
    from autodiff.transforms.vmap import named_batch_rules

    collectives = family("collective")
    assert {p.name for p in collectives} >= {
        "psum",
        "pmax",
        "pmin",
        "all_gather",
        "psum_scatter",
        "axis_index",
    }
    assert all(p in named_batch_rules for p in collectives)


def test_jit_inside_named_vmap_retraces_per_axis_size():
    f = ad.jit(lambda v: lax.all_gather(v, "i"))
    assert ad.vmap(f, axis_name="i")(mx.ones((2, 3))).shape == (2, 2, 3)
    assert ad.vmap(f, axis_name="i")(mx.ones((4, 3))).shape == (4, 4, 3)


def test_integer_and_boolean_operands():
    out = ad.vmap(
        lambda v: (lax.psum(v > 0, "i"), lax.pmean(v.astype(mx.int32), "i")), axis_name="i"
    )(mx.array([1.0, -1.0, 2.0, 4.0]))
    assert out[0].dtype == mx.int32 and out[0].tolist() == [3] * 4
    assert out[1].dtype == mx.float32 and out[1].tolist() == [1.5] * 4


def test_errors():
    with pytest.raises(NameError, match=r"unbound axis name: 'i'.*ad.vmap.*ad.spmd"):
        ad.jit(lambda v: lax.psum(v, "i"))(mx.ones(2))
    with pytest.raises(NameError, match="unbound axis name: 'j'"):
        ad.vmap(lambda v: lax.psum(v, "j"), axis_name="i")(mx.ones(2))
    with pytest.raises(ValueError, match="must have the size 3 of axis 'i'.*tiled=True"):
        ad.vmap(lambda v: lax.psum_scatter(v, "i"), axis_name="i")(mx.ones((3, 2)))
    with pytest.raises(ValueError, match="divisible by the size 3"):
        ad.vmap(lambda v: lax.psum_scatter(v, "i", tiled=True), axis_name="i")(mx.ones((3, 2)))
    with pytest.raises(TypeError, match="one hashable value"):
        ad.vmap(lambda v: v, axis_name=("i", "j"))(mx.ones(2))
    with pytest.raises(TypeError, match="pmax: expects a real operand"):
        ad.vmap(lambda v: lax.pmax(v, "i"), axis_name="i")(mx.ones(2, dtype=mx.complex64))
    with axis_frame("q", 2):  # bound as a vmap binds it: the collective never should run
        closed = ad.make_jaxpr(lambda v: lax.psum(v, "q"))(mx.ones(2))
    with pytest.raises(NameError, match="no process group is bound to 'q'.*ad.spmd"):
        lower_mlx(closed)


# ---------------------------------------------------------------------------------------------
# spmd on one process (a group of one): the primitives stay, lower to mx.distributed


def _spmd_fun(x):
    return (
        lax.psum(x * x, "data") + lax.pmean(x, "data") + lax.pmax(x, "data"),
        lax.all_gather(x, "data", axis=1),
        lax.psum_scatter(x, "data", tiled=True),
        lax.axis_index("data"),
    )


def test_spmd_on_one_process_eager_jit_lowered_interpreted():
    x = mx.array(data(2, 3))
    f = ad.spmd(_spmd_fun)
    eager = f(x)
    jitted = ad.jit(f)
    close(jitted(x), eager)
    batch_of_one = ad.vmap(_spmd_fun, axis_name="data")(x[None])
    close(eager, [o[0] for o in batch_of_one])
    text = jitted.lower(x).as_text()
    for call in (
        "mx.distributed.all_sum",
        "mx.distributed.all_max",
        "_all_gather(",
        "_psum_scatter(",
    ):
        assert call in text
    closed = ad.make_jaxpr(f)(x)
    assert {"psum", "pmax", "all_gather", "psum_scatter", "axis_index"} <= {
        e.prim.name for e in closed.eqns
    }
    close(interpret(closed, np.asarray(x)), eager)
    check_grads(lambda v: f(v)[0] * f(v)[1][:, 0], (x,), order=2)


def test_mlx_spelling_traces():
    # mx.distributed on traced values: routed to the collectives (the world axis, implicitly)
    x = mx.array([1.0, 2.0])
    g = ad.grad(lambda v: mx.distributed.all_sum(v * v).sum())(x)
    close(g, A([2.0, 4.0]))
    f = ad.jit(
        lambda v: (
            mx.distributed.all_gather(v),
            mx.distributed.all_max(v),
            mx.distributed.sum_scatter(v),
        )
    )
    close(f(x), (x, x, x))
    assert (
        "mx.distributed.all_sum" in ad.jit(lambda v: mx.distributed.all_sum(v)).lower(x).as_text()
    )
    # and inside an spmd the group's axis is the spmd's
    closed = ad.make_jaxpr(ad.spmd(lambda v: mx.distributed.all_sum(v), axis_name="rows"))(x)
    assert closed.eqns[0].params["axis_name"] == "rows"


# ---------------------------------------------------------------------------------------------
# Data-parallel helpers


def _grads_tree():
    return {
        "w": [mx.ones((64, 64)), mx.ones((64,))],
        "b": mx.ones((10,)),
        "h": mx.ones((3,), dtype=mx.float16),
    }


def test_buckets_group_by_dtype_in_order_and_close_at_the_size():
    avals = [
        ShapedArray(s, d)
        for s, d in [
            ((100,), "float32"),
            ((10,), "float16"),
            ((100,), "float32"),
            ((5,), "float32"),
        ]
    ]
    assert buckets(avals, 0) == [[0], [1], [2], [3]]
    assert buckets(avals, 10**6) == [[0, 2, 3], [1]]
    assert buckets(avals, 400) == [[0], [1], [2], [3]]
    assert buckets(avals, 800) == [[0, 2], [1], [3]]


@pytest.mark.parametrize("bucket_bytes,expected", [(0, 5), (2**20, 2), (64 * 64 * 4, 3)])
def test_average_gradients_counts_its_all_reduces(bucket_bytes, expected):
    grads = _grads_tree()
    with axis_frame("data", 4):
        closed = ad.make_jaxpr(lambda g, l: average_gradients((l, g), "data", bucket_bytes))(
            grads, mx.array(1.0)
        )
    assert sum(e.prim.name == "psum" for e in closed.eqns) == expected


def test_average_gradients_under_a_named_vmap_is_the_batch_mean():
    stacked = ad.tree_map(lambda a: mx.stack([a * k for k in range(3)]), _grads_tree())
    for bucket_bytes in (0, 1000, 2**20):
        avg = ad.vmap(
            functools.partial(average_gradients, axis_name="i", bucket_bytes=bucket_bytes),
            axis_name="i",
        )(stacked)
        close(
            avg, ad.tree_map(lambda a: mx.broadcast_to(a.mean(0, keepdims=True), a.shape), stacked)
        )


def test_average_gradients_and_train_step_on_one_process():
    grads = _grads_tree()
    assert ad.spmd(average_gradients)(grads) is grads  # nothing to average over one process

    def make():
        mx.random.seed(3)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def loss_fn(model, x, y):
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    import mlx.optimizers as optim

    model, ref = make(), make()
    step = ad.distributed.train_step(model, optim.Adam(1e-2), loss_fn)
    ref_opt = optim.Adam(1e-2)
    ref_step = nn.value_and_grad(ref, loss_fn)
    x, y = mx.array(data(16, 4)), mx.array(np.arange(16) % 3)
    for _ in range(3):
        loss = step(x, y)
        ref_loss, g = ref_step(ref, x, y)
        ref_opt.update(ref, g)
        close(loss, ref_loss)
    close(model.parameters(), ref.parameters())

"""anp.random: MLX's values bit for bit (eager, traced and lowered, jitted, with and without
mx.compile) for explicit keys; the implicit key (seed, then jitted functions drawing without a
key give, call after call, what the same MLX code gives: dropout masks in a jitted training
step, un-jitted ad.grad, a draw inside ad.grad inside ad.jit, seed inside a jitted function);
vmap over keys, seeds and parameters against a loop; derivatives of the composites against
their closed forms; MLX's argument checks; the mx.random spelling under transforms."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
import autodiff.numpy as anp
from autodiff import TransformError
from autodiff.interpret import interpret
from autodiff.lower_mlx import lower_mlx

R = anp.random
X = mx.array(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
COV = mx.array(
    [[2.0, 0.3, 0.1, 0.0], [0.3, 1.0, -0.2, 0.0], [0.1, -0.2, 0.5, 0.1], [0.0, 0.0, 0.1, 0.8]]
)


def _np(a):
    a = a.astype(mx.float32) if a.dtype == mx.bfloat16 else a
    return np.array(a)


def assert_same(got, expected):
    got, expected = ad.tree_leaves(got), ad.tree_leaves(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape, (g.shape, e.shape)
        if e.dtype != mx.uint32:  # categorical/permutation: int32 here, uint32 in MLX
            assert g.dtype == e.dtype, (g.dtype, e.dtype)
        np.testing.assert_array_equal(_np(g), _np(e).astype(_np(g).dtype))


# f(key, x): draws with MLX's signatures; x (float32, (4, 5)) is a parameter where one fits
CASES = {
    "uniform": lambda k, x: R.uniform(x, x + 2.5, (4, 5), key=k),
    "uniform_scalars": lambda k, x: R.uniform(-1.5, 0.75, (3, 4, 5), key=k) * x,
    "normal": lambda k, x: R.normal((4, 5), loc=x, scale=x * 0.5 + 2.0, key=k),
    "normal_plain": lambda k, x: R.normal((2, 4, 5), key=k) * x,
    "normal_scalars": lambda k, x: R.normal((4, 5), loc=0.1, scale=0.3, key=k) * x,
    "normal_f64": lambda k, x: R.normal((4, 5), mx.float64, loc=x, key=k),
    "normal_complex": lambda k, x: R.normal((4, 5), mx.complex64, loc=x, scale=2.0, key=k),
    "truncated_normal": lambda k, x: R.truncated_normal(x - 1.0, x + 0.7, key=k),
    "truncated_normal_shape": lambda k, x: R.truncated_normal(-0.5, x[0], (3, 5), key=k),
    "gumbel": lambda k, x: R.gumbel((4, 5), key=k) * x,
    "laplace": lambda k, x: R.laplace((4, 5), loc=0.3, scale=1.7, key=k) * x,
    "laplace_traced": lambda k, x: R.laplace((4, 5), loc=x[0, 0], scale=x[0, 1] + 3.0, key=k),
    "randint": lambda k, x: R.randint(-3, 7, (4, 5), key=k) * x.astype(mx.int32),
    "randint_bounds": lambda k, x: R.randint(x.astype(mx.int32), 9, (4, 5), key=k),
    "randint_uint8": lambda k, x: R.randint(0, 200, (11,), mx.uint8, key=k),
    "bernoulli": lambda k, x: R.bernoulli(mx.sigmoid(x), key=k),
    "bernoulli_scalar": lambda k, x: R.bernoulli(0.3, (4, 5), key=k) & (x > 0),
    "bernoulli_f16": lambda k, x: R.bernoulli(mx.sigmoid(x).astype(mx.float16), (3, 4, 5), key=k),
    "categorical": lambda k, x: R.categorical(x, key=k),
    "categorical_axis0": lambda k, x: R.categorical(x, axis=0, key=k),
    "categorical_num_samples": lambda k, x: R.categorical(x, num_samples=6, key=k),
    "categorical_shape": lambda k, x: R.categorical(x, shape=(3, 4), key=k),
    "categorical_inverse_cdf": lambda k, x: R.categorical(x[0], shape=(3, 7), key=k),
    "categorical_inverse_cdf_n": lambda k, x: R.categorical(x[:1], num_samples=9, key=k),
    "categorical_inf": lambda k, x: R.categorical(
        mx.where(x[0] > 0, float("inf"), x[0]), num_samples=9, key=k
    ),
    "permutation_n": lambda k, x: R.permutation(7, key=k),
    "permutation": lambda k, x: R.permutation(x, key=k),
    "permutation_axis": lambda k, x: R.permutation(x, axis=-1, key=k),
    "multivariate_normal": lambda k, x: R.multivariate_normal(x[:2, :4], COV, (3, 2), key=k),
    "split": lambda k, x: R.normal((3,), key=R.split(k, 3)[2]) * x[0, :3],
}
for _dt in ("float16", "bfloat16"):
    _d = getattr(mx, _dt)
    CASES[f"uniform_{_dt}"] = lambda k, x, d=_d: R.uniform(x, 2.0, (4, 5), d, key=k)
    CASES[f"normal_{_dt}"] = lambda k, x, d=_d: R.normal((4, 5), d, loc=x, scale=0.5, key=k)
    CASES[f"truncated_normal_{_dt}"] = lambda k, x, d=_d: R.truncated_normal(-1, x, dtype=d, key=k)
    CASES[f"gumbel_{_dt}"] = lambda k, x, d=_d: R.gumbel((4, 5), d, key=k)
    CASES[f"laplace_{_dt}"] = lambda k, x, d=_d: R.laplace((4, 5), d, 0.1, 0.7, key=k)


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=3)
@given(seed=st.integers(0, 2**32 - 1))
def test_traced_lowered_and_jitted_equal_mlx(name, seed):
    f = CASES[name]
    k = mx.random.key(seed)
    expected = f(k, X)  # concrete: MLX's own functions
    closed = ad.make_jaxpr(f)(k, X)
    ad.typecheck(closed)
    assert_same(lower_mlx(closed).fn(*closed.consts, k, X), [expected])  # unoptimised
    assert_same(ad.jit(f)(k, X), expected)  # optimised
    assert_same(ad.vmap(f, in_axes=(0, None))(mx.stack([k, k]), X)[1], expected)


@pytest.mark.parametrize(
    "name", ["normal", "uniform_float16", "laplace", "bernoulli", "categorical_inverse_cdf"]
)
def test_compiled_jit_equals_mlx(name, compiled):
    f = CASES[name]
    k = mx.random.key(11)
    assert_same(ad.jit(f)(k, X), f(k, X))


@pytest.mark.parametrize("name", ["normal", "truncated_normal", "randint", "bernoulli_f16"])
def test_interpreter_draws_mlx_bits(name):
    f = CASES[name]
    k = mx.random.key(3)
    closed = ad.make_jaxpr(f)(k, X)
    (got,) = interpret(closed, k, X)
    np.testing.assert_allclose(got, _np(f(k, X)).astype(got.dtype), rtol=2e-3, atol=2e-3)


def test_eager_is_mlx():
    k = mx.random.key(1)
    assert_same(R.normal((3,), key=k), mx.random.normal((3,), key=k))
    mx.random.seed(4)
    a = R.uniform(shape=(3,))
    mx.random.seed(4)
    assert_same(a, mx.random.uniform(shape=(3,)))
    assert R.key(7).tolist() == mx.random.key(7).tolist()
    assert_same(R.split(k, 3), mx.random.split(k, 3))


# ---------------------------------------------------------------------------------------------
# The implicit key


def _draws(x):
    a = mx.random.normal(x.shape) * x
    b = mx.random.uniform(shape=(2,))
    c = mx.random.bernoulli(0.3, (5,))
    d = mx.random.categorical(x)
    return a, b, c, d


def _sequence(f, seed, n=3, *args):
    mx.random.seed(seed)
    outs = [f(*args) for _ in range(n)]
    return outs, mx.random.state[0]


def test_jit_draws_follow_the_global_key():
    x = mx.ones((3, 4))
    expected, key_after = _sequence(_draws, 7, 3, x)
    got, got_key = _sequence(ad.jit(_draws), 7, 3, x)
    assert_same(got, expected)
    assert_same(got_key, key_after)
    assert not np.array_equal(_np(got[0][0]), _np(got[1][0]))  # new numbers at every call


def test_jit_without_random_leaves_the_key_alone():
    mx.random.seed(2)
    ad.jit(lambda x: x * 2)(mx.ones(3))
    k = mx.random.state[0]
    mx.random.seed(2)
    assert_same(k, mx.random.state[0])


def test_jitted_dropout_masks_are_mlxs():
    drop = nn.Dropout(0.5)
    x = mx.ones((4, 6))
    expected, _ = _sequence(drop, 1, 3, x)
    got, _ = _sequence(ad.jit(lambda x: drop(x)), 1, 3, x)
    assert_same(got, expected)
    masks = [_np(g) != 0 for g in got]
    assert not (masks[0] == masks[1]).all() and not (masks[1] == masks[2]).all()


def test_jitted_training_step_with_dropout(compiled):
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))
    x, y = mx.ones((5, 4)), mx.zeros((5, 1))

    def loss(w1, x, y):
        h = model.layers[1](x @ w1)
        return ((model.layers[2](h) - y) ** 2).mean()

    w1 = mx.ones((4, 8)) * 0.1
    expected, _ = _sequence(mx.value_and_grad(loss), 5, 3, w1, x, y)
    got, _ = _sequence(ad.jit(ad.value_and_grad(loss)), 5, 3, w1, x, y)
    for (lg, gg), (le, ge) in zip(got, expected):
        np.testing.assert_allclose(_np(lg), _np(le), rtol=1e-5)
        np.testing.assert_allclose(_np(gg), _np(ge), rtol=1e-5, atol=1e-6)
    assert not np.allclose(_np(got[0][1]), _np(got[1][1]))


def test_grad_un_jitted_and_inside_jit_follow_the_global_key():
    drop = nn.Dropout(0.5)

    def loss(w):
        return (drop(w) * w + mx.random.normal(w.shape, loc=w)).sum()

    w = mx.ones((3, 4))
    expected, key_after = _sequence(mx.grad(loss), 3, 3, w)
    for f in (ad.grad(loss), ad.jit(ad.grad(loss))):
        got, got_key = _sequence(f, 3, 3, w)
        assert_same(got, expected)
        assert_same(got_key, key_after)


def test_vmap_without_key_draws_once_as_mlx():
    f = lambda x: x + mx.random.normal(x.shape)  # noqa: E731
    xs = mx.zeros((3, 2))
    expected, _ = _sequence(mx.vmap(f), 9, 2, xs)
    for g in (ad.vmap(f), ad.jit(ad.vmap(f))):
        got, _ = _sequence(g, 9, 2, xs)
        assert_same(got, expected)


def test_seed_inside_jit():
    def f(x):
        mx.random.seed(3)
        return mx.random.normal(x.shape) + x

    x = mx.zeros((3,))
    expected, key_after = _sequence(f, 0, 2, x)
    got, got_key = _sequence(ad.jit(f), 0, 2, x)
    assert_same(got, expected)
    assert_same(got_key, key_after)
    # a traced seed sets the program's key to key(seed)
    g = ad.jit(lambda s: (mx.random.seed(s), mx.random.uniform(shape=(2,)))[1])
    mx.random.seed(3)
    expected = mx.random.uniform(shape=(2,))
    assert_same(g(mx.array(3)), expected)


def test_seed_of_a_traced_value_outside_jit_raises():
    with pytest.raises(TransformError, match="seed"):
        ad.grad(lambda x: (R.seed(x.astype(mx.int32)), x)[1].sum())(mx.ones(()))


# ---------------------------------------------------------------------------------------------
# vmap


def test_vmap_over_keys_is_a_loop():
    keys = mx.random.split(mx.random.key(0), 4)
    for f in (
        lambda k: mx.random.normal((3,), key=k),
        lambda k: mx.random.bernoulli(0.3, (5,), key=k),
        lambda k: mx.random.permutation(6, key=k),
        lambda k: mx.random.split(k, 3),
        lambda k: mx.random.categorical(mx.zeros((2, 5)), key=k),
    ):
        loop = mx.stack([f(k) for k in keys])
        assert_same(ad.vmap(f)(keys), loop)
        assert_same(ad.jit(ad.vmap(f))(keys), loop)
    nested = mx.random.split(mx.random.key(1), 6).reshape(2, 3, 2)
    f = lambda k: R.uniform(shape=(2,), key=k)  # noqa: E731
    assert_same(
        ad.vmap(ad.vmap(f))(nested), mx.stack([mx.stack([f(k) for k in r]) for r in nested])
    )
    assert_same(ad.vmap(f, in_axes=1)(keys.T), mx.stack([f(k) for k in keys]))


def test_vmap_over_parameters_with_one_key():
    k = mx.random.key(2)
    p = mx.array([[0.1, 0.9, 0.5], [0.6, 0.2, 0.7]])
    f = lambda p: R.bernoulli(p, key=k)  # noqa: E731
    assert_same(ad.vmap(f)(p), mx.stack([f(q) for q in p]))
    g = lambda loc: R.normal((3,), loc=loc, key=k)  # noqa: E731
    assert_same(ad.vmap(g)(p), mx.stack([g(q) for q in p]))


def test_vmap_over_seeds():
    seeds = mx.array([0, 1, 2**31 - 1])
    f = lambda s: R.normal((2,), key=R.key(s))  # noqa: E731
    assert_same(
        ad.vmap(f)(seeds),
        mx.stack([mx.random.normal((2,), key=mx.random.key(int(s))) for s in seeds]),
    )


# ---------------------------------------------------------------------------------------------
# Derivatives


def test_derivatives_have_their_closed_forms():
    k = mx.random.key(5)
    loc, scale = mx.array([0.5, -1.0, 2.0]), mx.array([1.0, 2.0, 0.5])
    z = (R.normal((3,), loc=loc, scale=scale, key=k) - loc) / scale
    g_loc, g_scale = ad.grad(
        lambda m, s: R.normal((3,), loc=m, scale=s, key=k).sum(), argnums=(0, 1)
    )(loc, scale)
    np.testing.assert_allclose(_np(g_loc), 1.0)
    np.testing.assert_allclose(_np(g_scale), _np(z), rtol=1e-5)
    lo, hi = mx.array(-1.0), mx.array(3.0)
    u = (R.uniform(lo, hi, (4,), key=k) - lo) / (hi - lo)
    d_lo, d_hi = ad.grad(lambda a, b: R.uniform(a, b, (4,), key=k).sum(), argnums=(0, 1))(lo, hi)
    np.testing.assert_allclose(_np(d_hi), _np(u.sum()), rtol=1e-5)
    np.testing.assert_allclose(_np(d_lo), _np((1 - u).sum()), rtol=1e-5)
    m = mx.zeros((4,))
    jac = ad.jacrev(lambda m: R.multivariate_normal(m, COV, key=k))(m)
    np.testing.assert_allclose(_np(jac), np.eye(4), atol=1e-6)
    # keys, integers and booleans: zero derivative
    g = ad.grad(lambda x: (R.randint(0, 5, (3,), key=k) * x + R.bernoulli(0.5, key=k) * x).sum())
    np.testing.assert_array_equal(
        _np(g(mx.array(1.0))),
        _np((R.randint(0, 5, (3,), key=k) + R.bernoulli(0.5, key=k)).sum().astype(mx.float32)),
    )


def test_truncated_normal_bounds_derivative_matches_jax():
    jax = pytest.importorskip("jax")
    k = mx.random.key(8)
    u01 = _np(mx.random.uniform(shape=(5,), key=k)).astype(np.float64)

    def ours(a, b):
        return R.truncated_normal(a, b, (5,), key=k).sum()

    def reference(a, b):  # the same formula on the same uniforms, in float64
        sa, sb = jax.scipy.special.erf(a / np.sqrt(2)), jax.scipy.special.erf(b / np.sqrt(2))
        out = np.sqrt(2) * jax.scipy.special.erfinv((sb - sa) * u01 + sa)
        return jax.numpy.clip(out, a, b).sum()

    with jax.enable_x64():
        expected = jax.grad(reference, argnums=(0, 1))(-0.7, 1.3)
    got = ad.grad(ours, argnums=(0, 1))(mx.array(-0.7), mx.array(1.3))
    np.testing.assert_allclose([float(g) for g in got], [float(e) for e in expected], rtol=1e-3)


def test_mx_spelling_under_transforms():
    k = mx.random.key(0)
    f = lambda s: mx.random.normal((3,), scale=s, key=k).sum()  # noqa: E731
    np.testing.assert_allclose(
        _np(ad.grad(f)(mx.array(2.0))), _np(mx.random.normal((3,), key=k).sum()), rtol=1e-6
    )
    g = lambda low: mx.random.uniform(low, 1.0, (3,), key=k).sum()  # noqa: E731
    np.testing.assert_allclose(_np(ad.grad(g)(mx.array(0.0))), _np(mx.grad(g)(mx.array(0.0))))


# ---------------------------------------------------------------------------------------------
# Errors, as MLX words them


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: R.uniform(x, 1.0, (3,), mx.int32), "real floating point"),
        (lambda x: R.uniform(x, 1.0, (3,), mx.float64), "Unsupported type"),
        (lambda x: R.uniform(x, 1.0, (1,)), "Cannot generate random values of shape"),
        (lambda x: R.normal((3,), mx.int32, loc=x), "Only floating point and complex64"),
        (lambda x: R.randint(x, 5, (3,), mx.float32), "integer dtypes"),
        (lambda x: R.bernoulli(x.astype(mx.int32)), "must be a float type"),
        (lambda x: R.bernoulli(x, (1,)), "incompatible with argument `shape`"),
        (lambda x: R.categorical(x, shape=(3,), num_samples=2), "At most one"),
        (lambda x: R.categorical(x, axis=2), "Invalid axis"),
        (lambda x: R.truncated_normal(x, 1.0, dtype=mx.int32), "floating point dtypes"),
        (lambda x: R.multivariate_normal(x, COV[:3, :3], dtype=mx.float16), "must be float32"),
        (lambda x: R.multivariate_normal(x, COV), "compatible shapes"),
    ],
)
def test_errors_match_mlx(call, match):
    x = mx.zeros((3,))
    with pytest.raises((ValueError, RuntimeError, IndexError), match=match):
        call(x)  # MLX's own (RuntimeError or IndexError for some)
    with pytest.raises(ValueError, match=match):
        ad.jit(call)(x)  # ours, traced


def test_traced_covariance_needs_svd():
    if getattr(getattr(anp, "linalg", None), "svd", None) is not None:
        k = mx.random.key(0)
        f = lambda c: R.multivariate_normal(mx.zeros(4), c, key=k)  # noqa: E731
        assert_same(ad.jit(f)(COV), f(COV))
        return
    with pytest.raises(TransformError, match="SVD"):
        ad.jit(lambda c: R.multivariate_normal(mx.zeros(4), c, key=mx.random.key(0)))(COV)

"""Focused tests of the bitwise, bit-reinterpreting, comparison, shape, einsum and dtype
functions of autodiff.numpy (their table rows are in tests/rows/misc.py), of mixed precision,
and of code written with mlx.core's spelling tracing through them."""

import copy

import mlx.core as mx
import numpy as np
import pytest

import autodiff as ad
import autodiff.numpy as anp
from autodiff.interpret import interpret


def _same(got, expected):
    g, e = ad.tree_leaves(got), ad.tree_leaves(expected)
    assert len(g) == len(e)
    for a, b in zip(g, e):
        assert a.shape == b.shape and a.dtype == b.dtype, (a, b)
        a, b = (np.array(v.astype(mx.float32) if v.dtype == mx.bfloat16 else v) for v in (a, b))
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# operators


_OPERATORS = {
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
    "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b,
    "~": lambda a, b: ~a,
    "& int": lambda a, b: a & 5,
    "int |": lambda a, b: 5 | a,  # mx.array has no __ror__: the oracle is mx.bitwise_or(5, a)
    ">> int": lambda a, b: a >> 1,
    "int <<": lambda a, b: 1 << b,
}
_EAGER = {"int |": lambda a, b: mx.bitwise_or(5, a), "int <<": lambda a, b: mx.left_shift(1, b)}
_DTYPES = [mx.bool_, mx.int8, mx.uint8, mx.int16, mx.uint16, mx.int32, mx.uint32, mx.int64]


@pytest.mark.parametrize("op", _OPERATORS)
@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_bitwise_operators_on_tracers_are_mlx_operators(op, dtype):
    f = _OPERATORS[op]
    a = mx.array([3, 0, -5, 7, 1]).astype(dtype)
    b = mx.array([1, 1, 2, 0, 3]).astype(dtype)
    try:
        expected = _EAGER.get(op, f)(a, b)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            ad.jit(f)(a, b)
        return
    _same(ad.jit(f)(a, b), expected)
    _same(ad.vmap(f)(a, b), expected)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32])
@pytest.mark.parametrize("op", ["&", "|", "^", "<<", ">>", "~"])
def test_bitwise_operators_reject_floats_as_mlx_does(dtype, op):
    f, x = _OPERATORS[op], mx.array([1.0, 2.0]).astype(dtype)
    with pytest.raises(ValueError):
        f(x, x)
    with pytest.raises(TypeError, match="integer"):
        ad.jit(f)(x, x)


def test_mixed_operands_promote_as_in_mlx():
    i8, i32, b = mx.array([3, -4], mx.int8), mx.array([5, 6]), mx.array([True, False])
    for f in (
        lambda x, y, z: x & y,
        lambda x, y, z: z | y,
        lambda x, y, z: x ^ z,
        lambda x, y, z: mx.array([1, 2]) << x,  # a concrete array on the left
        lambda x, y, z: (x << 2, z << 1),
    ):
        _same(ad.jit(f)(i8, i32, b), f(i8, i32, b))


def test_in_place_operators_rebind_traced_values():
    def f(x):
        x += 1.0
        x *= x
        return x

    _same(ad.jit(f)(mx.array([1.0, 2.0])), f(mx.array([1.0, 2.0])))
    assert float(ad.grad(lambda x: f(x).sum())(mx.array(1.0))) == 4.0


def test_tracers_copy_to_new_objects_of_the_same_value_and_name_their_namespace():
    def f(x):
        # a copy is a new object (an in-place update of it leaves x alone, as in MLX) for the
        # same traced value: copying neither copies the trace nor records an operation
        c, d = copy.copy(x), copy.deepcopy({"x": x})["x"]
        assert c is not x and d is not x and c.ir_var is x.ir_var is d.ir_var
        assert x.__array_namespace__() is anp
        return x.mT * 2.0

    _same(ad.jit(f)(mx.ones((2, 3))), mx.ones((3, 2)) * 2.0)


# ---------------------------------------------------------------------------------------------
# view and fp8


_VIEW_DTYPES = [
    mx.bool_,
    mx.uint8,
    mx.int8,
    mx.int16,
    mx.uint16,
    mx.float16,
    mx.bfloat16,
    mx.int32,
    mx.uint32,
    mx.float32,
    mx.int64,
    mx.float64,
]


@pytest.mark.parametrize("src", _VIEW_DTYPES, ids=str)
def test_view_matches_mlx_bit_for_bit_in_the_interpreter_too(src):
    rng = np.random.default_rng(0)
    x = mx.array(rng.uniform(-3, 3, (2, 8)).astype(np.float32)).astype(src)
    for dst in _VIEW_DTYPES:
        expected = mx.view(x, dst)
        if dst == mx.bool_ or (src == mx.bool_ and dst.size > 1):
            continue  # bytes other than 0 and 1 are not valid booleans
        f = lambda x: anp.view(x, dst)
        _same(ad.jit(f)(x), expected)
        closed = ad.make_jaxpr(f)(x)
        (got,) = interpret(closed, x)
        want = np.array(expected.astype(mx.float32) if dst == mx.bfloat16 else expected)
        np.testing.assert_array_equal(got.astype(want.dtype), want)


def test_view_has_a_zero_derivative_and_checks_shapes():
    f = lambda x: anp.sum(anp.view(x, mx.int32).astype(mx.float32) + x)
    assert np.array(ad.grad(f)(mx.array([1.0, 2.0]))).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="scalar"):
        ad.jit(lambda x: anp.view(x, mx.float16))(mx.array(1.0))
    with pytest.raises(ValueError, match="multiple"):
        ad.jit(lambda x: anp.view(x, mx.float64))(mx.ones(3))


def test_fp8_codecs_match_mlx_exhaustively():
    bits = mx.arange(2**16).astype(mx.uint16)
    rng = np.random.default_rng(0)
    f32 = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    grid = np.array(mx.from_fp8(mx.arange(256).astype(mx.uint8), mx.float32))
    grid = np.sort(grid[np.isfinite(grid)])
    mids = ((grid[1:] + grid[:-1]) / 2).astype(np.float32)  # ties round to even
    for x in (
        bits.view(mx.float16),
        bits.view(mx.bfloat16),
        mx.array(np.concatenate([f32, mids, -mids, np.nextafter(mids, np.float32(0))])),
    ):
        expected = mx.to_fp8(x)
        _same(ad.jit(anp.to_fp8)(x), expected)
        with np.errstate(invalid="ignore"):  # widening signalling NaNs
            (got,) = interpret(ad.make_jaxpr(anp.to_fp8)(x), x)
        np.testing.assert_array_equal(got, np.array(expected))
    codes = mx.arange(256).astype(mx.uint8)
    for dtype in (mx.float16, mx.bfloat16, mx.float32):
        f = lambda c: anp.from_fp8(c, dtype)
        _same(ad.jit(f)(codes), f(codes))
        (got,) = interpret(ad.make_jaxpr(f)(codes), codes)
        np.testing.assert_array_equal(got, np.array(f(codes).astype(mx.float32)))


def test_fp8_refuses_float64_which_mlx_gets_wrong():
    with pytest.raises(TypeError, match="float64"):
        ad.jit(anp.to_fp8)(mx.ones(2, mx.float64))
    with pytest.raises(TypeError, match="float64"):
        ad.jit(lambda c: anp.from_fp8(c, mx.float64))(mx.ones(2, mx.uint8))


def test_fp8_weights_in_a_traced_parameter_tree():
    # frozen fp8 weights (uint8 codes) next to trained float weights, as in QLoRA-style training
    w8 = mx.to_fp8(mx.array([[0.5, -1.0], [2.0, 0.25]]))
    lora = mx.array([[0.1, 0.0], [0.0, 0.1]])

    def loss(params, x):
        w = mx.from_fp8(params["w8"], mx.float32) + params["lora"]
        return mx.sum((x @ w) ** 2)

    params, x = {"w8": w8, "lora": lora}, mx.array([[1.0, 2.0]])
    g = ad.grad(loss, allow_int=True)(params, x)
    expected = mx.grad(lambda lo: loss({"w8": w8, "lora": lo}, x))(lora)
    np.testing.assert_allclose(np.array(g["lora"]), np.array(expected), rtol=1e-6)
    assert g["w8"].dtype == mx.uint8 and not np.array(g["w8"]).any()


# ---------------------------------------------------------------------------------------------
# einsum


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("ij,jk", [(2, 3), (3, 4)]),
        ("ii", [(3, 3)]),
        ("iij->ji", [(3, 3, 2)]),
        ("ijij->ij", [(2, 3, 2, 3)]),
        ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]),
        ("i...,i...", [(2, 3, 4), (2, 4)]),
        ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 5), (5, 2)]),
        ("ij,kj->ik", [(2, 1), (4, 3)]),
        ("bij,bjk->bik", [(2, 3, 4), (1, 4, 5)]),
        ("Ab,bA->A", [(2, 3), (3, 2)]),
        ("ii,i->i", [(3, 3), (3,)]),
        (",->", [(), ()]),
        ("ijk,ikl,jl->k", [(2, 3, 4), (2, 4, 5), (3, 5)]),
    ],
)
def test_einsum_matches_mlx_values_and_gradients(subscripts, shapes):
    rng = np.random.default_rng(0)
    ops = [mx.array(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    f = lambda *a: anp.einsum(subscripts, *a)
    expected = mx.einsum(subscripts, *ops)
    got = ad.jit(f)(*ops)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-5, atol=1e-5)
    nums = tuple(range(len(ops)))
    loss = lambda *a: mx.sum(mx.einsum(subscripts, *a) ** 2)  # mlx.core's spelling
    ours, theirs = ad.grad(loss, argnums=nums)(*ops), mx.grad(loss, argnums=list(nums))(*ops)
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "subscripts, shapes, message",
    [
        ("ij,jk", [(2, 3)], "Number of operands"),
        ("i1", [(2, 3)], "must be letters"),
        ("...i...", [(2, 3)], "one ellipsis"),
        ("ij->ii", [(2, 3)], "Repeat indices"),
        ("ijk", [(2, 3)], "Invalid number of subscripts"),
        ("ii", [(2, 3)], "repeated subscripts"),
        ("ij,ij", [(2, 3), (3, 3)], "Cannot broadcast"),
        ("ij->k", [(2, 3)], "does not appear"),
        ("ij...", [(2,)], "insufficient dimensions"),
    ],
)
def test_einsum_errors(subscripts, shapes, message):
    ops = [mx.ones(s) for s in shapes]
    with pytest.raises(ValueError, match=message):
        ad.jit(lambda *a: anp.einsum(subscripts, *a))(*ops)


def test_einsum_derivatives_to_second_order_against_jax():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 4))

    def loss(m, a, b):
        return m.sum(m.einsum("ii,ij,jk->ik", a, a, b) ** 2)

    ours = ad.hessian(lambda a: loss(anp, a, mx.array(b, mx.float32)))(mx.array(a, mx.float32))
    theirs = jax.hessian(lambda a: loss(jnp, a, jnp.asarray(b)))(jnp.asarray(a))
    np.testing.assert_allclose(np.array(ours), np.asarray(theirs), rtol=2e-4, atol=2e-3)


# ---------------------------------------------------------------------------------------------
# mlx.core's spelling, routed while tracing


def test_mlx_spelling_traces_through_the_new_functions():
    # values away from the jumps of trunc, divmod by 0.75 and fp8 rounding
    x, i = mx.array([[0.6, -1.3], [1.7, 0.35]]), mx.array([[3, 1], [0, 2]])

    def f(x):
        y = mx.einsum("ij,jk->ik", x, x) + mx.kron(x, mx.ones((1, 1)))
        y = y + mx.nan_to_num(mx.log(x)) + mx.trunc(x) + mx.degrees(mx.radians(x))
        q, r = mx.divmod(x, 0.75)
        y = y + r + mx.unflatten(mx.flatten(x), 0, (2, 2)) + mx.matrix_transpose(x)
        y = y + mx.diff(mx.concat([x, x], axis=1), axis=1)[:, :2] + mx.permute_dims(x, (1, 0))
        y = y + mx.vecdot(x, x)[:, None] + mx.atleast_3d(x)[..., 0] + mx.meshgrid(x[0], x[1])[0]
        y = y + mx.stack(mx.unstack(x)) * mx.isclose(x, x).astype(x.dtype)
        y = y + mx.acos(mx.tanh(x)) + mx.pow(mx.abs(x) + 1, 1.5) + mx.positive(x)
        y = y + mx.from_fp8(mx.to_fp8(x), mx.float32) + mx.view(mx.view(i, x.dtype), i.dtype)
        y = y + mx.bitwise_and(i, 2).astype(x.dtype) + (i << 1).astype(mx.result_type(x, i))
        y = y + mx.depends(x, q) * mx.can_cast(x, mx.float32)
        return mx.sum(mx.broadcast_arrays(y, x)[0])

    ours = ad.grad(f)(x)
    np.testing.assert_allclose(np.array(ad.jit(f)(x)), np.array(f(x)), rtol=1e-5)
    eps = 1e-3
    for k in range(4):
        d = mx.zeros(4).at[k].add(eps).reshape(2, 2)
        fd = (f(x + d) - f(x - d)) / (2 * eps)
        np.testing.assert_allclose(float(ours.reshape(-1)[k]), float(fd), rtol=2e-2, atol=2e-2)


def test_dtype_functions_take_traced_values():
    def f(x, i):
        assert mx.result_type(x, i) == mx.float16 == anp.result_type(x, mx.int32)
        assert mx.can_cast(i, mx.int64) and not anp.can_cast(x, mx.int8)
        assert mx.issubdtype(x.dtype, mx.floating) and anp.isdtype(i.dtype, "integral")
        assert anp.finfo(x.dtype).max == 65504
        return x * 2

    ad.jit(f)(mx.ones(2, mx.float16), mx.ones(2, mx.int32))
    assert anp.finfo is mx.finfo and anp.iinfo is mx.iinfo and anp.empty is mx.zeros
    assert anp.hanning is mx.hanning and anp.broadcast_shapes is mx.broadcast_shapes


# ---------------------------------------------------------------------------------------------
# dtypes: promotion, mixed precision, integers


def test_signed_with_uint64_promotes_to_float32_as_in_mlx():
    a, b = mx.array([1, 2], mx.int32), mx.array([3, 4], mx.uint64)
    _same(ad.jit(lambda a, b: a + b)(a, b), a + b)
    assert (a + b).dtype == mx.float32


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_low_precision_gradients_keep_their_dtype_and_match_mlx(dtype):
    params = {"w": mx.array([[0.5, -1.0], [0.25, 2.0]], dtype), "b": mx.array([0.1, -0.2], dtype)}
    x = mx.array([[1.0, 2.0], [-1.0, 0.5]], dtype)

    def loss(p):
        h = mx.tanh(x @ p["w"] + p["b"])
        return mx.mean(mx.logsumexp(h, axis=-1) - mx.softmax(h, axis=-1)[:, 0])

    ours, theirs = ad.grad(loss)(params), mx.grad(loss)(params)
    for k in params:
        assert ours[k].dtype == dtype
        np.testing.assert_allclose(
            np.array(ours[k].astype(mx.float32)),
            np.array(theirs[k].astype(mx.float32)),
            rtol=3e-2,
            atol=3e-2,
        )


def test_mixed_precision_training_step():
    # bfloat16 weights, float32 master copy and loss scaling: the gradient comes back in
    # bfloat16 and matches mx.grad's
    w32 = mx.array([[0.3, -0.7], [1.1, 0.2]])
    x, y = mx.array([[1.0, -2.0], [0.5, 0.5]]), mx.array([[0.0, 1.0], [1.0, 0.0]])

    def loss(w16):
        logits = (x.astype(mx.bfloat16) @ w16).astype(mx.float32)
        return mx.mean(mx.logsumexp(logits, axis=-1) - mx.sum(logits * y, axis=-1)) * 128.0

    w16 = w32.astype(mx.bfloat16)
    ours, theirs = ad.grad(loss)(w16), mx.grad(loss)(w16)
    assert ours.dtype == mx.bfloat16
    np.testing.assert_allclose(
        np.array(ours.astype(mx.float32)), np.array(theirs.astype(mx.float32)), rtol=2e-2
    )


# ---------------------------------------------------------------------------------------------
# documented differences from MLX


def test_divmod_remainder_has_the_derivative_of_remainder():
    f = lambda x: anp.divmod(x, 2.0)[1]
    assert float(ad.grad(f)(mx.array(5.5))) == 1.0
    assert float(mx.grad(f)(mx.array(5.5))) == 0.0  # MLX's DivMod has a zero VJP
    assert float(ad.jvp(f, (mx.array(5.5),), (mx.array(1.0),))[1]) == 1.0


def test_depends_is_the_identity_with_a_jvp():
    f = lambda x: anp.depends(x * 2.0, x * x)
    assert float(ad.jvp(f, (mx.array(1.0),), (mx.array(1.0),))[1]) == 2.0
    with pytest.raises(ValueError, match="Depends"):
        mx.jvp(f, [mx.array(1.0)], [mx.array(1.0)])
    assert float(ad.grad(f)(mx.array(3.0))) == float(mx.grad(f)(mx.array(3.0))) == 2.0


def test_nan_to_num_refuses_float64_as_mlx_does():
    with pytest.raises(ValueError, match="float64"):
        mx.nan_to_num(mx.ones(2, mx.float64))
    with pytest.raises(ValueError, match="float64"):
        ad.jit(anp.nan_to_num)(mx.ones(2, mx.float64))


def test_float16_mean_and_var_of_more_elements_than_float16_holds():
    # n = 70000 is inf in float16: the mean multiplies by 1/n, as MLX does
    x = (mx.random.normal((70000,)) * 0.5 + 0.1).astype(mx.float16)
    for f in (anp.mean, anp.var, anp.std, lambda x: anp.var(x, ddof=1)):
        _same(ad.jit(f)(x), f(x))
    g = ad.grad(lambda x: anp.mean(x).astype(mx.float32))(x)
    _same(g, mx.grad(lambda x: mx.mean(x).astype(mx.float32))(x))
    _same(ad.jit(anp.mean)(mx.zeros((0,))), mx.mean(mx.zeros((0,))))  # nan, as MLX


def test_logsumexp_and_softmax_of_integers_are_float32_where_mlx_errs():
    u8, i = mx.array([[3, 1], [5, 2]], mx.uint8), mx.array([[3, -1], [5, 2]])
    assert float(mx.logsumexp(u8)) == float("inf")  # MLX's (wrong)
    expected = np.log(np.exp([3.0, 1.0, 5.0, 2.0]).sum())
    np.testing.assert_allclose(float(ad.jit(anp.logsumexp)(u8)), expected, rtol=1e-6)
    assert mx.softmax(i).dtype == mx.int32  # MLX's, all zeros
    np.testing.assert_allclose(
        np.array(ad.jit(anp.softmax)(i)), np.array(mx.softmax(i.astype(mx.float32))), rtol=1e-6
    )

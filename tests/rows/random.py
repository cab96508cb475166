"""Rows for autodiff/ops/random.py and anp.random: every function of mx.random with an
explicit key, which is an argument of the row (so vmap batches keys: one draw per key, against
a loop), differentiated in its float parameters (normal w.r.t. loc and scale, uniform and
truncated_normal w.r.t. their bounds, laplace w.r.t. loc and scale, multivariate_normal
w.r.t. mean). With the same key the draws are MLX's; the interpreter draws with MLX too and
computes the rest in float64."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import BF16, F16, S1, S2, A, Row, arrays_s

import autodiff.numpy as anp

R = anp.random
F32 = mx.float32


def K(shape=None):
    """A PRNG key argument (the row's drawn shape does not apply)."""
    return lambda _shape: st.integers(0, 2**32 - 1).map(mx.random.key)


def SEED(shape=None):
    return lambda _shape: arrays_s((), dtype=mx.int32, low=0, high=10_000)


_COV = mx.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]])
SCALAR = st.just(())

ROWS = [
    Row(
        "random_normal",
        lambda k, loc, scale: R.normal(loc.shape, loc=loc, scale=scale, key=k),
        (K(), A(), A(0.5, 2.0)),
        diff=(1, 2),
    ),
    Row(
        "random_normal_scalars",
        lambda k, x: R.normal((2,) + x.shape, loc=0.5, scale=2.0, key=k) * x,
        (K(), A()),
        diff=(1,),
    ),
    Row(
        "random_normal_f16",
        lambda k, loc: R.normal(loc.shape, mx.float16, loc=loc, key=k),
        (K(), A()),
        diff=(1,),
        **F16,
    ),
    Row(
        "random_normal_complex",
        lambda k, x: (
            anp.real(R.normal(x.shape, mx.complex64, scale=x, key=k))
            + anp.imag(R.normal(x.shape, mx.complex64, loc=x, key=k)) * x
        ),
        (K(), A()),
        diff=(1,),
    ),
    Row(
        "random_uniform",
        lambda k, low, high: R.uniform(low, high, low.shape, key=k),
        (K(), A(-3.0, -1.0), A(1.0, 3.0)),
        diff=(1, 2),
    ),
    Row(
        "random_uniform_bf16",
        lambda k, low: R.uniform(low, 2.0, (3,) + low.shape, mx.bfloat16, key=k),
        (K(), A(-3.0, 1.0)),
        diff=(1,),
        **BF16,
    ),
    Row(
        "random_truncated_normal",
        lambda k, lower, upper: R.truncated_normal(lower, upper, key=k),
        (K(), A(-2.0, -0.3), A(0.3, 2.0)),
        diff=(1, 2),
    ),
    Row(
        "random_laplace",
        lambda k, loc, scale: R.laplace((3, 2), loc=loc, scale=scale, key=k),
        (K(), A(), A(0.5, 2.0)),
        shapes=SCALAR,
        diff=(1, 2),
        mx_grad=False,  # MLX takes loc and scale as Python floats: no derivative
        mx_vmap=False,  # nor batched ones
    ),
    Row(
        "random_gumbel",
        lambda k, x: R.gumbel(x.shape, key=k) * x,
        (K(), A()),
        diff=(1,),
    ),
    Row(
        "random_gumbel_f16",
        lambda k, x: R.gumbel(x.shape, mx.float16, key=k) * x.astype(mx.float16),
        (K(), A()),
        diff=(1,),
        **F16,
    ),
    Row(
        "random_bernoulli",
        lambda k, p, x: anp.where(R.bernoulli(p, key=k), x, -2.0 * x),
        (K(), A(0.05, 0.95), A()),
        diff=(2,),
    ),
    Row(
        "random_bernoulli_shape",
        lambda k, x: (
            R.bernoulli(0.4, (2,) + x.shape, key=k) * x
            + R.bernoulli(x * 0.1 + 0.5, (2,) + x.shape, key=k)
        ),
        (K(), A(-3.0, 3.0)),
        diff=(1,),
    ),
    Row(
        "random_randint",
        lambda k, low: (
            R.randint(low, low + 6, (2,) + low.shape, key=k).astype(F32)
            + R.randint(-5, 5, (3,), mx.int16, key=k).astype(F32)[0]
        ),
        (K(), A(-3, 3, dtype=mx.int32)),
        diff=None,
    ),
    Row(
        "random_categorical",
        lambda k, x: (
            R.categorical(x, key=k).astype(F32),
            R.categorical(x, axis=0, key=k).astype(F32),
            R.categorical(x, num_samples=3, key=k).astype(F32),
            R.categorical(x, shape=(2,) + x.shape[:-1], key=k).astype(F32),
        ),
        (K(), A()),
        shapes=S2,
        diff=None,
        mx_vmap=False,  # MLX's searchsorted (one logits row: the inverse CDF) cannot vmap
    ),
    Row(
        "random_categorical_inverse_cdf",
        lambda k, x: (
            R.categorical(x, num_samples=4, key=k).astype(F32),
            R.categorical(x, shape=(2, 3), key=k).astype(F32),
        ),
        (K(), A()),
        shapes=st.tuples(st.integers(1, 5)),
        diff=None,
        mx_vmap=False,  # "[searchsorted] Cannot vmap over the sorted sequence"
    ),
    Row(
        "random_permutation",
        lambda k, x: (
            R.permutation(x, key=k),
            R.permutation(x, axis=-1, key=k) * 2.0,
            R.permutation(x.shape[0] + 2, key=k).astype(F32),
        ),
        (K(), A()),
        shapes=S1,
        diff=(1,),
    ),
    Row(
        "random_split",
        lambda k, x: (
            R.normal(x.shape, key=R.split(k, 3)[2]) * x
            + R.uniform(shape=x.shape, key=R.split(R.split(k)[0])[1])
        ),
        (K(), A()),
        diff=(1,),
    ),
    Row(
        "random_key",
        lambda s, x: R.uniform(shape=x.shape, key=R.key(s)) * x,
        (SEED(), A()),
        diff=(1,),
        mx_vmap=False,  # mx.random.key takes a Python int
    ),
    Row(
        "random_multivariate_normal",
        lambda k, mean: R.multivariate_normal(mean, _COV, (2,) + mean.shape[:-1], key=k),
        (K(), A()),
        shapes=st.tuples(st.integers(1, 2), st.just(3)),
        diff=(1,),
    ),
]

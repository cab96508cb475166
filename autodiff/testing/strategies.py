"""Hypothesis strategies for autodiff tests: shapes, arrays with domain control, and random
programs built from ``autodiff.numpy`` ops.

Example:
    >>> from hypothesis import given
    >>> from autodiff.testing import strategies as st_ad
    >>> @given(st_ad.arrays(shape=(3,), low=-2, high=2))
    ... def test_tanh_grad(x):
    ...     check_grads(lambda x: anp.sum(anp.tanh(x)), (x,))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mlx.core as mx
import numpy as np
from hypothesis import strategies as st

import autodiff.numpy as anp


def shapes(
    min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy:
    """Array shapes (tuples of ints)."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(
        tuple
    )


def arrays(
    shape: Sequence[int] | st.SearchStrategy | None = None,
    dtype=mx.float32,
    low: float = -3.0,
    high: float = 3.0,
    away_from: Sequence[float] = (),
    margin: float = 0.05,
    salt: int = 0,
) -> st.SearchStrategy:
    """mx.arrays with values in ``[low, high]``.

    Args:
        shape: a shape, a strategy of shapes, or None for :func:`shapes`'s default.
        dtype: an mx dtype; integer dtypes draw integers in the range; ``mx.complex64`` draws
            real and imaginary parts in the range.
        low, high: the domain.
        away_from: points (kinks, poles; complex numbers for complex dtypes) to keep at least
            ``margin`` away from, so finite differences do not straddle them.
        salt: mixed into the random seed, so that two strategies with different salts do
            not draw equal arrays from equal seeds (hypothesis shrinks seeds towards 0).
    """
    shape_st = (
        shapes()
        if shape is None
        else shape
        if isinstance(shape, st.SearchStrategy)
        else st.just(tuple(shape))
    )
    is_int = dtype in (mx.int32, mx.int64, mx.uint32, mx.int8, mx.int16, mx.uint8)

    def build(shape_and_seed):
        shape, seed = shape_and_seed
        rng = np.random.default_rng([seed, salt])
        if is_int:
            return mx.array(
                rng.integers(int(low), int(high) + 1, size=shape).astype(np.int32)
            ).astype(dtype)
        if dtype == mx.complex64:
            x = rng.uniform(low, high, size=shape) + 1j * rng.uniform(low, high, size=shape)
            for p in away_from:  # push points near p radially out to distance margin
                d = x - p
                r = np.abs(d)
                unit = np.where(r > 0, d / np.where(r > 0, r, 1), 1)
                x = np.where(r < margin, p + margin * unit, x)
            return mx.array(x.astype(np.complex64))
        x = rng.uniform(low, high, size=shape)
        for p in away_from:
            near = np.abs(x - p) < margin
            x = np.where(near, p + np.where(x >= p, margin, -margin), x)
        return mx.array(x.astype(np.float32)).astype(dtype)

    return st.tuples(shape_st, st.integers(0, 2**32 - 1)).map(build)


# ---------------------------------------------------------------------------------------------
# Random programs
#
# Each op is written once as a function of a namespace ``m`` (``autodiff.numpy``, or
# :data:`jax_namespace` for the differential tests against JAX) and its operands.

_SMOOTH_UNARY: list[tuple[str, Callable]] = [
    ("sin", lambda m, x: m.sin(x)),
    ("cos", lambda m, x: m.cos(x)),
    ("tanh", lambda m, x: m.tanh(x)),
    ("sigmoid", lambda m, x: m.sigmoid(x)),
    ("exp_tanh", lambda m, x: m.exp(m.tanh(x))),
    ("square", lambda m, x: m.square(x)),
    ("softplus", lambda m, x: m.softplus(x)),
    ("arctan", lambda m, x: m.arctan(x)),
    ("log1p_sq", lambda m, x: m.log1p(m.square(x))),
    ("neg", lambda m, x: m.negative(x)),
    ("sqrt_1p_sq", lambda m, x: m.sqrt(1.0 + x * x)),
    ("erf", lambda m, x: m.erf(x)),
    # x ** tanh(x): the exponent is exactly 0 where x is
    ("pow_var", lambda m, x: m.power(1.5 + 0.3 * x, m.tanh(0.7 * x))),
    ("ones_like_scalar", lambda m, x: m.ones_like(m.sum(x)) * 2.0 * x),
    ("zeros_like_scalar", lambda m, x: x + m.zeros_like(m.sum(x))),
]
_SMOOTH_BINARY: list[tuple[str, Callable]] = [
    ("add", lambda m, a, b: m.add(a, b)),
    ("sub", lambda m, a, b: m.subtract(a, b)),
    ("mul", lambda m, a, b: m.multiply(a, b)),
    ("div_1p_sq", lambda m, a, b: a / (1.0 + b * b)),
    ("hypot", lambda m, a, b: m.sqrt(a * a + b * b + 1.0)),
    ("where", lambda m, a, b: m.where(a > b, a * b, a - b)),
    ("pow_var2", lambda m, a, b: m.power(1.2 + m.tanh(a), m.tanh(b))),
]
_STRUCT: list[tuple[str, Callable]] = [
    (
        "sum_keep",
        lambda m, x: m.broadcast_to(m.sum(x, axis=-1, keepdims=True), x.shape) if x.ndim else x,
    ),
    ("cumsum", lambda m, x: m.cumsum(x, axis=-1) if x.ndim else x),
    ("flip", lambda m, x: x[..., ::-1] if x.ndim else x),
    ("softmax", lambda m, x: m.softmax(x, axis=-1) if x.ndim else x),
    ("roll_concat", lambda m, x: m.concatenate([x[..., 1:], x[..., :1]], axis=-1) if x.ndim else x),
    ("transpose_back", lambda m, x: m.transpose(m.transpose(x) * 1.5)),
]
# Not differentiable everywhere: checked against JAX's conventions, not finite differences.
_KINKS: list[tuple[str, Callable]] = [
    ("abs", lambda m, x: m.abs(x)),
    ("relu", lambda m, x: m.maximum(x, 0.0)),
    ("clip", lambda m, x: m.clip(x, -0.5, 0.5)),
    (
        "max_reduce",
        lambda m, x: m.broadcast_to(m.max(x, axis=-1, keepdims=True), x.shape) if x.ndim else x,
    ),
    ("round_mix", lambda m, x: m.round(x * 2.0) * 0.25 + x),
]
_KINK_BINARY: list[tuple[str, Callable]] = [
    ("maximum", lambda m, a, b: m.maximum(a, b)),
    ("minimum", lambda m, a, b: m.minimum(a, b)),
    ("pow_var_zero_base", lambda m, a, b: m.power(m.abs(a) + 1.0, m.round(b))),
]


class Program:
    """A random straight-line program over one array input; printable for failing examples.

    ``prog(x)`` runs it with ``autodiff.numpy``; ``prog.with_namespace(m)`` with another
    NumPy-like namespace (JAX's, for differential tests).
    """

    def __init__(self, steps):
        self.steps = steps  # (kind, name, fn, operand indices)

    def with_namespace(self, m):
        def run(x):
            vals = [x]
            for _, _, fn, idx in self.steps:
                vals.append(fn(m, *[vals[i] for i in idx]))
            return m.sum(vals[-1] * vals[-1]) + m.sum(vals[-1])

        return run

    def __call__(self, x):
        return self.with_namespace(anp)(x)

    def __repr__(self):
        return (
            "Program("
            + "; ".join(
                f"v{i + 1} = {n}({', '.join(f'v{j}' for j in idx)})"
                for i, (_, n, _, idx) in enumerate(self.steps)
            )
            + ")"
        )


@st.composite
def programs(draw, max_steps: int = 6, min_steps: int = 1, kinks: bool = False) -> Program:
    """Random scalar-valued programs of one array, composed from ``autodiff.numpy`` ops.

    With ``kinks=False`` every op is smooth (finite differences apply); ``kinks=True`` adds
    abs, max/min with ties, clip, rounding and powers with integer exponents, whose
    derivatives at the kinks follow JAX's conventions.
    """
    n = draw(st.integers(min_steps, max_steps))
    kinds = ["unary", "binary", "struct"] + (["kink", "kink_binary"] if kinks else [])
    pools = {
        "unary": _SMOOTH_UNARY,
        "binary": _SMOOTH_BINARY,
        "struct": _STRUCT,
        "kink": _KINKS,
        "kink_binary": _KINK_BINARY,
    }
    steps = []
    for i in range(n):
        kind = draw(st.sampled_from(kinds))
        name, fn = draw(st.sampled_from(pools[kind]))
        arity = 2 if kind.endswith("binary") else 1
        idx = tuple(draw(st.integers(0, i)) for _ in range(arity))
        steps.append((kind, name, fn, idx))
    return Program(steps)


def special_arrays(shape, low: float = -1.5, high: float = 1.5) -> st.SearchStrategy:
    """Float32 arrays in ``[low, high]`` where some elements are exactly 0 and some repeat
    others (ties): the inputs that find wrong guards and tie-breaking in derivative rules."""

    def build(seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(low, high, size=shape)
        if x.size:
            flat = x.reshape(-1)
            flat[rng.random(flat.size) < 0.3] = 0.0
            ties = rng.random(flat.size) < 0.3
            flat[ties] = flat[rng.integers(0, flat.size, ties.sum())]
        return mx.array(x.astype(np.float32))

    return st.integers(0, 2**32 - 1).map(build)


class _JaxNamespace:
    """``jax.numpy`` with the few functions ``autodiff.numpy`` takes from elsewhere
    (``softplus``, ``softmax``, ``sigmoid``), for differential tests against JAX."""

    def __getattr__(self, name):
        import jax
        import jax.numpy as jnp

        extra = {
            "softplus": jax.nn.softplus,
            "softmax": jax.nn.softmax,
            "sigmoid": jax.nn.sigmoid,
            "erf": jax.scipy.special.erf,
            "logsumexp": jax.scipy.special.logsumexp,
        }
        return extra[name] if name in extra else getattr(jnp, name)


jax_namespace = _JaxNamespace()

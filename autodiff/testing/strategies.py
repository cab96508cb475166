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
        dtype: an mx dtype; integer dtypes draw integers in the range.
        low, high: the domain.
        away_from: points (kinks, poles) to keep at least ``margin`` away from, so finite
            differences do not straddle them.
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
        x = rng.uniform(low, high, size=shape)
        for p in away_from:
            near = np.abs(x - p) < margin
            x = np.where(near, p + np.where(x >= p, margin, -margin), x)
        return mx.array(x.astype(np.float32)).astype(dtype)

    return st.tuples(shape_st, st.integers(0, 2**32 - 1)).map(build)


# ---------------------------------------------------------------------------------------------
# Random programs

_UNARY: list[tuple[str, Callable]] = [
    ("sin", anp.sin),
    ("cos", anp.cos),
    ("tanh", anp.tanh),
    ("sigmoid", anp.sigmoid),
    ("exp_tanh", lambda x: anp.exp(anp.tanh(x))),
    ("square", anp.square),
    ("softplus", anp.softplus),
    ("arctan", anp.arctan),
    ("log1p_sq", lambda x: anp.log1p(anp.square(x))),
    ("neg", anp.negative),
    ("sqrt_1p_sq", lambda x: anp.sqrt(1.0 + x * x)),
    ("erf", anp.erf),
]
_BINARY: list[tuple[str, Callable]] = [
    ("add", anp.add),
    ("sub", anp.subtract),
    ("mul", anp.multiply),
    ("div_1p_sq", lambda a, b: a / (1.0 + b * b)),
    ("hypot", lambda a, b: anp.sqrt(a * a + b * b + 1.0)),
    ("where", lambda a, b: anp.where(a > b, a * b, a - b)),
]
_STRUCT: list[tuple[str, Callable]] = [
    (
        "sum_keep",
        lambda x: anp.broadcast_to(anp.sum(x, axis=-1, keepdims=True), x.shape) if x.ndim else x,
    ),
    ("cumsum", lambda x: anp.cumsum(x, axis=-1) if x.ndim else x),
    ("flip", lambda x: x[..., ::-1] if x.ndim else x),
    ("softmax", lambda x: anp.softmax(x, axis=-1) if x.ndim else x),
    ("roll_concat", lambda x: anp.concatenate([x[..., 1:], x[..., :1]], axis=-1) if x.ndim else x),
    ("transpose_back", lambda x: anp.transpose(anp.transpose(x) * 1.5)),
]


class Program:
    """A random straight-line program over one array input; printable for failing examples."""

    def __init__(self, steps):
        self.steps = steps  # (kind, name, fn, operand indices)

    def __call__(self, x):
        vals = [x]
        for _, _, fn, idx in self.steps:
            vals.append(fn(*[vals[i] for i in idx]))
        return anp.sum(vals[-1] * vals[-1]) + anp.sum(vals[-1])

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
def programs(draw, max_steps: int = 6) -> Program:
    """Random scalar-valued programs of one array, composed from smooth primitives."""
    n = draw(st.integers(1, max_steps))
    steps = []
    for i in range(n):
        kind = draw(st.sampled_from(["unary", "binary", "struct"]))
        pool = {"unary": _UNARY, "binary": _BINARY, "struct": _STRUCT}[kind]
        name, fn = draw(st.sampled_from(pool))
        arity = 2 if kind == "binary" else 1
        idx = tuple(draw(st.integers(0, i)) for _ in range(arity))
        steps.append((kind, name, fn, idx))
    return Program(steps)

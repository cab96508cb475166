"""What the rule-test table is made of: :class:`Row` and helpers for argument strategies.

A row's ``fun`` is written with ``autodiff.numpy`` and operators, so called on concrete
mx.arrays it is plain MLX (the oracle for lowering), and traced it exercises our rules.
``args(shape)`` gives one hypothesis strategy per argument for a drawn ``shape``. Rows live in
``tests/table.py`` (the core primitives) and ``tests/rows/<family>.py`` (one file per family
module of ``autodiff/ops``, each defining ``ROWS``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
from hypothesis import strategies as st

from autodiff.testing.strategies import arrays, shapes

_salts = itertools.count()


def A(low=-3.0, high=3.0, away=(), dtype=mx.float32):
    salt = next(_salts)  # distinct arguments draw distinct values, even from equal seeds
    return lambda shape: arrays(
        shape, dtype=dtype, low=low, high=high, away_from=away, margin=0.1, salt=salt
    )


def C(low=-2.0, high=2.0, away=()):
    """Complex64 arguments: real and imaginary parts in ``[low, high]``, ``away`` from the
    given complex points (poles, branch points)."""
    return A(low, high, away, dtype=mx.complex64)


def arrays_s(shape, **kw):
    return arrays(shape, salt=next(_salts), **kw)


@dataclass
class Row:
    name: str
    fun: Callable
    args: tuple  # one callable(shape) -> strategy per argument
    shapes: st.SearchStrategy = field(default_factory=lambda: shapes(0, 3, 1, 4))
    diff: tuple[int, ...] | None = (0,)  # differentiable argnums (None: piecewise constant)
    mx_grad: bool = True  # compare with mx.grad (and, below, mx.jvp)
    mx_jvp: bool = True  # False: MLX's JVP is wrong here (addmm ignores beta)
    mx_order: int = 2  # 1: MLX lacks a second-order rule here
    mx_vmap: bool = True  # compare with mx.vmap
    order: int = 2
    modes: tuple = ("fwd", "rev")  # ("fwd",): no reverse mode (an unbounded while_loop)
    fd: bool = True  # check against finite differences (not for stop_gradient)
    rtol: float = 1e-5  # float64 finite-difference checks
    interp_rtol: float = 2e-4  # interpreter (float64) vs MLX; looser where the row uses float16
    # Two MLX computations of the row (lowered vs eager, vmap vs a loop, ours vs mx.grad) agree
    # to rounding; in float16/bfloat16 the same math in another order rounds visibly apart.
    mlx_rtol: float = 0.0
    # Absolute tolerances (default: a tenth of the relative ones). A low-precision result near
    # zero carries the rounding error of its intermediates, which are O(1).
    interp_atol: float | None = None
    mlx_atol: float = 0.0

    def draw_args(self, draw):
        shape = draw(self.shapes)
        return tuple(draw(a(shape)) for a in self.args)

    def __repr__(self):
        return self.name


def unary(name, fn, low=-3.0, high=3.0, away=(), **kw):
    return Row(name, fn, (A(low, high, away),), **kw)


def binary(name, fn, a=None, b=None, diff=(0, 1), **kw):
    return Row(name, fn, (a or A(), b or A()), diff=diff, **kw)


# Tolerances of rows computed in float16 and bfloat16 (eps 2**-11 and 2**-8). Finite
# differences too: the optimiser folds constants of a low-precision program in its dtype
# (log(2) in float16 for the derivative of 2**x), as MLX would compute them.
F16 = dict(rtol=2e-3, interp_rtol=1e-2, interp_atol=1e-2, mlx_rtol=1e-2, mlx_atol=1e-2)
BF16 = dict(rtol=2e-2, interp_rtol=6e-2, interp_atol=6e-2, mlx_rtol=6e-2, mlx_atol=6e-2)

S1 = shapes(1, 3, 1, 4)  # at least one axis
S2 = shapes(2, 3, 1, 4)  # at least two axes
PIECEWISE = dict(diff=None)

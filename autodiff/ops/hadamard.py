"""The Walsh-Hadamard transform along the last axis: ``y = scale * H @ x`` for ``n = m * 2**k``
with ``m`` in (1, 12, 20, 28), ``H = kron(H_m, Sylvester(2**k))`` and ``H_m`` the matrices MLX
uses (N. J. A. Sloane's library).

Linear, so its JVP is itself and its transpose is ``scale * H.T``. ``H`` is symmetric for
``m`` in (1, 12) but not for 20 and 28, so the transposed transform (``transposed=True``) is
lowered as ``H_m.T`` times the power-of-two transform there. (MLX's own VJP applies ``H``
rather than ``H.T`` for those sizes, so ``mx.grad`` disagrees there.)
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff.dtypes import is_float
from autodiff.extend import (
    batch_rules,
    bind,
    def_primitive,
    deflinear,
    impls,
    lowerings,
    moveaxis,
    transpose_rules,
)
from autodiff.lower_mlx import helpers
from autodiff.tracing import aval_of

_SIGNS = {
    12: """+-++++++++++ --+-+-+-+-+- +++-++----++ +---+--+-++- +++++-++---- +-+---+--+-+
           ++--+++-++-- +--++---+--+ ++----+++-++ +--+-++---+- ++++----+++- +-+--+-++---""",
    20: """+----+----++--++-++- -+----+---+++---+-++ --+----+---+++-+-+-+ ---+----+---+++++-+-
           ----+----++--++-++-+ -+++++-----+--+++--+ +-+++-+---+-+--+++-- ++-++--+---+-+--+++-
           +++-+---+---+-+--+++ ++++-----++--+-+--++ --++-+-++-+-----++++ ---++-+-++-+---+-+++
           +---++-+-+--+--++-++ ++---++-+----+-+++-+ -++---++-+----+++++- -+--+--++-+----+----
           +-+-----++-+----+--- -+-+-+---+--+----+-- --+-+++------+----+- +--+--++------+----+""",
    28: """+------++----++-+--+-+--++-- -+-----+++-----+-+--+-+--++- --+-----+++---+-+-+----+--++
           ---+-----+++---+-+-+-+--+--+ ----+-----+++---+-+-+++--+-- -----+-----++++--+-+--++--+-
           ------++----++-+--+-+--++--+ --++++-+-------++--+++-+--+- ---++++-+-----+-++--+-+-+--+
           +---+++--+----++-++--+-+-+-- ++---++---+----++-++--+-+-+- +++---+----+----++-++--+-+-+
           ++++--------+-+--++-++--+-+- -++++--------+++--++--+--+-+ -+-++-++--++--+--------++++-
           +-+-++--+--++--+--------++++ -+-+-++--+--++--+----+---+++ +-+-+-++--+--+---+---++---++
           ++-+-+-++--+------+--+++---+ -++-+-+-++--+------+-++++--- +-++-+---++--+------+-++++--
           -++--++-+-++-+++----++------ +-++--++-+-++-+++-----+----- ++-++---+-+-++-+++-----+----
           -++-++-+-+-+-+--+++-----+--- --++-++++-+-+----+++-----+-- +--++-+-++-+-+----+++-----+-
           ++--++-+-++-+-+----++------+""",
}
BASE = {
    m: np.array([[1.0 if c == "+" else -1.0 for c in row] for row in s.split()])
    for m, s in _SIGNS.items()
}


def decompose(n: int) -> tuple[int, int]:
    """``(m, 2**k)`` with ``n = m * 2**k``, as MLX chooses them; raises for other sizes."""
    m = 1
    if n & (n - 1):
        m = next((f for f in (12, 20, 28) if n % f == 0), 1)
    p = n // m
    if m == 1 and n & (n - 1) or p & (p - 1):
        raise ValueError(
            f"[hadamard_transform] the last axis ({n}) must be m * 2**k with m in (1, 12, 20, 28)"
        )
    return m, p


def matrix(n: int) -> np.ndarray:
    """The (unscaled) Hadamard matrix MLX applies for size ``n``."""
    m, p = decompose(n)
    h = np.ones((1, 1))
    while h.shape[0] < p:
        h = np.block([[h, h], [h, -h]])
    return np.kron(BASE[m], h) if m > 1 else h


def _rule(x, *, scale, transposed):
    if not is_float(x.dtype) or x.ndim < 1:
        raise TypeError(f"[hadamard_transform] expects a float array, got {x.str_short()}")
    decompose(x.shape[-1])
    return [x]


hadamard_transform_p = def_primitive("hadamard_transform", "hadamard", _rule)


def hadamard_transform(x, scale: float, transposed: bool = False):
    n = aval_of(x).shape[-1]
    symmetric = decompose(n)[0] in (1, 12)
    return bind(hadamard_transform_p, x, scale=scale, transposed=transposed and not symmetric)


deflinear(hadamard_transform_p)
transpose_rules[hadamard_transform_p] = lambda ct, x, scale, transposed: [
    hadamard_transform(ct, scale, not transposed)
]


def _batch(size, args, dims, **params):
    return bind(hadamard_transform_p, moveaxis(args[0], dims[0], 0), **params), 0


batch_rules[hadamard_transform_p] = _batch


def _transposed_mlx(x, scale):
    """``scale * H.T @ x`` along the last axis: the power-of-two factor with MLX's kernel, then
    ``H_m.T`` as a matrix product over the factor's rows."""
    n = x.shape[-1]
    m, p = decompose(n)
    y = mx.reshape(x, x.shape[:-1] + (m, p))
    if p > 1:
        y = mx.hadamard_transform(y, scale=1.0)
    y = mx.matmul(mx.array(BASE[m].T, dtype=x.dtype), y)
    return mx.reshape(y * mx.array(scale, dtype=x.dtype), x.shape)


helpers["_hadamard_transposed"] = _transposed_mlx


def _lower(args, ins, outs, scale, transposed):
    if transposed:
        return f"_hadamard_transposed({args[0]}, {scale!r})"
    return f"mx.hadamard_transform({args[0]}, scale={scale!r})"


lowerings[hadamard_transform_p] = _lower


def _np(x, scale, transposed):
    h = matrix(x.shape[-1])
    return scale * (x @ (h if transposed else h.T))


impls[hadamard_transform_p] = _np

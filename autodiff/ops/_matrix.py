"""Matrix helpers for the linear-algebra families (``linalg``, ``lu``, ``spectral``): batched
products, transposes, triangles, identities and diagonals written with ``autodiff.lax``, so the
rules built from them are IR that can be differentiated again; plus the dtype and shape checks
and the batching rule that the linalg primitives share.

Every linalg primitive works on the last two axes and maps over any leading (batch) axes, as
MLX's do. Operands of one rule always have equal batch axes here (``autodiff.numpy`` inserts
the broadcasts), so nothing needs to broadcast.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.extend import batch_rules, bind, to_front
from autodiff.ir import ShapedArray
from autodiff.tracing import aval_of

FLOATS = ("float32", "float64")


def check_matrix(name: str, x: ShapedArray, square: bool = True) -> None:
    """The shape-rule checks MLX makes: float32/float64, at least 2-D, square if asked."""
    if x.dtype not in FLOATS:
        raise TypeError(
            f"{name}: expects float32 or float64 operands (as MLX's linalg), got "
            f"{x.str_short()}; convert it with .astype(mx.float32)"
        )
    if x.ndim < 2:
        raise ValueError(f"{name}: expects a matrix (at least 2 dimensions), got {x.str_short()}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name}: expects square matrices, got {x.str_short()}")


def front_batching(prim) -> None:
    """Batching rule: the batch axis moves to the front, where the primitive maps over it
    like any other leading axis (unbatched operands are broadcast along it)."""

    def rule(size, args, dims, **params):
        out = bind(prim, *[to_front(x, d, size) for x, d in zip(args, dims)], **params)
        return out, [0] * len(out) if prim.multiple_results else 0

    batch_rules[prim] = rule


# ---------------------------------------------------------------------------------------------
# shapes


def shape(x) -> tuple[int, ...]:
    return aval_of(x).shape


def dtype(x) -> str:
    return aval_of(x).dtype


def mT(x):
    """Swap the last two axes."""
    nd = len(shape(x))
    return L.transpose(x, list(range(nd - 2)) + [nd - 1, nd - 2])


def mm(a, b):
    """Batched matrix product ``(..., m, k) @ (..., k, n)`` over equal batch axes."""
    nd = len(shape(a))
    batch = tuple(range(nd - 2))
    return L.dot_general(a, b, (((nd - 1,), (nd - 2,)), (batch, batch)))


def along_rows(v, n: int):
    """``(..., k) -> (..., n, k)``: ``out[..., i, j] = v[..., j]``."""
    s = shape(v)
    return L.broadcast_in_dim(v, s[:-1] + (n, s[-1]), list(range(len(s) - 1)) + [len(s)])


def along_cols(v, n: int):
    """``(..., k) -> (..., k, n)``: ``out[..., i, j] = v[..., i]``."""
    s = shape(v)
    return L.broadcast_in_dim(v, s + (n,), range(len(s)))


# ---------------------------------------------------------------------------------------------
# triangles, identities, diagonals


def tri_mask(like_shape, k: int = 0, lower: bool = True):
    """Boolean ``like_shape`` (``(..., n, m)``): True on and below the k-th diagonal (lower)
    or on and above it (upper)."""
    n, m = like_shape[-2], like_shape[-1]
    offset = L.sub(L.iota("int32", (n, m), 1), L.iota("int32", (n, m), 0))  # j - i
    mask = L.le(offset, k) if lower else L.ge(offset, k)
    return L.broadcast_to(mask, tuple(like_shape))


def tril(x, k: int = 0):
    return L.select(tri_mask(shape(x), k, True), x, 0.0)


def triu(x, k: int = 0):
    return L.select(tri_mask(shape(x), k, False), x, 0.0)


def eye(n: int, m: int, dt: str, batch: tuple[int, ...] = ()):
    """The ``n x m`` identity (ones on the main diagonal), broadcast over ``batch``."""
    e = L.convert(L.eq(L.iota("int32", (n, m), 0), L.iota("int32", (n, m), 1)), dt)
    return L.broadcast_to(e, tuple(batch) + (n, m)) if batch else e


def eye_like(x):
    s = shape(x)
    return eye(s[-2], s[-1], dtype(x), s[:-2])


def diagonal(x):
    """The main diagonal of square matrices: ``(..., n, n) -> (..., n)``."""
    return L.reduce_sum(L.mul(x, eye_like(x)), [len(shape(x)) - 1])


def diag_embed(v):
    """``(..., n) -> (..., n, n)`` with ``v`` on the diagonal."""
    n = shape(v)[-1]
    return L.mul(along_rows(v, n), eye(n, n, dtype(v), shape(v)[:-1]))


def sym_from(x, lower: bool):
    """The symmetric matrix a routine reading only one triangle of ``x`` sees."""
    if lower:
        return L.add(tril(x), mT(tril(x, -1)))
    return L.add(triu(x), mT(triu(x, 1)))


def matrix_sum(x):
    """Sum over the last two axes."""
    nd = len(shape(x))
    return L.reduce_sum(x, [nd - 2, nd - 1])


def take_rows(x, perm):
    """``x[..., perm, :]`` for a batched permutation ``perm`` of shape ``(..., m)``."""
    s = shape(x)
    idx = L.broadcast_in_dim(perm, s, range(len(s) - 1))
    return L.take_along_axis(x, idx, len(s) - 2)

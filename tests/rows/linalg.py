"""Rows for autodiff/ops/linalg.py: inv, tri_inv, cholesky, cholesky_inv, solve,
solve_triangular and pinv. Well-conditioned inputs are built inside the row functions from raw
random arrays (a diagonal shift, ``x @ x.T + n I``), so derivatives are checked through the
construction, and the triangle the kernels ignore holds garbage (its derivative must be zero).

MLX has no VJP or JVP for any of these (mx_grad=False). It has vmap rules for all but solve,
but mx.vmap of tri_inv returns the general inverse (its batching rule drops the triangle), so
tri_inv, cholesky_inv and solve_triangular are compared with the loop only."""

import itertools

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import Row

import autodiff.numpy as anp
from autodiff.testing.strategies import arrays

LA = anp.linalg

# This file's own salts (rowlib's arrays_s counts globally): its draws leave the data the
# other families' rows draw unchanged.
_salts = itertools.count(7000)


def arrays_s(shape, **kw):
    return arrays(shape, salt=next(_salts), **kw)


# (batch, n): batch 0 means a plain matrix
SQUARE = st.tuples(st.integers(0, 2), st.integers(1, 4))
NO_MX = dict(mx_grad=False)  # MLX has no derivatives here (it has vmap rules)
NO_VMAP = dict(mx_grad=False, mx_vmap=False)  # no vmap rule (solve) or a wrong one (tri_inv)


def mat(s, rows=None, cols=None):
    b, n = s
    shape = (rows or n, cols or n)
    return arrays_s(((b,) if b else ()) + shape, low=-1.0, high=1.0)


def shifted(x, c=3.0):
    """``x`` plus ``c n`` on the diagonal: well conditioned for entries in [-1, 1]."""
    return x + c * x.shape[-1] * mx.eye(x.shape[-1])


def spd(x):
    return x @ mx.swapaxes(x, -1, -2) + x.shape[-1] * mx.eye(x.shape[-1])


ROWS = [
    Row("linalg_inv", lambda x: LA.inv(shifted(x)), (mat,), shapes=SQUARE, **NO_MX),
    Row(
        "linalg_tri_inv",
        lambda x: LA.tri_inv(shifted(x)) + LA.tri_inv(shifted(x) * 0.5, upper=True),
        (mat,),
        shapes=SQUARE,
        **NO_VMAP,
    ),
    Row(
        "linalg_cholesky",
        lambda x: LA.cholesky(spd(x) + anp.triu(x, 1)),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_cholesky_upper",
        lambda x: LA.cholesky(spd(x) - anp.tril(x, -1), upper=True),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_cholesky_inv",
        lambda x: LA.cholesky_inv(shifted(x)) + LA.cholesky_inv(shifted(x, 2.0), upper=True),
        (mat,),
        shapes=SQUARE,
        **NO_VMAP,
    ),
    Row(
        "linalg_solve",
        lambda a, b: LA.solve(shifted(a), b),
        (mat, lambda s: mat(s, cols=2)),
        shapes=SQUARE,
        diff=(0, 1),
        **NO_VMAP,
    ),
    Row(
        "linalg_solve_vector",
        lambda a, b: LA.solve(shifted(a), b),
        (lambda s: mat((0, s[1])), lambda s: arrays_s((s[1],), low=-1.0, high=1.0)),
        shapes=SQUARE,
        diff=(0, 1),
        **NO_VMAP,
    ),
    Row(
        "linalg_solve_triangular",
        lambda a, b: (
            LA.solve_triangular(shifted(a), b) + LA.solve_triangular(shifted(a), b, upper=True)
        ),
        (mat, lambda s: mat(s, cols=3)),
        shapes=SQUARE,
        diff=(0, 1),
        **NO_VMAP,
    ),
    Row(
        "linalg_pinv",
        # full-rank tall and wide matrices: x plus a multiple of the rectangular identity
        lambda x: LA.pinv(x + 3.0 * mx.eye(*x.shape[-2:])),
        (lambda s: mat(s, cols=max(1, s[1] - 1)),),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_pinv_wide",
        lambda x: LA.pinv(x + 3.0 * mx.eye(*x.shape[-2:])),
        (lambda s: mat(s, rows=2, cols=s[1] + 1),),
        shapes=SQUARE,
        **NO_MX,
    ),
]

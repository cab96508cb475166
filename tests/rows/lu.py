"""Rows for autodiff/ops/lu.py: lu, lu_factor, det and slogdet.

Inputs are shifted by a multiple of the flipped identity, so partial pivoting swaps rows (the
permutation is not the identity) and the pivots stay far from ties. det and slogdet up to 3x3
are MLX's closed form (MLX differentiates those, mx_grad is checked); beyond, the primitives,
which MLX cannot differentiate. The singular rows check det's derivative at exactly singular
matrices (rank n - 1 and n - 2) against finite differences; second derivatives there are not
defined (order=1)."""

import itertools

import mlx.core as mx
import numpy as np
from hypothesis import strategies as st
from rowlib import Row

import autodiff.numpy as anp
from autodiff.testing.strategies import arrays

LA = anp.linalg

# This file's own salts (rowlib's arrays_s counts globally): its draws leave the data the
# other families' rows draw unchanged.
_salts = itertools.count(8000)


def arrays_s(shape, **kw):
    return arrays(shape, salt=next(_salts), **kw)


SQUARE = st.tuples(st.integers(0, 2), st.integers(1, 4))
SMALL = st.tuples(st.integers(0, 2), st.integers(1, 3))  # closed forms
LARGE = st.tuples(st.integers(0, 2), st.integers(4, 5))  # the LU-based primitives
NO_MX = dict(mx_grad=False, mx_vmap=False)  # MLX has no derivative or vmap rule for LU


def mat(s, rows=None, cols=None):
    b, n = s
    return arrays_s(((b,) if b else ()) + (rows or n, cols or n), low=-1.0, high=1.0)


def pivoted(x, c=3.0):
    """``x`` plus ``c max(m, n)`` times the flipped identity."""
    m, n = x.shape[-2:]
    return x + c * max(m, n) * mx.array(np.eye(m, n)[::-1].copy())


def singular(rank_drop):
    """Square matrices whose last ``rank_drop`` rows are exact multiples of the first."""

    def draw(s):
        def make(x):
            x = np.array(x)
            for i in range(1, rank_drop + 1):
                x[..., -i, :] = (i + 1) * x[..., 0, :]
            return mx.array(x)

        return mat(s).map(make)

    return draw


ROWS = [
    Row(
        "linalg_lu",
        lambda x: LA.lu(pivoted(x)),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_lu_tall",
        lambda x: LA.lu(pivoted(x)),
        (lambda s: mat(s, rows=s[1] + 1),),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_lu_wide",
        lambda x: LA.lu(pivoted(x)),
        (lambda s: mat(s, cols=s[1] + 2),),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row(
        "linalg_lu_factor",
        lambda x: LA.lu_factor(pivoted(x)),
        (mat,),
        shapes=SQUARE,
        **NO_MX,
    ),
    Row("linalg_det_small", lambda x: LA.det(x * 2.0), (mat,), shapes=SMALL),
    Row("linalg_det", lambda x: LA.det(pivoted(x, 1.0)), (mat,), shapes=LARGE, **NO_MX),
    Row(
        "linalg_det_singular",
        LA.det,
        (singular(1),),
        shapes=st.tuples(st.integers(0, 2), st.integers(2, 5)),
        order=1,
        **NO_MX,
    ),
    Row(
        "linalg_det_rank_n_minus_2",
        LA.det,
        (singular(2),),
        shapes=LARGE,
        order=1,
        **NO_MX,
    ),
    Row(
        "linalg_slogdet_small",
        lambda x: LA.slogdet(pivoted(x)),
        (mat,),
        shapes=SMALL,
    ),
    Row("linalg_slogdet", lambda x: LA.slogdet(pivoted(x)), (mat,), shapes=LARGE, **NO_MX),
]

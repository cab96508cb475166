"""Rows for autodiff/numpy/_rearrange.py: diag, diagonal, trace, roll, as_strided, and the
``diag``/``diagonal`` methods on tracers."""

from hypothesis import strategies as st
from rowlib import S1, S2, A, Row

import autodiff.numpy as anp

MATRICES = st.tuples(st.integers(1, 4), st.integers(1, 4))

ROWS = [
    Row(
        "diag_of_vector",
        lambda v: anp.diag(v) * 2.0 + anp.diag(v, k=1)[1:, :-1] + anp.diag(v, -2)[2:, :-2],
        (A(),),
        shapes=st.tuples(st.integers(1, 4)),
        mx_jvp=False,  # MLX builds it with a scatter, which has no JVP in MLX
        mx_order=1,
    ),
    Row(
        "diag_of_matrix",
        lambda x: anp.diag(x) * x.diag(-1).sum() + anp.diag(x, 1).sum(),
        (A(),),
        shapes=MATRICES,
        mx_order=1,  # MLX's gradient of a diagonal is a scatter, which has no JVP in MLX
    ),
    Row(
        "diagonal",
        lambda x: anp.diagonal(x, 1, 2, 0) * 2.0 + x.diagonal(-1, -1, 1).sum(),
        (A(),),
        shapes=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
        mx_vmap=False,  # mx.vmap of the sum of an empty diagonal reads garbage
    ),
    Row(
        "trace",
        lambda x: anp.trace(x) * anp.trace(x, offset=-1, axis1=1, axis2=0),
        (A(),),
        shapes=S2,
        mx_order=1,  # MLX's gradient of a trace is a scatter, which has no JVP in MLX
    ),
    Row(
        "roll",
        lambda x: anp.roll(x, 1) * 2.0 + anp.roll(x, (1, -3), (0, -1)) * x + anp.roll(x, (2, 1), 0),
        (A(),),
        shapes=S2,
    ),
    Row(
        "as_strided",
        lambda x: (
            anp.as_strided(x, (x.size - 1, 2), (1, 1)) * 2.0
            + anp.as_strided(x, (1,), offset=x.size - 1)
        ),
        (A(),),
        shapes=S1,
        mx_vmap=False,  # MLX: "[Primitive::vmap] Not implemented for AsStrided"
    ),
]

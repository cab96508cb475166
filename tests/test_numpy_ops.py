"""Every primitive and composite: trace -> lower -> run on MLX equals calling mlx.core directly,
and the float64 NumPy interpreter agrees within float32 tolerance."""

import mlx.core as mx
import numpy as np
import pytest
from device import for_device
from hypothesis import given
from hypothesis import strategies as st
from table import ROW_IDS, ROWS

import autodiff as ad
from autodiff.interpret import interpret
from autodiff.lower_mlx import lower_mlx


def as_np(x):
    return np.array(x.astype(mx.float32) if x.dtype in (mx.bfloat16, mx.float16) else x)


def assert_matches(got, expected, rtol, atol):
    got_l, expected_l = ad.tree_leaves(got), ad.tree_leaves(expected)
    assert len(got_l) == len(expected_l)
    for g, e in zip(got_l, expected_l):
        g_np, e_np = as_np(mx.array(g)) if not isinstance(g, np.ndarray) else g, as_np(e)
        assert g_np.shape == e_np.shape, (g_np.shape, e_np.shape)
        t = np.complex128 if "c" in np.asarray(g_np).dtype.kind + e_np.dtype.kind else np.float64
        np.testing.assert_allclose(
            np.asarray(g_np, t),
            np.asarray(e_np, t),
            rtol=rtol,
            atol=atol,
            equal_nan=True,
        )


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
@given(data=st.data())
def test_lowering_and_interpreter_match_mlx(row, data):
    args = row.draw_args(data.draw)
    row = for_device(row, args)
    expected = row.fun(*args)  # concrete mx.arrays: autodiff.numpy calls mlx directly
    closed = ad.make_jaxpr(row.fun)(*args)
    ad.typecheck(closed)
    lowered = lower_mlx(closed)
    flat_args = ad.tree_leaves(list(args))
    got = lowered.fn(*closed.consts, *flat_args)
    expected_leaves = ad.tree_leaves(expected)
    for g, e in zip(got, expected_leaves):
        if e.dtype != mx.uint32:  # argmax/argmin: MLX gives uint32, we follow JAX (int32)
            assert g.dtype == e.dtype, (g.dtype, e.dtype)
    rtol = max(1e-5, row.mlx_rtol)
    assert_matches(list(got), expected_leaves, rtol=rtol, atol=max(rtol / 10, row.mlx_atol))
    interpreted = interpret(closed, *flat_args)
    atol = row.interp_rtol / 10 if row.interp_atol is None else row.interp_atol
    assert_matches(interpreted, expected_leaves, rtol=row.interp_rtol, atol=atol)

"""Functions shared by tests/distributed_worker.py (run on each process under ``ad.spmd``) and
tests/test_distributed.py (the same functions under ``ad.vmap(axis_name=AXIS)`` on one
process, the reference). Each takes one instance's ``x`` of shape ``SHAPE``."""

import numpy as np

import autodiff.numpy as anp
from autodiff import lax

AXIS = "data"
SHAPE = (4, 3)  # 4 rows: a tiled psum_scatter splits them among 2 or 4 processes


def full_batch(n: int, seed: int = 0) -> np.ndarray:
    """Every process's input, stacked: process ``r`` gets row ``r``."""
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


VALUES = {
    "reductions": lambda x: (
        lax.psum(x, AXIS),
        lax.pmean(x * x, AXIS),
        lax.pmax(x, AXIS),
        lax.pmin(x, AXIS),
    ),
    "gathers": lambda x: (
        lax.all_gather(x, AXIS),
        lax.all_gather(x, AXIS, axis=2),
        lax.all_gather(x, AXIS, axis=1, tiled=True),
    ),
    "scatters": lambda x: (
        lax.psum_scatter(x, AXIS, tiled=True),
        lax.psum_scatter(lax.all_gather(x, AXIS), AXIS),
        lax.psum_scatter(anp.concatenate([x] * 4, axis=1), AXIS, scatter_dimension=1, tiled=True),
    ),
    "index": lambda x: x * lax.axis_index(AXIS) + lax.psum(lax.axis_index(AXIS), AXIS),
    "mixed": lambda x: anp.tanh(x) / lax.psum(anp.sum(x * x), AXIS) + lax.pmean(x, AXIS),
}

LOSSES = {
    "psum": lambda x: anp.sum(lax.psum(x * x, AXIS) * anp.sin(x)),
    "all_gather": lambda x: anp.sum(lax.all_gather(anp.tanh(x), AXIS, axis=1) ** 2),
    "psum_scatter": lambda x: anp.sum(lax.psum_scatter(x, AXIS, tiled=True) ** 3),
    "pmax_pmin": lambda x: anp.sum(lax.pmax(x, AXIS) * x + lax.pmin(x * x, AXIS)),
    "pmean": lambda x: anp.sum((x - lax.pmean(x, AXIS)) ** 2),
}

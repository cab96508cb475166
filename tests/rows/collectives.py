"""Rows for autodiff/ops/collectives.py.

Two kinds. ``*_spmd`` rows run the collective under ``ad.spmd`` on this process alone (a
group of one, as pytest runs), so the primitive stays in the program: lowering to
``mx.distributed``, the interpreter, the derivative rules and the batching rules for an axis
name that the vmap does not bind (the table's vmap is unnamed) are all exercised, though over
an axis of size 1. ``*_vmap`` rows bind the name to a vmapped axis inside the row
(``ad.vmap(..., axis_name="i")``), which exercises the named batching rules over axes of
several instances, and, with ``ad.grad`` inside, the JVP and transpose rules there. The
multi-process semantics are tested in tests/test_distributed.py.
"""

import itertools

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, S2, Row

import autodiff as ad
import autodiff.numpy as anp
from autodiff import lax
from autodiff.testing.strategies import arrays

_salts = itertools.count(10_000)


def A(low=-3.0, high=3.0, away=()):
    """rowlib's A, salted from this file's own counter: adding these rows leaves the values
    every other row draws as they were."""
    salt = next(_salts)
    return lambda shape: arrays(shape, low=low, high=high, away_from=away, margin=0.1, salt=salt)


def spmd(f):
    return ad.spmd(f, axis_name="p")


def named(f):
    return ad.vmap(f, axis_name="i")


# (batch, k * batch): a tiled psum_scatter over the batch needs a multiple of its size
_TILED = st.tuples(st.integers(1, 3), st.integers(1, 2)).map(lambda t: (t[0], t[0] * t[1]))
_SQUARE = st.integers(1, 3).map(lambda n: (n, n))  # psum_scatter over the batch, not tiled


def _all(v):
    return (
        lax.psum(v * v, "p")
        + lax.pmean(v, "p")
        + lax.pmax(v, "p") * lax.pmin(anp.sin(v), "p")
        + lax.axis_index("p").astype(mx.float32)
    )


def _gathers(v):
    return (
        lax.all_gather(v * v, "p", axis=-1),
        lax.all_gather(anp.sin(v), "p", tiled=True),
        lax.psum_scatter(anp.expand_dims(v, 0) * 2.0, "p"),
        lax.psum_scatter(v, "p", tiled=True),
    )


def _stats(v):
    w = v / lax.psum(anp.sum(v * v), "i") + lax.pmean(v, "i") * lax.pmax(v, "i")
    return w - lax.pmin(v * 0.5, "i") + lax.axis_index("i").astype(mx.float32)


def _loss(v):
    return anp.sum(lax.psum(v, "i") ** 2) + anp.sum(lax.all_gather(v * v, "i", axis=-1) * 0.5)


def _extrema_loss(v):
    return anp.sum(lax.pmax(v, "i") * anp.cos(v)) + anp.sum(lax.pmin(v * v, "i"))


ROWS = [
    Row("collectives_spmd", lambda x: spmd(_all)(x), (A(),), shapes=S1),
    Row(
        "gather_scatter_spmd",
        lambda x: spmd(_gathers)(x),
        (A(),),
        shapes=S1,
    ),
    Row("reductions_vmap", lambda x: named(_stats)(x), (A(0.5, 3.0),), shapes=S1),
    Row(
        "all_gather_vmap",
        lambda x: named(lambda v: (lax.all_gather(v, "i") * v, lax.all_gather(v, "i", tiled=True)))(
            x
        ),
        (A(),),
        shapes=S2,
    ),
    Row(
        "psum_scatter_vmap",
        lambda x: named(lambda v: lax.psum_scatter(anp.sin(v), "i", tiled=True))(x),
        (A(),),
        shapes=_TILED,
    ),
    Row(
        "psum_scatter_square_vmap",
        lambda x: named(lambda v: lax.psum_scatter(v * v, "i") * lax.axis_index("i"))(x),
        (A(),),
        shapes=_SQUARE,
    ),
    Row("grad_psum_gather_vmap", lambda x: named(ad.grad(_loss))(x), (A(),), shapes=S1),
    Row(
        "grad_pmax_pmin_vmap",
        lambda x: named(ad.grad(_extrema_loss))(x),
        (A(away=(0.0,)),),
        shapes=S1,
    ),
    Row(
        "grad_psum_scatter_vmap",
        lambda x: named(ad.grad(lambda v: anp.sum(lax.psum_scatter(v, "i", tiled=True) ** 2)))(x),
        (A(),),
        shapes=_TILED,
    ),
]

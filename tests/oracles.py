"""JAX as an optional oracle of the tests.

JAX (the ``dev`` extra) is the second oracle of many test modules. Without it, only the tests
(or the parts of a test) that compare with JAX are skipped; the rest of the module still runs:

    from oracles import optional_jax, requires_jax

    jax, jnp = optional_jax(jax_platforms="cpu")  # (None, None) without JAX

    @requires_jax
    def test_grad_matches_jax(): ...

    def test_something_and_jax():
        ...  # the checks that need no JAX
        if jax is not None:
            ...  # the comparison with JAX

A module that is all comparisons with JAX (test_against_jax.py) skips itself whole with
``pytest.importorskip("jax")`` instead.
"""

from __future__ import annotations

import pytest

try:
    import jax as _jax
except ImportError:
    _jax = None

HAS_JAX = _jax is not None

requires_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX (the dev extra) is not installed")


def optional_jax(**config):
    """``(jax, jax.numpy)``, with each ``jax.config`` option of ``config`` set (e.g.
    ``jax_platforms="cpu"``), or ``(None, None)`` when JAX is not installed."""
    if _jax is None:
        return None, None
    import jax.numpy as jnp

    for name, value in config.items():
        _jax.config.update(name, value)
    return _jax, jnp

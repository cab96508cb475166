"""``autodiff.mlx``: mlx.core, with MLX's function transforms replaced by autodiff's.

Switching an MLX program to autodiff is one import::

    import autodiff.mlx as mx          # instead of: import mlx.core as mx
    import autodiff.mlx.nn as nn       # instead of: import mlx.nn as nn

Everything else is mlx.core's own (arrays, operations, ``mx.random``, ``mx.linalg``...); the
transforms ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``vmap``, ``compile``,
``checkpoint`` and ``custom_function`` keep MLX's signatures and conventions and run on
autodiff's engine: derivatives of any order, rules MLX lacks, and the optimised programs.
The JAX-style API (``import autodiff as ad``) stays the primary one.
"""

from mlx.core import *  # noqa: F403 - the whole of mlx.core, then the transforms replaced
from mlx.core import fast, fft, linalg, random  # noqa: F401

from autodiff.mlx._custom import custom_function
from autodiff.mlx._transforms import (
    checkpoint,
    compile,
    grad,
    jvp,
    value_and_grad,
    vjp,
    vmap,
)


def _public() -> list[str]:
    """What ``from autodiff.mlx import *`` gives: all that ``from mlx.core import *`` gives."""
    import mlx.core

    names = getattr(mlx.core, "__all__", None)
    if names is None:
        names = [n for n in dir(mlx.core) if not n.startswith("_")]
    return sorted(set(names) | set(_TRANSFORMS))


_TRANSFORMS = [
    "checkpoint",
    "compile",
    "custom_function",
    "grad",
    "jvp",
    "value_and_grad",
    "vjp",
    "vmap",
]
__all__ = _public()


def __getattr__(name):
    import mlx.core

    return getattr(mlx.core, name)


def _route() -> None:
    """This module's copies of mlx.core's functions are routed while tracing, as mlx.core's
    own are (``autodiff/routing.py``)."""
    import sys

    import autodiff.numpy as anp
    from autodiff import routing

    routing.register(sys.modules[__name__], anp)


_route()

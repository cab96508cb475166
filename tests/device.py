"""The device the tests run on, and what it computes differently from the CPU.

``AUTODIFF_TEST_DEVICE=cpu`` (the default) or ``gpu`` (MLX's Metal or CUDA backend) chooses the
default device before any test runs (``conftest.py``). Two things differ on a GPU:

- **float64** exists on MLX's CPU only: a row whose program holds a float64 value is skipped
  there (the float64 oracles, finite differences and the NumPy interpreter, run anyway: they are
  NumPy), and any other test that makes a float64 array on the GPU is reported as skipped with
  MLX's own message (``conftest.py``).
- **TF32**: float32 matrix products on CUDA run in TF32 (a 10-bit mantissa), about 1e-3
  relative. A row whose program holds a matrix product (``dot_general``, convolutions, the
  quantized and gathered products, ``fused_addmm``/``fused_sdpa``) is compared with MLX and with
  the float64 interpreter to ``TF32_TOL`` there. ``AUTODIFF_TEST_TF32=1`` applies those
  tolerances on any device (to try the mechanism without a GPU).

Example:
    AUTODIFF_TEST_DEVICE=gpu python -m pytest -q tests/test_numpy_ops.py
"""

from __future__ import annotations

import dataclasses
import os

import mlx.core as mx
import pytest

import autodiff as ad
from autodiff.ir import all_eqns

DEVICE = os.environ.get("AUTODIFF_TEST_DEVICE", "cpu").lower()
if DEVICE not in ("cpu", "gpu"):
    raise ValueError(f"AUTODIFF_TEST_DEVICE={DEVICE!r}: use cpu or gpu")
ON_GPU = DEVICE == "gpu"
HAS_FLOAT64 = not ON_GPU
TF32 = os.environ.get("AUTODIFF_TEST_TF32") == "1" or (
    ON_GPU and hasattr(mx, "cuda") and mx.cuda.is_available()
)
TF32_TOL = 5e-3
FLOAT64_MESSAGE = "float64 is not supported on the GPU"

_MATMULS = {
    "dot_general",
    "conv_general",
    "quantized_matmul",
    "qqmm",
    "gather_mm",
    "gather_qmm",
    "block_masked_mm",
    "segmented_mm",
    "fused_addmm",
    "fused_sdpa",
}


def use_device() -> None:
    """Make the chosen device MLX's default (called once, from conftest.py)."""
    if not ON_GPU:
        mx.set_default_device(mx.cpu)
        return
    if not mx.is_available(mx.gpu):
        raise pytest.UsageError("AUTODIFF_TEST_DEVICE=gpu, but MLX has no GPU here")
    mx.set_default_device(mx.gpu)


_found: dict = {}


def _what(row, args) -> tuple[bool, bool]:
    """(holds a matrix product, holds a float64 value) for ``row``'s program on ``args``."""
    key = (row.name, tuple((getattr(a, "shape", ()), str(getattr(a, "dtype", ""))) for a in args))
    if key not in _found:
        closed = ad.make_jaxpr(row.fun)(*args)
        eqns = list(all_eqns(closed.jaxpr))
        avals = [v.aval for v in closed.jaxpr.invars] + [v.aval for e in eqns for v in e.outputs]
        _found[key] = (
            any(e.prim.name in _MATMULS for e in eqns),
            any(a.dtype == "float64" for a in avals),
        )
    return _found[key]


def for_device(row, args):
    """``row`` as the device needs it for these ``args``: skipped where the device lacks
    float64 and the program holds one, with TF32 tolerances where products run in TF32.
    On the CPU it is ``row`` itself, at no cost."""
    if HAS_FLOAT64 and not TF32:
        return row
    matmul, float64 = _what(row, args)
    if float64 and not HAS_FLOAT64:
        pytest.skip(f"{row.name}: float64 is CPU-only in MLX ({DEVICE})")
    if matmul and TF32:
        return dataclasses.replace(
            row,
            mlx_rtol=max(row.mlx_rtol, TF32_TOL),
            mlx_atol=max(row.mlx_atol, TF32_TOL),
            interp_rtol=max(row.interp_rtol, TF32_TOL),
            interp_atol=max(row.interp_atol or 0.0, TF32_TOL),
        )
    return row


def matmul_tol(tol: float) -> float:
    """A tolerance for comparing two computations that take matrix products in different
    orders or shapes: ``tol``, or TF32's where products run in TF32."""
    return max(tol, TF32_TOL) if TF32 else tol

"""Testing helpers for users' own test suites: :func:`check_grads` and, in
``autodiff.testing.strategies``, hypothesis strategies for arrays and random programs."""

from autodiff.testing.check import check_grads, check_jvp, check_vjp, numerical_jvp

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_jvp"]

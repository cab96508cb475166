"""User-facing exceptions, and the helper that finds the user's line for their messages."""

from __future__ import annotations

import linecache
import os
import sys

_PKG_DIRS = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep
    for p in (__file__, os.path.join(os.path.dirname(__file__), "..", "transforms", "x"))
)
_SKIP = (os.sep + "optree" + os.sep, os.sep + "mlx" + os.sep, "<frozen ", "<string>")


def user_frame():
    """The innermost stack frame outside autodiff, optree and mlx, or None."""
    f = sys._getframe(1)
    while f is not None:
        fn = (
            os.path.abspath(f.f_code.co_filename)
            if not f.f_code.co_filename.startswith("<")
            else f.f_code.co_filename
        )
        if not fn.startswith(_PKG_DIRS) and not any(s in fn for s in _SKIP):
            return f
        f = f.f_back
    return None


def user_location() -> str:
    """``'`fun` at file.py:12:\\n    source line'`` for the innermost user frame."""
    f = user_frame()
    if f is None:
        return "at an unknown location"
    code = f.f_code
    src = linecache.getline(code.co_filename, f.f_lineno).strip()
    where = f"in `{code.co_name}` at {code.co_filename}:{f.f_lineno}"
    return f"{where}:\n    {src}" if src else where


class ConcretizationError(TypeError):
    """A traced (abstract) value was used where a concrete Python value is needed."""


class UnexpectedTracerError(RuntimeError):
    """A tracer was used after the trace that created it had finished."""


class TransformError(ValueError):
    """Bad arguments to a transform (argnums, axes, tree structure, ...)."""

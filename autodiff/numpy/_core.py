"""Dispatch, dtypes, promotion and broadcasting for ``autodiff.numpy``.

Every public function is written once for traced values; :func:`mirror` makes it call the
mlx.core function of the same name instead when no argument is a tracer, so one function object
runs eagerly under ``mx.grad`` and traced under ``ad.grad``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import mlx.core as mx

from autodiff import lax
from autodiff.dtypes import dtype_name, is_inexact, join, weak_result
from autodiff.errors import user_location
from autodiff.ir import Literal
from autodiff.lower_mlx import MX_DTYPES
from autodiff.tracer import has_tracer
from autodiff.tracing import Tracer, aval_of

_SCALARS = (bool, int, float, complex)


def distinct(out, args):
    """``out``, or an alias of it when it is one of the tracers ``args`` (an operation that left
    its input as it was): MLX returns a new array object, which an in-place update of the
    result (``y = x.astype(x.dtype); y *= 2``) changes alone."""
    if type(out) is Tracer:
        for a in args:
            if a is out:
                return out.alias()
    return out


def mirror(mx_fn):
    """Decorate a traced implementation so it defers to ``mx_fn`` on concrete inputs.

    The result takes mlx.core's ``stream=`` keyword too: passed to MLX on concrete inputs;
    under a transform, where the program is placed is the lowering's choice (MLX's linalg
    runs on the CPU stream, everything else on the default device), so it is ignored.
    """

    def deco(traced):
        @functools.wraps(traced)
        def f(*args, stream=None, **kwargs):
            if has_tracer(args) or (kwargs and has_tracer(kwargs.values())):
                try:
                    return distinct(traced(*args, **kwargs), args)
                except (TypeError, ValueError) as e:
                    # a composite's own check (a primitive's carries it already from bind):
                    # say where in the user's code
                    if type(e) in (TypeError, ValueError) and "\nin `" not in str(e):
                        raise type(e)(f"{e}\n{user_location()}") from None
                    raise
            if stream is not None:
                kwargs["stream"] = stream
            return mx_fn(*args, **kwargs)

        f.traced = traced
        f.__doc__ = (
            traced.__doc__ or f"Mirrors ``mx.{getattr(mx_fn, '__name__', mx_fn)}``; traceable."
        )
        sig = inspect.signature(traced)
        if "stream" not in sig.parameters:
            stream = inspect.Parameter("stream", inspect.Parameter.KEYWORD_ONLY, default=None)
            params = list(sig.parameters.values())
            at = next((i for i, p in enumerate(params) if p.kind == p.VAR_KEYWORD), len(params))
            f.__signature__ = sig.replace(parameters=params[:at] + [stream] + params[at:])
        return f

    return deco


# ---------------------------------------------------------------------------------------------
# dtypes


def result_type(*args) -> str:
    """The dtype of a NumPy-style elementwise op on ``args`` (Python scalars are weak)."""
    out = None
    weak = set()
    for a in args:
        if type(a) in _SCALARS:
            weak.add(type(a))
        else:
            d = aval_of(a).dtype
            out = d if out is None else join(out, d)
    return weak_result(out, weak)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if d != o and d != 1:
                if o != 1:
                    raise ValueError(
                        f"shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be "
                        "broadcast together"
                    )
                out[off + i] = d
    return tuple(out)


def astype(x, dtype: str):
    """Convert ``x`` to ``dtype``: eagerly for concrete arrays, as IR for tracers."""
    t = type(x)
    if t in _SCALARS:
        return lax.convert(x, dtype)
    if t is Tracer or t is Literal:
        return lax.convert(x, dtype)
    x = x if isinstance(x, mx.array) else mx.array(x)
    return x if dtype_name(x.dtype) == dtype else x.astype(MX_DTYPES[dtype])


def promote(*args, dtype: str | None = None, shape: Sequence[int] | None = None) -> list:
    """Convert ``args`` to one dtype and (broadcast) shape; Python scalars stay literals."""
    avals = [None if type(a) in _SCALARS else aval_of(a) for a in args]
    if dtype is None:
        strong, weak = None, None
        for a, av in zip(args, avals):
            if av is None:
                weak = {type(a)} if weak is None else weak | {type(a)}
            elif strong is None or av.dtype == strong:
                strong = av.dtype
            else:
                strong = join(strong, av.dtype)
        dtype = strong if weak is None else weak_result(strong, weak)
    if shape is None:
        shapes = [av.shape for av in avals if av is not None]
        shape = shapes[0] if shapes and shapes.count(shapes[0]) == len(shapes) else None
        if shape is None:
            shape = broadcast_shapes(*shapes)
    else:
        shape = tuple(shape)
    out = []
    for a, av in zip(args, avals):
        if av is None or av.dtype != dtype:
            a = astype(a, dtype)
            if type(a) is Literal:
                out.append(a)
                continue
            av = aval_of(a)
        if av.shape != shape:
            a = lax.broadcast_in_dim(a, shape, range(len(shape) - len(av.shape), len(shape)))
        out.append(a)
    return out


def promote_float(*args) -> list:
    """:func:`promote`, then integers and bools become float32 (complex stays complex)."""
    dtype = result_type(*args)
    return promote(*args, dtype=dtype if is_inexact(dtype) else "float32")


def as_float(x):
    """Integers and bools become float32, as mlx.core's float-valued functions do; float
    and complex values stay as they are."""
    return x if is_inexact(aval_of(x).dtype) else astype(x, "float32")


def canonical_axis(axis: int, ndim: int, fn: str = "") -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{fn}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim if ndim else 0


def canonical_axes(axis: Any, ndim: int, fn: str = "") -> tuple[int, ...]:
    """None -> all axes; int or sequence -> sorted non-negative tuple."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(canonical_axis(a, ndim, fn) for a in axes))

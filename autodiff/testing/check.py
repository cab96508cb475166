"""``check_grads``: derivatives against float64 finite differences, as ``jax.test_util``.

Everything is evaluated by the NumPy reference interpreter in float64 (complex128 for complex
values; the function, its JVP and its VJP are traced to jaxprs first), so float32 rounding
never decides the result and the tolerances can be tight. Higher orders check the JVP and VJP
functions themselves, recursively.

Complex inputs get complex tangent directions, and the VJP is checked with JAX's pairing
``<u, v> = Re(sum(u * v))`` (no conjugate): reverse mode transposes the JVP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autodiff.dtypes import is_float, is_inexact
from autodiff.forward import jvp
from autodiff.interpret import interpret, to_numpy
from autodiff.reverse import vjp
from autodiff.staging import make_jaxpr
from autodiff.tracing import aval_of
from autodiff.tree import tree_flatten, tree_unflatten

DEFAULT_EPS = 1e-5
DEFAULT_TOL = 1e-5


def _eval64(fun: Callable, args: Sequence) -> list[np.ndarray]:
    """``fun(*args)`` via its jaxpr, in float64; args may hold float64 NumPy arrays (traced
    as float32) and :class:`_Typed` values (traced with their dtype)."""
    closed = make_jaxpr(fun)(*[_as_traceable(a) for a in args])
    flat, _ = tree_flatten(list(args))
    return interpret(closed, *flat)


def _as_traceable(tree):
    """Arguments for tracing: float64 stand-ins are replaced by placeholders of their avals."""
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(
        treedef,
        [
            _Shaped(np.shape(x), _dtype(x))
            if isinstance(x, (np.ndarray, np.generic, _Typed))
            else x
            for x in leaves
        ],
    )


class _Shaped:
    """A placeholder with a shape and dtype; tracing only needs the aval."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype: str):
        self.shape, self.dtype = tuple(shape), dtype


class _Typed:
    """Float64 values standing for an array of another float dtype (a tangent or cotangent
    of a float16 value, say): the interpreter computes every float in float64, so only the
    traced aval needs the dtype."""

    __slots__ = ("values", "dtype", "shape")

    def __init__(self, values, dtype: str):
        self.values, self.dtype = np.asarray(values, np.float64), dtype
        self.shape = self.values.shape

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def astype(self, dtype):  # the interpreter's to_numpy widens bfloat16 with astype
        return self.values


def _dtype(x) -> str:
    """The dtype ``x`` is traced with (float64 NumPy data stands for float32)."""
    if isinstance(x, _Typed):
        return x.dtype
    if isinstance(x, (np.ndarray, np.generic)):
        kind = x.dtype.kind
        return "float32" if kind == "f" else "complex64" if kind == "c" else str(x.dtype)
    return aval_of(x).dtype


def _typed(values: np.ndarray, dtype: str):
    """``values`` standing for an array of ``dtype`` (plain NumPy for non-floats)."""
    return _Typed(values, dtype) if is_float(dtype) and values.dtype.kind == "f" else values


def _leaves64(args):
    leaves, treedef = tree_flatten(list(args))
    return [to_numpy(x) for x in leaves], treedef


def _random_like(leaves, rng):
    out = []
    for x in leaves:
        if x.dtype.kind == "c":
            out.append(rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
        elif x.dtype.kind == "f":
            out.append(rng.standard_normal(x.shape))
        else:
            out.append(np.zeros(x.shape, x.dtype))
    return out


def _inner(xs, ys) -> float:
    """``Re(sum(x * y))`` over the inexact leaves: JAX's pairing of cotangents and tangents."""
    return float(
        sum(
            np.sum(np.real(np.asarray(x) * np.asarray(y)))
            for x, y in zip(xs, ys)
            if np.asarray(x).dtype.kind in "fc"
        )
    )


def _assert_close(actual, expected, atol, rtol, what):
    for a, e in zip(actual, expected):
        kind = np.asarray(a).dtype.kind + np.asarray(e).dtype.kind
        t = np.complex128 if "c" in kind else np.float64
        a, e = np.asarray(a, t), np.asarray(e, t)
        if not np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
            err = np.max(np.abs(a - e))
            raise AssertionError(
                f"{what} mismatch (max abs error {err:.3g}, atol={atol}, rtol={rtol}):\n  got      {a}\n  expected {e}"
            )


def numerical_jvp(fun: Callable, args: Sequence, tangents: Sequence, eps: float = DEFAULT_EPS):
    """Central differences of ``fun`` at ``args`` along ``tangents``, in float64."""
    leaves, treedef = _leaves64(args)
    dtypes = [_dtype(x) for x in tree_flatten(list(args))[0]]
    plus = [
        _typed(np.asarray(x + eps * t), d) if x.dtype.kind in "fc" else x
        for x, t, d in zip(leaves, tangents, dtypes)
    ]
    minus = [
        _typed(np.asarray(x - eps * t), d) if x.dtype.kind in "fc" else x
        for x, t, d in zip(leaves, tangents, dtypes)
    ]
    rebuild = lambda ls: tree_unflatten(treedef, ls)
    f_plus = _eval64(fun, rebuild(plus))
    f_minus = _eval64(fun, rebuild(minus))
    return [
        (p - m) / (2 * eps) if p.dtype.kind in "fc" else np.zeros_like(p, np.float64)
        for p, m in zip(f_plus, f_minus)
    ]


def _split(fun, n):
    """``fun`` taking (primals..., extras...) as one flat tuple of pytrees."""
    return lambda *a: fun(a[:n], a[n:])


def check_jvp(
    fun: Callable, args: Sequence, atol=DEFAULT_TOL, rtol=DEFAULT_TOL, eps=DEFAULT_EPS, rng=None
):
    """Check ``jvp(fun)`` against central differences along a random tangent."""
    rng = rng or np.random.default_rng(0)
    leaves, treedef = _leaves64(args)
    tangents = _random_like(leaves, rng)
    n = len(args)
    dtypes = [_dtype(x) for x in tree_flatten(list(args))[0]]
    t_tree = list(tree_unflatten(treedef, [_typed(t, d) for t, d in zip(tangents, dtypes)]))
    auto = _eval64(_split(lambda p, t: jvp(fun, p, t)[1], n), list(args) + t_tree)
    numeric = numerical_jvp(fun, args, tangents, eps)
    _assert_close(auto, numeric, atol, rtol, f"JVP of {getattr(fun, '__name__', fun)}")
    return t_tree


def check_vjp(
    fun: Callable, args: Sequence, atol=DEFAULT_TOL, rtol=DEFAULT_TOL, eps=DEFAULT_EPS, rng=None
):
    """Check ``vjp(fun)`` against central differences: <vjp(u), v> == <u, J v>."""
    rng = rng or np.random.default_rng(1)
    leaves, treedef = _leaves64(args)
    tangents = _random_like(leaves, rng)
    outs = _eval64(fun, args)
    cts = _random_like(outs, rng)
    n = len(args)
    struct, out_dtypes = _out_structure(fun, args)
    ct_tree = tree_unflatten(
        struct,
        [
            c if c.dtype.kind == "c" else _typed(c.astype(np.float64), d)
            for c, d in zip(cts, out_dtypes)
        ],
    )
    auto = _eval64(_split(lambda p, ct: vjp(fun, *p)[1](ct[0]), n), list(args) + [ct_tree])
    numeric = numerical_jvp(fun, args, tangents, eps)
    lhs = _inner(auto, tangents)
    rhs = _inner(numeric, cts)
    scale = max(1.0, abs(lhs), abs(rhs))
    if not abs(lhs - rhs) <= atol * scale + rtol * scale:
        raise AssertionError(
            f"VJP of {getattr(fun, '__name__', fun)} fails the inner-product check: <vjp(u), v> = {lhs!r}, <u, J v> = {rhs!r}"
        )
    return ct_tree


def _out_structure(fun, args):
    struct = {}

    def record(*a):
        out = fun(*a)
        struct["tree"] = tree_flatten(out)[1]
        return out

    closed = make_jaxpr(record)(*[_as_traceable(a) for a in args])
    return struct["tree"], [a.dtype for a in closed.out_avals]


def check_grads(
    fun: Callable,
    args: Sequence,
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
):
    """Check ``fun``'s derivatives up to ``order`` against float64 finite differences.

    Like ``jax.test_util.check_grads``: "fwd" checks ``jvp`` against central differences,
    "rev" checks ``vjp`` by the inner-product identity, and each order above one repeats the
    checks on the JVP and VJP functions themselves. Everything runs through the NumPy
    interpreter in float64.

    Args:
        fun: a function of arrays (or pytrees of arrays).
        args: a tuple of arguments; integer leaves are held fixed.
        order: the highest derivative order to check.
        modes: "fwd", "rev" or both.
        atol, rtol: tolerances (default 1e-5 each), eps: the finite-difference step (1e-5).

    Raises:
        AssertionError: naming the mode and the mismatch.

    Example:
        >>> from autodiff.testing import check_grads
        >>> check_grads(lambda x: anp.sum(anp.tanh(x) ** 2), (mx.array([0.3, -1.2]),), order=3)
    """
    atol = DEFAULT_TOL if atol is None else atol
    rtol = DEFAULT_TOL if rtol is None else rtol
    eps = DEFAULT_EPS if eps is None else eps
    args = tuple(args)
    for x in tree_flatten(list(args))[0]:
        aval_of(x)  # a clear TypeError for non-array leaves
    rng = np.random.default_rng(0)

    def recurse(f, a, order):
        if "fwd" in modes:
            t = check_jvp(f, a, atol, rtol, eps, rng)
            if order > 1:
                n = len(a)
                recurse(_split(lambda p, tt: jvp(f, p, tt)[1], n), tuple(a) + tuple(t), order - 1)
        if "rev" in modes:
            ct = check_vjp(f, a, atol, rtol, eps, rng)
            if order > 1:
                n = len(a)
                recurse(_split(lambda p, c: vjp(f, *p)[1](c[0]), n), tuple(a) + (ct,), order - 1)

    if not any(is_inexact(aval_of(x).dtype) for x in tree_flatten(list(args))[0]):
        raise TypeError("check_grads: no floating-point argument to differentiate")
    recurse(fun, args, order)

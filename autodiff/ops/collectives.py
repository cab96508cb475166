"""Collectives over a named axis: ``psum``, ``pmax``, ``pmin``, ``all_gather``,
``psum_scatter`` and ``axis_index`` (primitives), and ``pmean`` (composite), as ``jax.lax``'s.

A collective names an axis (``axis_name``) that an enclosing ``ad.vmap(f, axis_name=...)`` or
``ad.spmd(f, axis_name=...)`` binds (``autodiff/named_axes.py``). The equation records the
name and the axis size, so it is self-contained:

- under ``vmap`` the named batching rules (``transforms/vmap.py``) turn it into ordinary
  array operations over the batch axis (``psum`` is a sum over the batch, ``axis_index`` the
  position in it), and it never reaches a program;
- under ``spmd`` it stays in the program and lowers to ``mx.distributed.all_sum`` /
  ``all_max`` / ``all_min`` / ``all_gather`` on the group bound to the name; outside any
  trace (``spmd(f)`` called eagerly on arrays) the wrappers call those functions directly.

The interpreter evaluates a collective in float64 through the same group (``mx.distributed``
on float64 CPU arrays), so each process interprets its own program and the processes
communicate; an axis of size 1 needs no group.

Derivatives: ``psum``, ``all_gather`` and ``psum_scatter`` are linear; ``pmax``/``pmin`` send
the tangent to the instances that hold the extremum, split equally between ties (as ``max``
does; JAX has no rule for them). Transposes follow JAX's: the transpose of ``psum`` is
``psum``, of ``all_gather`` is ``psum_scatter`` and the reverse.

Replicated and varying values. In JAX's ``shard_map`` (with ``check_vma``) the type of a value
says whether it is the same on every instance of an axis (invariant) or may differ (varying):
``psum`` of a varying value is invariant, an invariant value used where a varying one is
expected is implicitly ``pvary``-ed, and their transposes swap: the transpose of ``psum`` is
then ``pvary`` (no communication) and that of ``pvary`` is ``psum``. An invariant result is one
value, counted once. We track no such types (as ``pmap`` and ``shard_map(check_vma=False)``):
every value is varying, each instance's copy of a replicated result is its own output, and so
``psum`` stands for "psum then broadcast", whose transpose is ``psum`` again. Consequence:
``grad(lambda x: psum(x, "i"))`` is ``n`` on each instance, not 1 (the derivative of the sum of
the n copies), and a gradient with respect to parameters shared by all instances is the local
one, to be averaged explicitly (``pmean``, ``ad.distributed.average_gradients``). Both
interpretations (vmap and spmd) give the same numbers. (MLX's own ``all_sum`` passes the
cotangent through unchanged, the invariant reading; ``mx.grad`` therefore differs by the
factor ``n``; its rules for ``all_max``/``all_min`` ignore which process held the extremum,
``sum_scatter`` has no VJP, and ``mx.vmap`` of ``all_gather`` gathers along the batch axis.)

Batching rules: ``collectives_vmap.py``; lowering, eager calls and interpreter:
``collectives_mlx.py``. The group of a lowered program: see ``autodiff/named_axes.py``. ``psum_scatter`` lowers to
``all_sum`` and a slice at this process's rank (``mx.distributed.sum_scatter`` exists only on
some backends: the ring and MPI backends raise), so it moves as many bytes as an all-reduce.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax as L
from autodiff.dtypes import is_bool, is_complex
from autodiff.extend import (
    Zero,
    bind,
    def_primitive,
    deflinear,
    defzero,
    jvp_rules,
    mark_linear,
    transpose_rules,
)
from autodiff.ir import ShapedArray
from autodiff.named_axes import lookup
from autodiff.tracing import aval_of, is_tracing
from autodiff.tree import tree_map

# ---------------------------------------------------------------------------------------------
# Primitives and shape rules

# prim -> the MLX function computing it on one process, ``f(*arrays, group, **params)``: what
# the wrappers call outside traces (filled by collectives_mlx.py, with the lowering).
eager: dict = {}


def _reduce_rule(ok, what):
    def rule(x, *, axis_name, axis_size):
        if not ok(x.dtype):
            raise TypeError(f"expects {what} operand, got {x.str_short()}")
        return [x]

    return rule


def _all_gather_rule(x, *, axis_name, axis_size, axis, tiled):
    if tiled:
        if not 0 <= axis < x.ndim:
            raise ValueError(f"axis {axis} is out of range for a tiled gather of {x.str_short()}")
        return [x.update(shape=x.shape[:axis] + (axis_size * x.shape[axis],) + x.shape[axis + 1 :])]
    if not 0 <= axis <= x.ndim:
        raise ValueError(f"axis {axis} is out of range for a gather of {x.str_short()}")
    return [x.update(shape=x.shape[:axis] + (axis_size,) + x.shape[axis:])]


def _psum_scatter_rule(x, *, axis_name, axis_size, scatter_dimension, tiled):
    s, n = scatter_dimension, axis_size
    if is_bool(x.dtype):
        raise TypeError(f"expects a numeric operand, got {x.str_short()}")
    if not 0 <= s < x.ndim:
        raise ValueError(f"scatter_dimension {s} is out of range for {x.str_short()}")
    if tiled:
        if x.shape[s] % n:
            raise ValueError(
                f"with tiled=True, axis {s} of {x.str_short()} must be divisible by the "
                f"size {n} of axis {axis_name!r}"
            )
        return [x.update(shape=x.shape[:s] + (x.shape[s] // n,) + x.shape[s + 1 :])]
    if x.shape[s] != n:
        raise ValueError(
            f"axis {s} of {x.str_short()} must have the size {n} of axis "
            f"{axis_name!r} (or pass tiled=True to split it into {n} blocks)"
        )
    return [x.update(shape=x.shape[:s] + x.shape[s + 1 :])]


def _axis_index_rule(*, axis_name, axis_size):
    return [ShapedArray((), "int32")]


psum_p = def_primitive("psum", "collective", _reduce_rule(lambda d: not is_bool(d), "a numeric"))
pmax_p = def_primitive("pmax", "collective", _reduce_rule(lambda d: not is_complex(d), "a real"))
pmin_p = def_primitive("pmin", "collective", _reduce_rule(lambda d: not is_complex(d), "a real"))
all_gather_p = def_primitive("all_gather", "collective", _all_gather_rule)
psum_scatter_p = def_primitive("psum_scatter", "collective", _psum_scatter_rule)
axis_index_p = def_primitive("axis_index", "collective", _axis_index_rule)

# ---------------------------------------------------------------------------------------------
# The functions users call (jax.lax's signatures; pytrees of arrays)


def _collective(prim, x, axis_name, **params):
    frame = lookup(axis_name, prim.name)
    if not is_tracing():  # spmd(f) called on arrays: communicate now
        args = () if x is None else (x if isinstance(x, mx.array) else mx.array(x),)
        return eager[prim](*args, frame.group, **params)
    args = () if x is None else (x,)
    return bind(prim, *args, axis_name=axis_name, axis_size=frame.size, **params)


def _no_bool(x):
    """Booleans are summed as int32, as in JAX."""
    return x.astype(mx.int32) if is_bool(aval_of(x).dtype) else x


def psum(x, axis_name):
    """Sum ``x`` (a pytree of arrays) over the instances of the named axis ``axis_name``.

    Booleans are summed as int32. Under ``ad.vmap(..., axis_name=name)`` the sum runs over
    the batch; under ``ad.spmd(..., axis_name=name)`` over the processes
    (``mx.distributed.all_sum``).

    Example:
        >>> ad.vmap(lambda x: x / ad.lax.psum(x, "i"), axis_name="i")(mx.arange(4.0))
        array([0, 0.166667, 0.333333, 0.5], dtype=float32)
    """
    return tree_map(lambda v: _collective(psum_p, _no_bool(v), axis_name), x)


def pmean(x, axis_name):
    """The mean of ``x`` over the instances of ``axis_name``: ``psum(x) / size`` (integers
    give float32, as true division does)."""
    size = lookup(axis_name, "pmean").size
    return tree_map(lambda s: s / size, psum(x, axis_name))


def pmax(x, axis_name):
    """The maximum of ``x`` over the instances of ``axis_name`` (``mx.distributed.all_max``).
    Its derivative goes to the instances holding the maximum, split equally between ties."""
    return tree_map(lambda v: _collective(pmax_p, v, axis_name), x)


def pmin(x, axis_name):
    """The minimum of ``x`` over the instances of ``axis_name`` (``mx.distributed.all_min``)."""
    return tree_map(lambda v: _collective(pmin_p, v, axis_name), x)


def all_gather(x, axis_name, *, axis: int = 0, tiled: bool = False):
    """Every instance's ``x``, stacked along a new axis ``axis`` of the size of ``axis_name``
    (or, with ``tiled=True``, concatenated along the existing ``axis``), on every instance.

    Example:
        >>> ad.vmap(lambda x: ad.lax.all_gather(x, "i"), axis_name="i")(mx.arange(3.0))[0]
        array([0, 1, 2], dtype=float32)
    """

    def one(v):
        ndim = len(aval_of(v).shape)
        a = axis + (ndim if tiled else ndim + 1) if axis < 0 else axis
        return _collective(all_gather_p, v, axis_name, axis=a, tiled=bool(tiled))

    return tree_map(one, x)


def psum_scatter(x, axis_name, *, scatter_dimension: int = 0, tiled: bool = False):
    """``psum(x)`` split along ``scatter_dimension`` among the instances: instance ``i`` gets
    block ``i`` (that axis has the size of ``axis_name``, or with ``tiled=True`` a multiple of
    it, and is removed, or with ``tiled=True`` divided)."""

    def one(v):
        v = _no_bool(v)
        s = scatter_dimension % max(len(aval_of(v).shape), 1)
        return _collective(psum_scatter_p, v, axis_name, scatter_dimension=s, tiled=bool(tiled))

    return tree_map(one, x)


def axis_index(axis_name):
    """This instance's int32 position along ``axis_name``: the index in the batch under
    ``vmap``, the process's rank in the group under ``spmd``."""
    return _collective(axis_index_p, None, axis_name)


# ---------------------------------------------------------------------------------------------
# JVP and transpose rules

for _p in (psum_p, all_gather_p, psum_scatter_p):
    deflinear(_p)
defzero(axis_index_p)


def _extremum_jvp(prim):
    def rule(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        out = bind(prim, x, **params)
        if type(t) is Zero:
            return out, Zero(aval_of(out))
        mask = L.convert(L.eq(x, out), aval_of(x).dtype)
        count = bind(psum_p, mask, **params)
        return out, L.div(bind(psum_p, L.mul(t, mask), **params), count)

    return rule


jvp_rules[pmax_p] = _extremum_jvp(pmax_p)
jvp_rules[pmin_p] = _extremum_jvp(pmin_p)


def _psum_t(ct, x, axis_name, axis_size):
    return [bind(psum_p, ct, axis_name=axis_name, axis_size=axis_size)]


def _all_gather_t(ct, x, axis_name, axis_size, axis, tiled):
    p = dict(axis_name=axis_name, axis_size=axis_size, scatter_dimension=axis, tiled=tiled)
    return [bind(psum_scatter_p, ct, **p)]


def _psum_scatter_t(ct, x, axis_name, axis_size, scatter_dimension, tiled):
    p = dict(axis_name=axis_name, axis_size=axis_size, axis=scatter_dimension, tiled=tiled)
    return [bind(all_gather_p, ct, **p)]


transpose_rules[psum_p] = _psum_t
transpose_rules[all_gather_p] = _all_gather_t
transpose_rules[psum_scatter_p] = _psum_scatter_t
mark_linear(psum_p, all_gather_p, psum_scatter_p)

# The batching rules (named and not), and the lowering, the eager calls and the interpreter
# (which fill ``eager``).
from autodiff.ops import collectives_mlx, collectives_vmap  # noqa: E402, F401

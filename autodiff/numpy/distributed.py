"""``anp.distributed``: ``mx.distributed``'s collectives on traced values, so MLX code that
communicates (``mlx.nn.average_gradients``, a hand-written ``mx.distributed.all_sum``) traces
under ``ad.jit`` and ``ad.grad``: while tracing, ``mx.distributed.all_sum`` and the others are
routed here, and record the collectives of ``autodiff/ops/collectives.py``.

MLX names a group where autodiff names an axis; the axis is found from the group:

- the innermost ``ad.spmd`` whose group is ``group`` (for ``group=None``, or a group spanning
  every process, as ``mlx.nn.average_gradients`` passes: the innermost ``spmd`` over all
  processes);
- otherwise, for all processes, the implicit axis :data:`WORLD` (``"mx.distributed"``), bound to
  ``mx.distributed.init()``'s group, so a jitted step calling ``mx.distributed.all_sum`` needs
  no ``spmd`` at all.

``all_gather`` concatenates along the first axis and ``sum_scatter`` splits it, as in MLX
(``all_gather(..., tiled=True)`` and ``psum_scatter(..., tiled=True)``; a scalar is gathered
into a vector). On concrete arrays each function calls ``mx.distributed`` itself.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff.named_axes import bind_group, default_group, spmd_frames
from autodiff.numpy._core import mirror
from autodiff.ops import collectives as C
from autodiff.tracing import aval_of, bind

WORLD = "mx.distributed"


def _same_processes(a, b) -> bool:
    return a is b or (a.size() == b.size() and a.rank() == b.rank())


def _axis(group, what: str):
    world = default_group()
    everyone = group is None or _same_processes(group, world)
    for frame in reversed(spmd_frames()):
        if frame.group is group or (everyone and _same_processes(frame.group, world)):
            return frame.name, frame.size
    if not everyone:
        raise ValueError(
            f"[mx.distributed.{what}] a traced value is reduced over a group of "
            f"{group.size()} processes that no enclosing `ad.spmd` binds: wrap the function "
            "in `ad.spmd(f, axis_name=..., group=group)` (or use `ad.lax` collectives)"
        )
    bind_group(WORLD, world)
    return WORLD, world.size()


def _bind(prim, x, what, group, **params):
    name, size = _axis(group, what)
    if aval_of(x).dtype == "bool" and prim in (C.psum_p, C.psum_scatter_p):
        # MLX sums booleans as a logical or
        return _bind(prim, x.astype(mx.int32), what, group, **params) != 0
    return bind(prim, x, axis_name=name, axis_size=size, **params)


@mirror(mx.distributed.all_sum)
def all_sum(x, *, group=None):
    return _bind(C.psum_p, x, "all_sum", group)


@mirror(mx.distributed.all_max)
def all_max(x, *, group=None):
    return _bind(C.pmax_p, x, "all_max", group)


@mirror(mx.distributed.all_min)
def all_min(x, *, group=None):
    return _bind(C.pmin_p, x, "all_min", group)


@mirror(mx.distributed.all_gather)
def all_gather(x, *, group=None):
    tiled = len(aval_of(x).shape) > 0
    return _bind(C.all_gather_p, x, "all_gather", group, axis=0, tiled=tiled)


@mirror(mx.distributed.sum_scatter)
def sum_scatter(x, *, group=None):
    return _bind(C.psum_scatter_p, x, "sum_scatter", group, scatter_dimension=0, tiled=True)

"""Running across processes: ``spmd`` (one program per process, a named axis bound to an
``mx.distributed`` group) and data-parallel training on it.

The model is MLX's: ``mlx.launch -n 4 python train.py`` starts one process per rank (ring over
TCP, MPI, or NCCL on CUDA machines), each process runs the same program on its own part of
the data, and the gradients are averaged with an all-reduce. What autodiff adds is that the
all-reduce is an equation of the traced program (``ad.lax.psum``), so it is differentiated,
optimised and compiled with the rest of the step, and that the same function runs on one
process under ``ad.vmap(f, axis_name=...)`` with the same numbers (the axis of the vmap stands
for the processes).

Example (``mlx.launch -n 2 --backend ring python train.py``):

    >>> import autodiff as ad
    >>> step = ad.distributed.train_step(model, optimizer, loss_fn)   # jitted, data-parallel
    >>> for x, y in batches:                                          # this process's shard
    ...     loss = step(x, y)                                         # the global mean loss
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

from autodiff.dtypes import DTYPES
from autodiff.jit import clear_caches, jit
from autodiff.named_axes import axis_frame, bind_group, default_group, lookup
from autodiff.ops.collectives import psum
from autodiff.tracing import aval_of
from autodiff.tree import tree_flatten, tree_unflatten

DEFAULT_BUCKET_BYTES = 32 * 1024**2  # mlx.nn.average_gradients' all_reduce_size


def spmd(fun: Callable, axis_name: Hashable = "data", group: Any = None) -> Callable:
    """``fun`` as one program per process, with ``axis_name`` bound to a process group.

    Each process calls the result on its own arguments (its shard of the data); collectives
    in ``fun`` over ``axis_name`` (``ad.lax.psum``, ``pmean``, ``all_gather``, ``axis_index``...)
    act across the processes of ``group`` (default: ``mx.distributed.init()``'s, the processes
    ``mlx.launch`` started; a single process without a launcher is a group of one). Like
    ``jax.shard_map`` with every argument and result split along the named axis, except that
    the split is the processes' own: nothing is scattered or gathered for you.

    ``spmd`` itself transforms nothing: ``fun`` runs with the name bound. Called on arrays it
    runs eagerly (collectives call ``mx.distributed`` at once); under ``ad.jit`` or any
    transform it is traced, and the collectives become equations that are differentiated,
    batched and lowered to ``mx.distributed`` calls on the group (the compiled program refers
    to it; see ``autodiff/named_axes.py``). ``ad.vmap(fun, axis_name=axis_name)`` on one process,
    with a batch of the inputs all processes would get, gives the same numbers.

    Args:
        fun: the per-process function.
        axis_name: the name collectives in ``fun`` use for the processes.
        group: an ``mx.distributed.Group``; None for ``mx.distributed.init()``'s.

    Example:
        >>> @ad.jit
        ... @functools.partial(ad.spmd, axis_name="data")
        ... def global_mean(x):                 # x: this process's rows
        ...     return ad.lax.pmean(x.mean(), "data")
    """

    @functools.wraps(fun, updated=())
    def spmd_f(*args, **kwargs):
        g = group if group is not None else default_group()
        if bind_group(axis_name, g):
            clear_caches()  # compiled programs refer to the group the name was bound to
        with axis_frame(axis_name, g.size(), g):
            return fun(*args, **kwargs)

    return spmd_f


def average_gradients(
    grads: Any, axis_name: Hashable = "data", bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> Any:
    """The mean of ``grads`` (a pytree of arrays) over ``axis_name``, in few all-reduces.

    As ``mlx.nn.average_gradients``: arrays of one dtype are flattened and concatenated into
    buckets of about ``bucket_bytes`` (a bucket is closed once it reaches that size), each
    bucket is summed with one ``psum`` and split back. Traced (in a jitted step) the buckets
    are equations of the program, so concatenation, all-reduce and split are compiled with
    the step; eagerly under ``spmd`` they run at once. ``bucket_bytes <= 0``: one all-reduce
    per array. Under ``ad.vmap(..., axis_name=...)`` it averages over the batch instead.

    Args:
        grads: gradients (any pytree of arrays: dicts, lists, ``mlx.nn`` parameter trees).
        axis_name: the axis to average over, bound by ``ad.spmd`` or ``ad.vmap``.
        bucket_bytes: the bucket size in bytes (32 MiB, as MLX's).

    Example:
        >>> loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
        >>> loss, grads = ad.distributed.average_gradients((loss, grads), "data")
    """
    import autodiff.numpy as anp

    size = lookup(axis_name, "average_gradients").size
    leaves, tree = tree_flatten(grads)
    if size == 1 or not leaves:
        return grads
    out: list = [None] * len(leaves)
    for bucket in buckets([aval_of(x) for x in leaves], bucket_bytes):
        if len(bucket) == 1:
            (i,) = bucket
            out[i] = psum(leaves[i], axis_name) / size
            continue
        flat = anp.concatenate([anp.reshape(leaves[i], (-1,)) for i in bucket])
        total = psum(flat, axis_name) / size
        start = 0
        for i in bucket:
            shape = aval_of(leaves[i]).shape
            n = 1
            for d in shape:
                n *= d
            out[i] = anp.reshape(total[start : start + n], shape)
            start += n
    return tree_unflatten(tree, out)


def buckets(avals, bucket_bytes: int) -> list[list[int]]:
    """Indices of arrays grouped for one all-reduce each: by dtype, in order, a bucket closed
    once it holds ``bucket_bytes`` (every array alone if ``bucket_bytes <= 0``)."""
    if bucket_bytes <= 0:
        return [[i] for i in range(len(avals))]
    open_: dict[str, tuple[list[int], int]] = {}
    done: list[list[int]] = []
    for i, a in enumerate(avals):
        idx, nbytes = open_.get(a.dtype, ([], 0))
        idx.append(i)
        nbytes += a.size * _itemsize(a.dtype)
        if nbytes >= bucket_bytes:
            done.append(idx)
            open_.pop(a.dtype, None)
        else:
            open_[a.dtype] = (idx, nbytes)
    return sorted(done + [idx for idx, _ in open_.values()], key=lambda b: b[0])


def _itemsize(dtype: str) -> int:
    return DTYPES[dtype].bits // 8


def train_step(
    model,
    optimizer,
    loss_fn: Callable,
    axis_name: Hashable = "data",
    group: Any = None,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
) -> Callable:
    """A compiled data-parallel training step for an ``mlx.nn`` model and an
    ``mlx.optimizers`` optimizer.

    ``step(*batch)`` computes ``loss_fn(model, *batch)`` and its gradient on this process's
    shard of the batch, averages loss and gradients over the processes of ``group``
    (``average_gradients``: one all-reduce per bucket, the loss riding in the first), updates
    the model and the optimizer in place, and returns the mean loss over the processes. It is
    one program (``ad.jit`` with the model's and optimizer's state captured): the all-reduces
    are compiled with the forward and backward pass. With equal shards on every process the
    update equals the single-process update on the whole batch.

    Args:
        model: an ``mlx.nn.Module``.
        optimizer: an ``mlx.optimizers.Optimizer``.
        loss_fn: ``loss_fn(model, *batch) -> scalar`` (a mean over the shard's examples).
        axis_name: the name of the process axis inside the step.
        group: an ``mx.distributed.Group``; None for ``mx.distributed.init()``'s.
        bucket_bytes: gradient bucket size for the all-reduces.

    Example:
        >>> step = ad.distributed.train_step(model, optim.Adam(1e-3), loss_fn)
        >>> loss = step(x_local, y_local)
    """
    from autodiff.mlx.nn import value_and_grad

    state = [model.state, optimizer.state]
    loss_and_grad = value_and_grad(model, loss_fn)

    def step(*batch):
        loss, grads = loss_and_grad(model, *batch)
        loss, grads = average_gradients((loss, grads), axis_name, bucket_bytes)
        optimizer.update(model, grads)
        return loss

    return jit(spmd(step, axis_name, group), inputs=state, outputs=state)


__all__ = ["DEFAULT_BUCKET_BYTES", "average_gradients", "buckets", "spmd", "train_step"]

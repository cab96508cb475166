"""MLX's function transforms, with MLX's signatures and conventions, on autodiff's engine.

The differences from autodiff's JAX-style API are MLX's: ``argnums`` default to 0 and
gradients come back in sorted argument order, ``argnames`` differentiate keyword arguments,
``fun`` may return ``(loss, *extras)`` with the gradient of ``loss``, ``vjp``/``jvp`` take and
return lists, and for complex inputs gradients are the conjugates of JAX's (MLX's convention).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import mlx.core as _mx

from autodiff import forward as _forward
from autodiff import reverse as _reverse
from autodiff.batching import vmap as _vmap
from autodiff.control.remat import checkpoint as _checkpoint
from autodiff.jit import jit as _jit
from autodiff.tracing import Tracer, aval_of
from autodiff.tree import tree_flatten, tree_map, tree_unflatten


def _conj(tree):
    """MLX's convention for complex gradients: the conjugate of JAX's (and ours)."""
    from autodiff.dtypes import is_complex

    def c(x):
        if (
            x is not None
            and (type(x) is Tracer or hasattr(x, "dtype"))
            and is_complex(aval_of(x).dtype)
        ):
            return _mx.conj(x)
        return x

    return tree_map(c, tree)


def value_and_grad(
    fun: Callable, argnums: int | Sequence[int] | None = None, argnames: str | Sequence[str] = ()
) -> Callable:
    """``(fun(*args), gradient)``, as ``mx.value_and_grad``: ``fun`` returns a scalar loss or
    a tuple whose first element is one; the gradient is of the loss.

    Example:
        >>> loss, grads = mx.value_and_grad(mse)(params, inputs, targets)
    """
    names = [argnames] if isinstance(argnames, str) else list(argnames)
    if argnums is None:
        argnums = 0 if not names else []
    single = isinstance(argnums, int)
    nums = [argnums] if single else sorted(argnums)

    @functools.wraps(fun, updated=())
    def wrapped(*args, **kwargs):
        nargs = len(args)
        canon = [n % nargs if nargs else n for n in nums]
        kw_diff = {k: kwargs[k] for k in names}
        kw_rest = {k: v for k, v in kwargs.items() if k not in names}

        def f(diff_args, diff_kw):
            full = list(args)
            for i, a in zip(canon, diff_args):
                full[i] = a
            out = fun(*full, **kw_rest, **diff_kw)
            loss = out[0] if isinstance(out, (tuple, list)) else out
            return loss, out

        (_, value), (g_pos, g_kw) = _reverse.value_and_grad(f, argnums=(0, 1), has_aux=True)(
            tuple(args[i] for i in canon), kw_diff
        )
        g_pos, g_kw = _conj(g_pos), _conj(g_kw)
        positional = g_pos[0] if single else (tuple(g_pos) if canon else None)
        return value, ((positional, g_kw) if names else positional)

    return wrapped


def grad(
    fun: Callable, argnums: int | Sequence[int] | None = None, argnames: str | Sequence[str] = ()
) -> Callable:
    """The gradient of ``fun``'s (first) output, as ``mx.grad``.

    Example:
        >>> dfdx = mx.grad(lambda x: mx.sum(mx.sin(x)))(mx.array([0.5, 1.0]))
    """
    vg = value_and_grad(fun, argnums, argnames)

    @functools.wraps(fun, updated=())
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def vjp(fun: Callable, primals: Sequence, cotangents: Sequence):
    """``(outputs, vjps)``, lists, as ``mx.vjp``.

    Example:
        >>> outs, vjps = mx.vjp(lambda x: x * x, [mx.array(3.0)], [mx.array(1.0)])
    """
    outs, vjp_fn = _reverse.vjp(lambda *p: _as_list(fun(*p)), *primals)
    cts = vjp_fn(_conj(list(cotangents)))
    return outs, list(_conj(list(cts)))


def jvp(fun: Callable, primals: Sequence, tangents: Sequence):
    """``(outputs, jvps)``, lists, as ``mx.jvp``.

    Example:
        >>> outs, jvps = mx.jvp(lambda x: x * x, [mx.array(3.0)], [mx.array(1.0)])
    """
    outs, t_outs = _forward.jvp(lambda *p: _as_list(fun(*p)), list(primals), list(tangents))
    return outs, t_outs


def vmap(fun: Callable, in_axes=0, out_axes=0) -> Callable:
    """Vectorise ``fun``, as ``mx.vmap`` (``in_axes`` may be a list, one entry per argument).

    Example:
        >>> mx.vmap(lambda a, b: a @ b, in_axes=[0, None])(xs, w)
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(out_axes, list):
        out_axes = tuple(out_axes)
    return _vmap(fun, in_axes=in_axes, out_axes=out_axes)


def checkpoint(fun: Callable) -> Callable:
    """Recompute ``fun``'s intermediate values in the backward pass, as ``mx.checkpoint``."""
    return _checkpoint(fun)


def compile(fun: Callable, inputs=None, outputs=None, shapeless: bool = False) -> Callable:
    """Compile ``fun``, as ``mx.compile``: arrays in ``inputs`` are captured as implicit inputs
    and the arrays in ``outputs`` written back after each call (model and optimizer state);
    non-array arguments (Python numbers, strings) are constants, and a new value recompiles.

    ``shapeless=True`` is accepted; programs are still specialised to input shapes (a new
    shape traces again), so it only costs a retrace where MLX would not need one.

    Example:
        >>> state = [model.state, optimizer.state]
        >>> @partial(mx.compile, inputs=state, outputs=state)
        ... def step(x, y):
        ...     loss, grads = loss_and_grad_fn(model, x, y)
        ...     optimizer.update(model, grads)
        ...     return loss
    """
    jitted: dict = {}

    @functools.wraps(fun, updated=())
    def compiled(*args, **kwargs):
        leaves, tree = tree_flatten((args, kwargs))
        static = tuple((i, x) for i, x in enumerate(leaves) if not _is_array(x))
        key = (tree, static)
        j = jitted.get(key)
        if j is None:
            fixed = dict(static)

            def f(*dyn):
                it = iter(dyn)
                full = [fixed[i] if i in fixed else next(it) for i in range(len(leaves))]
                a, k = tree_unflatten(tree, full)
                return fun(*a, **k)

            j = jitted[key] = _jit(f, inputs=inputs, outputs=outputs)
        return j(*[x for x in leaves if _is_array(x)])

    return compiled


def _is_array(x) -> bool:
    return type(x) is Tracer or isinstance(x, _mx.array) or type(x).__module__ == "numpy"

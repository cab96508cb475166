"""In-place updates of traced arrays: ``x[idx] = y``, ``x += y`` and the other in-place
operators, with MLX's semantics.

An ``mx.array`` is mutable: ``x[idx] = y`` and ``x += y`` replace the value the array object
holds (``overwrite_descriptor``), so every Python alias of the object sees the new value, while
arrays computed from ``x`` before keep the old one (slices are copies, not views). A traced
value behaves the same: the update records the new value in the trace and the same
:class:`~autodiff.tracing.Tracer` object stands for it from then on. The IR stays functional;
only the Python object is rebound::

    def f(x):
        y = x * 1.0
        z = y            # an alias: sees the update
        w = y[0]         # computed before: keeps the old value
        y[0] = 5.0       # y and z now hold the updated array
        y += 1.0         # in place too (MLX's __iadd__); x is untouched
        return z, w

``ad.grad``, ``ad.vmap`` and the rest differentiate and batch the update like any other
operation, so ``out = mx.zeros_like(x); out[1:] = x[:-1] * 2`` traces as it runs in MLX.

**Updates across transforms.** A tracer belongs to the trace that made it. When a function
being transformed inside another transform (``ad.grad`` of a closure, say) updates a tracer of
an *enclosing* trace, MLX would change that array for good, so the update is recorded in the
enclosing trace, where the array lives: after the inner transform returns, the outer function
sees the new value, and what the inner function captured before the update keeps the old one
(constants are captured by value, see ``Builder.const_var``). The new value is computed in
the inner trace like any other, then the equations it needs are replayed in the enclosing one
(so ``y[1] = y[1] * 3`` works there). That needs the new value to depend only on constants and
values of the enclosing traces; one that depends on the inner function's arguments (what the
inner transform differentiates or batches) does not exist in the outer trace, and the update
raises :class:`~autodiff.errors.UnexpectedTracerError`: return the value from the inner
function instead, or update a copy made inside it (``y = x + 0``). As with ``mx.compile`` and
``jax.jit``, an update inside an ``ad.jit`` function happens when it is traced, not on calls
that reuse the compiled program.
"""

from __future__ import annotations

from collections.abc import Callable

from autodiff.errors import UnexpectedTracerError, user_location
from autodiff.ir import Literal
from autodiff.primitives import broadcast_in_dim
from autodiff.tracing import (
    Tracer,
    _check_enclosing,
    aval_of,
    bind,
    binding_in,
    live_builders,
    rebind,
)


def update_in_place(x: Tracer, compute: Callable, what: str) -> Tracer:
    """Make ``x`` stand for ``compute()``, a new value computed from ``x`` (and anything
    else), in ``x``'s own trace. Returns ``x``. ``what`` names the operation in errors.

    ``compute`` runs in the innermost trace, like any operation; if ``x`` belongs to an
    enclosing trace, the equations the new value needs are then replayed there
    (:func:`_hoist`), which fails if they depend on an input of an inner trace.
    """
    target = x.builder
    live = live_builders()
    if not target.alive or not any(b is target for b in live):
        _check_enclosing(x, None)  # raises: the trace of x has finished
    new = compute()
    if target is not live[-1]:
        new = _hoist(new, target, what)
    with binding_in(target):
        rebind(x, _own(new, target))
    return x


def _own(v, builder):
    """``v`` as a tracer of ``builder`` (an identity equation if it is a constant or an
    outer tracer)."""
    if type(v) is Tracer and v.builder is builder:
        return v
    shape = aval_of(v).shape
    return bind(broadcast_in_dim, v, shape=shape, broadcast_dimensions=tuple(range(len(shape))))


def _hoist(v, target, what: str):
    """``v``, a value of an inner trace, recomputed in the enclosing trace ``target``: the
    equations it depends on are replayed there, its constants resolved to what they captured
    (themselves hoisted if they belong to a trace in between)."""
    if type(v) is not Tracer or id(v.builder) in _ancestors(target):
        return v
    b = v.builder
    producers = {o: e for e in b.eqns for o in e.outputs}
    consts = dict(zip(b.constvars, b.const_vals))
    inputs = set(b.invars)
    env: dict = {}

    def value(a):
        if type(a) is Literal:
            return a
        if a in env:
            return env[a]
        if a in inputs:
            raise UnexpectedTracerError(
                f"`{what}` updates an array of the trace of `{target.fun_name}` (by "
                f"`{target.transform}`) with a value that depends on the arguments of "
                f"`{b.fun_name}` (traced by `{b.transform}`), {user_location()}\nThe array "
                "lives in the enclosing trace, where that value does not exist (MLX would "
                "keep a value of the inner transform in it). Return the value from the inner "
                "function instead, or update a copy made inside it (`y = x + 0`, then "
                "`y[...] = ...`)."
            )
        if a in consts:
            env[a] = _hoist(consts[a], target, what)
            return env[a]
        eqn = producers[a]
        ins = [value(i) for i in eqn.inputs]
        with binding_in(target):
            outs = bind(eqn.prim, *ins, **eqn.params)
        env.update(zip(eqn.outputs, outs if eqn.prim.multiple_results else [outs]))
        return env[a]

    return value(v.ir_var)


def _ancestors(b) -> set:
    seen = set()
    while b is not None:
        seen.add(id(b))
        b = b.parent
    return seen

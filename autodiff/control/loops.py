"""``while_loop`` and ``fori_loop``.

The primitive ``while`` takes ``(*cond_consts, *body_consts, *init)`` and params ``cond_jaxpr``
(``(cond_consts, carry) -> bool``), ``body_jaxpr`` (``(body_consts, carry) -> carry``),
``cond_nconsts``, ``body_nconsts``. Its rules: JVP (tangent carries as a fixpoint), batching (a
batched predicate runs until every example is done, freezing the finished ones with a select),
DCE, invariant hoisting, and lowering to a Python ``while`` on the evaluated predicate; they
live in ``autodiff/control/while_rules.py``.

Reverse mode needs the values of every iteration, which an unbounded loop cannot store: with
``max_steps=N`` the loop is a ``scan`` of N guarded steps instead, with the steps checkpointed
in blocks of about sqrt(N), so reverse mode stores O(sqrt N) carries (see :func:`while_loop`).
``fori_loop`` with concrete bounds is a ``scan`` (reverse mode works); with traced bounds it is a
``while``.
"""

from __future__ import annotations

import math

from autodiff import lax as L
from autodiff.control.common import check_same_types, trace_sub
from autodiff.control.scan_rules import opened
from autodiff.extend import bind, def_primitive
from autodiff.ir import ClosedJaxpr, ShapedArray
from autodiff.tracing import Tracer, aval_of, inline, is_tracing, trace_flat
from autodiff.transforms import optimize
from autodiff.tree import tree_flatten, tree_unflatten

_BOOL = ShapedArray((), "bool")


def _while_rule(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc = args[:cond_nconsts], args[cond_nconsts : cond_nconsts + body_nconsts]
    carry = list(args[cond_nconsts + body_nconsts :])
    if cond_jaxpr.in_avals != list(cc) + carry or cond_jaxpr.out_avals != [_BOOL]:
        raise TypeError("the predicate must take the carry and return a boolean scalar")
    if body_jaxpr.in_avals != list(bc) + carry or body_jaxpr.out_avals != carry:
        raise TypeError("the body must take the carry and return the carry's types")
    return carry


while_p = def_primitive("while", "control", _while_rule, multiple_results=True)


def while_(cond: ClosedJaxpr, body: ClosedJaxpr, cc, bc, init) -> list:
    """Bind ``while`` (the typed wrapper): predicate and body jaxprs (their consts become
    operands), the predicate's and body's extra operands, and the initial carry."""
    return _bind_while(cond, body, cc, bc, init)


def _bind_while(cond: ClosedJaxpr, body: ClosedJaxpr, cc, bc, init) -> list:
    cond, cc0 = opened(cond)
    body, bc0 = opened(body)
    return bind(
        while_p,
        *cc0,
        *cc,
        *bc0,
        *bc,
        *init,
        cond_jaxpr=cond,
        body_jaxpr=body,
        cond_nconsts=len(cc0) + len(cc),
        body_nconsts=len(bc0) + len(bc),
    )


def while_loop(cond_fun, body_fun, init_val, max_steps: int | None = None):
    """``while cond_fun(val): val = body_fun(val)``, as ``jax.lax.while_loop``.

    Differentiable in forward mode (``jvp``, ``jacfwd``) and batchable (a batched predicate
    runs until every example is done). Reverse mode (``grad``, ``vjp``) needs ``max_steps``:
    the loop then runs as ``max_steps`` guarded steps (a finished loop stops changing its value),
    checkpointed in blocks of about ``sqrt(max_steps)`` steps, so the gradient stores
    O(sqrt(max_steps)) values and recomputes the rest; a loop that needs more steps than
    ``max_steps`` stops there. Outside any transform it is a Python loop.

    Example:
        >>> def newton_sqrt(a):
        ...     step = lambda x: 0.5 * (x + a / x)
        ...     return ad.while_loop(lambda x: anp.abs(x * x - a) > 1e-6, step, a, max_steps=50)
        >>> ad.grad(newton_sqrt)(mx.array(2.0))  # 1 / (2 sqrt 2)
    """
    if not is_tracing():
        val, steps = init_val, 0
        while bool(cond_fun(val)) and (max_steps is None or steps < max_steps):
            val, steps = body_fun(val), steps + 1
        return val
    if max_steps is not None:
        return _bounded_while(cond_fun, body_fun, init_val, int(max_steps))
    leaves, tree = tree_flatten(init_val)
    arg_tree = tree_flatten((init_val,))[1]
    avals = [aval_of(x) for x in leaves]
    cond, cc, cond_tree = trace_sub(cond_fun, arg_tree, avals, "while_loop")
    body, bc, body_tree = trace_sub(body_fun, arg_tree, avals, "while_loop")
    if cond.out_avals != [_BOOL] and not (
        len(cond.out_avals) == 1 and cond.out_avals[0].shape == ()
    ):
        raise TypeError(
            "[while_loop] cond_fun must return a boolean scalar, got "
            + ", ".join(a.str_short() for a in cond.out_avals)
        )
    if body_tree != tree:
        raise TypeError(
            f"[while_loop] body_fun must return the structure it takes, {tree}; it returned "
            f"{body_tree}"
        )
    check_same_types(avals, body.out_avals, "init_val", "body_fun's result", "while_loop")
    cond = _as_bool(cond, len(cc))
    outs = bind(
        while_p,
        *cc,
        *bc,
        *leaves,
        cond_jaxpr=cond,
        body_jaxpr=body,
        cond_nconsts=len(cc),
        body_nconsts=len(bc),
    )
    return tree_unflatten(tree, outs)


def _as_bool(cond: ClosedJaxpr, nconsts: int) -> ClosedJaxpr:
    if cond.out_avals == [_BOOL]:
        return cond

    def f(*args):
        (out,) = inline(cond, args)
        return [L.ne(out, 0)], None

    return optimize(trace_flat(f, cond.in_avals, "cond_fun", "while_loop")[0])


def _bounded_while(cond_fun, body_fun, init_val, max_steps: int):
    """``max_steps`` guarded steps as nested scans: blocks of ~sqrt(N) steps, each block
    checkpointed, so reverse mode stores one carry per block and recomputes inside it."""
    from autodiff.control.cond import cond as cond_op
    from autodiff.control.remat import checkpoint
    from autodiff.control.scan import scan

    def guarded(val, _):
        return cond_op(cond_fun(val), body_fun, lambda v: v, val), None

    inner = max(1, math.isqrt(max(max_steps, 1)))
    blocks, rest = divmod(max_steps, inner)

    @checkpoint
    def block(val):
        return scan(guarded, val, None, length=inner)[0]

    val = scan(lambda v, _: (block(v), None), init_val, None, length=blocks)[0]
    if rest:
        val = scan(guarded, val, None, length=rest)[0]
    return val


def fori_loop(lower, upper, body_fun, init_val):
    """``for i in range(lower, upper): val = body_fun(i, val)``, as ``jax.lax.fori_loop``.

    With concrete bounds it is a ``scan`` (every transform, reverse mode included); with
    traced bounds a ``while_loop`` (forward mode and batching).

    Example:
        >>> ad.fori_loop(0, 3, lambda i, x: x * 2.0, mx.array(1.0))  # 8.0
    """
    if type(lower) is not Tracer and type(upper) is not Tracer:
        lo, hi = int(lower), int(upper)
        if not is_tracing():
            val = init_val
            for i in range(lo, hi):
                val = body_fun(i, val)
            return val
        from autodiff.control.scan import scan

        def step(carry, _):
            i, val = carry
            return (i + 1, body_fun(i, val)), None

        return scan(step, (_i32(lo), init_val), None, length=max(hi - lo, 0))[0][1]

    def cond(c):
        return c[0] < upper

    def body(c):
        i, val = c
        return i + 1, body_fun(i, val)

    return while_loop(cond, body, (_i32(lower), init_val))[1]


def _i32(x):
    import mlx.core as mx

    return L.convert(x, "int32") if type(x) is Tracer else mx.array(int(x), dtype=mx.int32)


# The rules of while: autodiff/control/while_rules.py
from autodiff.control import while_rules as _while_rules  # noqa: E402, F401  (registers them)

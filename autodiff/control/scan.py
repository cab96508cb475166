"""``scan``: a loop with a carry and stacked per-iteration outputs, as ``jax.lax.scan``.

The primitive ``scan`` takes ``(*consts, *init, *xs)`` and params ``jaxpr`` (the body:
``(consts, carry, x) -> (carry, y)``), ``num_consts``, ``num_carry``, ``length``, ``reverse``,
``unroll``; it returns ``(*final_carry, *ys)``, each y stacked along a new leading axis. Its
derivative rules are in ``scan_rules.py``, its DCE rule and loop-invariant hoisting in
``loop_opt.py``. It lowers to a Python loop (in the driver of ``lower_control``) calling the
compiled body ``unroll`` iterations at a time.
"""

from __future__ import annotations

from autodiff.control.common import splice, trace_sub
from autodiff.extend import bind, def_primitive, impls, lowerings
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr, Jaxpr, Var
from autodiff.lower_control import host_rules
from autodiff.lower_mlx import MX_DTYPES, helpers, ref
from autodiff.tracing import aval_of, is_tracing
from autodiff.tree import tree_flatten, tree_unflatten


def _scan_rule(*args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    consts, init, xs = (
        args[:num_consts],
        args[num_consts : num_consts + num_carry],
        args[num_consts + num_carry :],
    )
    for x in xs:
        if not x.shape or x.shape[0] != length:
            raise TypeError(f"scanned inputs need a leading axis of length {length}, got {x}")
    expected = list(consts) + list(init) + [x.update(shape=x.shape[1:]) for x in xs]
    if jaxpr.in_avals != expected:
        raise TypeError("the body's inputs do not match the consts, carry and scanned slices")
    outs = jaxpr.out_avals
    if outs[:num_carry] != list(init):
        got = ", ".join(a.str_short() for a in outs[:num_carry])
        want = ", ".join(a.str_short() for a in init)
        raise TypeError(f"the body must return a carry of the types it takes ({want}), got {got}")
    return list(init) + [y.update(shape=(length,) + y.shape) for y in outs[num_carry:]]


scan_p = def_primitive("scan", "control", _scan_rule, multiple_results=True)


def scan_bind(body: ClosedJaxpr, consts, init, xs, length, reverse=False, unroll=1) -> list:
    """Bind ``scan`` on a body that may have consts of its own (they become leading consts)."""
    j = body.jaxpr
    opened = ClosedJaxpr(Jaxpr([], j.constvars + j.invars, j.eqns, j.outvars), [])
    return bind(
        scan_p,
        *body.consts,
        *consts,
        *init,
        *xs,
        jaxpr=opened,
        num_consts=len(body.consts) + len(consts),
        num_carry=len(init),
        length=length,
        reverse=reverse,
        unroll=unroll,
    )


def scan(f, init, xs=None, length: int | None = None, reverse: bool = False, unroll: int = 1):
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``, as
    ``jax.lax.scan``: returns ``(final_carry, ys)`` with the ys stacked.

    Differentiable to any order in both modes (reverse mode stores each iteration's residuals
    as stacked outputs), batchable, and compiled as one body called in a loop. Outside any
    transform it simply runs the loop.

    Args:
        f: the body; ``carry`` keeps its pytree structure, shapes and dtypes.
        init: the initial carry (a pytree of arrays).
        xs: a pytree of arrays scanned along their leading axis, or None.
        length: the number of iterations (needed when ``xs`` is None).
        reverse: iterate from the end (the ys stay in input order).
        unroll: iterations per call of the compiled body (fewer Python steps, bigger body).

    Example:
        >>> def step(h, x):
        ...     h = anp.tanh(W @ h + x)
        ...     return h, h.sum()
        >>> h, ys = ad.scan(step, h0, xs)
    """
    xs_leaves, xs_tree = tree_flatten(xs)
    lengths = {aval_of(x).shape[0] if aval_of(x).shape else None for x in xs_leaves}
    if None in lengths:
        raise ValueError("[scan] every scanned input needs a leading axis")
    if length is not None:
        lengths.add(length)
    if len(lengths) != 1:
        raise ValueError(
            f"[scan] the scanned inputs' leading axes and `length` disagree: {sorted(lengths)}"
            if lengths
            else "[scan] with xs=None, pass `length`"
        )
    (n,) = lengths
    init_leaves, init_tree = tree_flatten(init)
    if not is_tracing():
        return _run_eagerly(f, init, xs_leaves, xs_tree, n, reverse)
    carry_avals = [aval_of(c) for c in init_leaves]
    x_avals = [aval_of(x).update(shape=aval_of(x).shape[1:]) for x in xs_leaves]
    body, consts, out_tree = trace_sub(
        lambda c, x: _check_pair(f(c, x)),
        _tree_of((init_tree, xs_tree)),
        carry_avals + x_avals,
        "scan",
    )
    carry_tree, y_tree = out_tree.children() if out_tree.num_children == 2 else (None, None)
    if carry_tree != init_tree:
        raise TypeError(
            f"[scan] the body must return the carry with the structure it takes, {init_tree}; "
            f"it returned {carry_tree}"
        )
    nk = len(init_leaves)
    _check_carry_types(carry_avals, body.out_avals[:nk])
    outs = bind(
        scan_p,
        *consts,
        *init_leaves,
        *xs_leaves,
        jaxpr=body,
        num_consts=len(consts),
        num_carry=nk,
        length=n,
        reverse=reverse,
        unroll=max(1, int(unroll)),
    )
    return tree_unflatten(init_tree, outs[:nk]), tree_unflatten(y_tree, outs[nk:])


def _tree_of(trees):
    from autodiff.tree import tree_structure

    a, b = trees
    return tree_structure(
        (tree_unflatten(a, [0] * a.num_leaves), tree_unflatten(b, [0] * b.num_leaves))
    )


def _check_pair(out):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"[scan] the body must return a pair (carry, y), got {type(out).__name__}")
    return out


def _check_carry_types(carry_avals, out_avals):
    if list(carry_avals) != list(out_avals):
        want = ", ".join(a.str_short() for a in carry_avals)
        got = ", ".join(a.str_short() for a in out_avals)
        raise TypeError(
            f"[scan] the body must return a carry of the types it takes ({want}), but it "
            f"returned ({got}). Cast with .astype or keep the shapes fixed."
        )


def _run_eagerly(f, init, xs_leaves, xs_tree, n, reverse):
    import mlx.core as mx

    carry, ys = init, []
    for i in range(n - 1, -1, -1) if reverse else range(n):
        carry, y = _check_pair(f(carry, tree_unflatten(xs_tree, [x[i] for x in xs_leaves])))
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        return carry, None
    y_leaves = [tree_flatten(y)[0] for y in ys]
    stacked = [mx.stack([yl[k] for yl in y_leaves]) for k in range(len(y_leaves[0]))]
    return carry, tree_unflatten(tree_flatten(ys[0])[1], stacked)


# ---------------------------------------------------------------------------------------------
# Evaluation: interpreter and lowering


def _scan_impl(*args, jaxpr, num_consts, num_carry, length, reverse, unroll):
    import numpy as np

    consts, carry = list(args[:num_consts]), list(args[num_consts : num_consts + num_carry])
    xs = args[num_consts + num_carry :]
    ys = []
    for i in range(length - 1, -1, -1) if reverse else range(length):
        outs = interpret(jaxpr, *consts, *carry, *[x[i] for x in xs])
        carry, y = outs[:num_carry], outs[num_carry:]
        ys.append(y)
    if reverse:
        ys.reverse()
    y_avals = jaxpr.out_avals[num_carry:]
    stacked = [
        np.stack([y[k] for y in ys]) if ys else np.zeros((0,) + a.shape)
        for k, a in enumerate(y_avals)
    ]
    return carry + stacked


impls[scan_p] = _scan_impl
host_rules[scan_p] = lambda eqn: True


def unrolled(closed: ClosedJaxpr, nc: int, nk: int, k: int) -> ClosedJaxpr:
    """The body run ``k`` times in one jaxpr: ``(consts, carry, x_0..x_{k-1}) -> (carry,
    y_0..y_{k-1})``, in iteration order."""
    j = closed.jaxpr
    consts = [Var(v.aval) for v in j.invars[:nc]]
    carry0 = [Var(v.aval) for v in j.invars[nc : nc + nk]]
    xs = [[Var(v.aval) for v in j.invars[nc + nk :]] for _ in range(k)]
    eqns, ys, carry = [], [], carry0
    for i in range(k):
        body_eqns, outs = splice(closed, consts + carry + xs[i])
        eqns.extend(body_eqns)
        carry, y = outs[:nk], outs[nk:]
        ys.extend(y)
    invars = consts + carry0 + [v for x in xs for v in x]
    return ClosedJaxpr(Jaxpr([], invars, eqns, carry + ys), [])


def _scan_run(bodies, consts, init, xs, length, reverse, y_shapes):
    """The driver of a lowered scan: the compiled body, unrolled ``k`` times, called once per
    ``k`` iterations (the single body does the remainder)."""
    import mlx.core as mx

    body, body_k, k = bodies
    body = body.compiled_or_lowered()  # called directly: no per-step dispatch
    body_k = body_k.compiled_or_lowered() if body_k is not None else None
    nk, ny = len(init), len(y_shapes)
    carry = [c if isinstance(c, mx.array) else mx.array(c) for c in init]
    ys = []
    order = list(range(length - 1, -1, -1) if reverse else range(length))
    start = 0
    if k > 1:
        for start in range(0, length - length % k, k):
            block = order[start : start + k]
            outs = body_k(*consts, *carry, *[x[i] for i in block for x in xs])
            carry = outs[:nk]
            ys.extend(outs[nk + m * ny : nk + (m + 1) * ny] for m in range(k))
        start = length - length % k
    for i in order[start:]:
        outs = body(*consts, *carry, *[x[i] for x in xs])
        carry, y = outs[:nk], outs[nk:]
        ys.append(y)
    carry = list(carry)
    if reverse:
        ys.reverse()
    stacked = [
        mx.stack([y[k] for y in ys]) if ys else mx.zeros(shape, dtype=dtype)
        for k, (shape, dtype) in enumerate(y_shapes)
    ]
    return carry + stacked


helpers["_scan_run"] = _scan_run


def _lower_scan(args, ins, outs, jaxpr, num_consts, num_carry, length, reverse, unroll):
    from autodiff.program import Program

    nc, nk = num_consts, num_carry
    body = Program(jaxpr, "scan_body", eager_compile=True)
    k = min(unroll, length)
    body_k = (
        Program(unrolled(jaxpr, nc, nk, k), "scan_body_unrolled", eager_compile=True)
        if k > 1
        else None
    )
    y_shapes = tuple((tuple(a.shape), MX_DTYPES[a.dtype]) for a in [o for o in outs[nk:]])
    return (
        f"_scan_run({ref((body, body_k, k), 'body')}, [{', '.join(args[:nc])}], "
        f"[{', '.join(args[nc : nc + nk])}], [{', '.join(args[nc + nk :])}], {length}, "
        f"{reverse}, {ref(y_shapes, 'shapes')})"
    )


lowerings[scan_p] = _lower_scan


# Optimisation (DCE of scan, loop-invariant hoisting): autodiff/control/loop_opt.py
from autodiff.control.loop_opt import (  # noqa: E402, F401  (re-exported)
    hoist_invariants,
)

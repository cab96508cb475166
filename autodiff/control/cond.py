"""``cond`` and ``switch``: an index selects one of N branches, each a sub-jaxpr.

The primitive ``cond`` takes ``(index, *operands)`` (index: int32, clamped by ``switch``) and
``branches``: closed jaxprs of the same signature. Its rules: JVP (the JVP of every branch, with
the union of their nonzero output tangents), partial evaluation (each branch split; the known
cond outputs the residuals of every branch, zeros for the branches not taken), transpose (a
cond of the transposed branches), batching (a batched index evaluates every branch and selects),
DCE, and lowering: a Python ``if`` on the evaluated index that runs only the taken branch, or,
for small branches, every branch inside the compiled segment and a select (no host sync).

This module holds the primitive, ``cond`` and ``switch``, evaluation and lowering; the
transformation rules are in ``autodiff/control/cond_rules.py``.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.control.common import check_same_types, trace_sub
from autodiff.dtypes import is_bool, is_int
from autodiff.extend import (
    bind,
    def_primitive,
    impls,
    lowerings,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr, Jaxpr, Var
from autodiff.lower_control import host_rules, is_host
from autodiff.lower_mlx import helpers, lower_jaxpr, ref
from autodiff.tracing import Tracer, aval_of
from autodiff.tree import tree_flatten, tree_unflatten


def _cond_rule(index, *ops, branches):
    if index.shape != () or index.dtype != "int32":
        raise TypeError(f"the branch index must be an int32 scalar, got {index.str_short()}")
    for b in branches:
        if b.in_avals != list(ops):
            raise TypeError("every branch must take the operands' types")
        if b.out_avals != branches[0].out_avals:
            raise TypeError("every branch must return the same types")
    return list(branches[0].out_avals)


cond_p = def_primitive("cond", "control", _cond_rule, multiple_results=True)


def join_branches(closed_list) -> tuple[tuple[ClosedJaxpr, ...], list]:
    """Closed jaxprs with consts -> jaxprs without, all taking every const (the concatenation
    of each one's) before their own inputs; and that list of consts."""
    consts = [c for j in closed_list for c in j.consts]
    avals = [[v.aval for v in j.jaxpr.constvars] for j in closed_list]
    out = []
    for i, j in enumerate(closed_list):
        before = [Var(a) for k in range(i) for a in avals[k]]
        after = [Var(a) for k in range(i + 1, len(closed_list)) for a in avals[k]]
        jj = j.jaxpr
        out.append(
            ClosedJaxpr(
                Jaxpr([], before + jj.constvars + after + jj.invars, jj.eqns, jj.outvars), []
            )
        )
    return tuple(out), consts


def cond_bind(index, ops, branches) -> list:
    """Bind ``cond`` on branches that may have consts (hoisted into operands)."""
    joined, consts = join_branches(branches)
    return bind(cond_p, index, *consts, *ops, branches=joined)


def switch(index, branches, *operands):
    """Apply ``branches[index]`` to ``operands``, as ``jax.lax.switch``: only the taken branch
    runs; ``index`` is clamped to ``[0, len(branches) - 1]``.

    Under a transform with a traced ``index`` every branch is traced (they must return the same
    types) and differentiated, batched and compiled as one ``cond``; a concrete ``index`` just
    calls the branch.

    Example:
        >>> f = lambda i, x: ad.switch(i, [anp.sin, anp.cos, lambda x: -x], x)
        >>> ad.grad(f, argnums=1)(1, mx.array(0.5))  # -sin(0.5)
    """
    branches = list(branches)
    if not branches:
        raise ValueError("[switch] needs at least one branch")
    if type(index) is not Tracer:
        i = int(index)
        return branches[min(max(i, 0), len(branches) - 1)](*operands)
    aval = aval_of(index)
    if aval.shape != () or not (is_int(aval.dtype) or is_bool(aval.dtype)):
        raise TypeError(
            f"[switch] the index must be an integer or boolean scalar, got {aval.str_short()}; "
            "for elementwise choices use anp.where"
        )
    if not is_bool(aval.dtype) and len(branches) > 1:
        index = L.max_(L.min_(index, len(branches) - 1), 0)
    index = L.convert(index, "int32")
    leaves, in_tree = tree_flatten(operands)
    avals = [aval_of(x) for x in leaves]
    traced = [trace_sub(lambda *ops, b=b: b(*ops), in_tree, avals, "cond") for b in branches]
    out_tree = traced[0][2]
    for k, (closed, _, tree) in enumerate(traced[1:], 1):
        if tree != out_tree:
            raise TypeError(
                f"[cond] branch 0 returns a {out_tree} but branch {k} returns a {tree}; every "
                "branch must return the same structure"
            )
        check_same_types(
            traced[0][0].out_avals, closed.out_avals, "branch 0", f"branch {k}", "cond"
        )
    with_consts = [
        ClosedJaxpr(
            Jaxpr(j.jaxpr.invars[: len(c)], j.jaxpr.invars[len(c) :], j.eqns, j.jaxpr.outvars), c
        )
        for j, c, _ in traced
    ]
    return tree_unflatten(out_tree, cond_bind(index, leaves, with_consts))


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as ``jax.lax.cond``:
    differentiable, batchable and jittable with a traced ``pred``, running only the taken
    branch (see :func:`switch`).

    Example:
        >>> relu_ish = lambda x: ad.cond(x > 0, lambda x: x * x, lambda x: 0.1 * x, x)
        >>> ad.grad(relu_ish)(mx.array(2.0))  # 4.0
    """
    if type(pred) is Tracer and aval_of(pred).shape != ():
        raise TypeError(
            f"[cond] the predicate must be a scalar, got {aval_of(pred).str_short()}; for an "
            "elementwise choice use anp.where"
        )
    if type(pred) is not Tracer:
        return (true_fun if bool(pred) else false_fun)(*operands)
    return switch(pred, [false_fun, true_fun], *operands)


# ---------------------------------------------------------------------------------------------
# Evaluation


impls[cond_p] = lambda index, *ops, branches: interpret(branches[int(index)], *ops)

# ---------------------------------------------------------------------------------------------
# Lowering: small branches inside the compiled segment, others in the Python driver

SMALL = 16  # total equations across branches that run speculatively, selected by the index


def _small(branches) -> bool:
    return sum(len(b.eqns) for b in branches) <= SMALL and not any(
        is_host(e) for b in branches for e in b.eqns
    )


host_rules[cond_p] = lambda eqn: not _small(eqn.params["branches"])


def _run_taken(index, programs, *args):
    return programs[int(index.item())](*args)


def _select_all(index, lowered, *args):
    import mlx.core as mx

    results = [low.fn(*args) for low in lowered]
    outs = list(results[0])
    for i in range(1, len(lowered)):
        outs = [mx.where(index == i, r, o) for r, o in zip(results[i], outs)]
    return outs


helpers["_cond_run_taken"] = _run_taken
helpers["_cond_select_all"] = _select_all


def _lower_cond(args, ins, outs, branches):
    from autodiff.program import Program

    if _small(branches):
        lowered = tuple(lower_jaxpr(b.jaxpr, f"branch{i}") for i, b in enumerate(branches))
        return f"_cond_select_all({args[0]}, {ref(lowered, 'branches')}, {', '.join(args[1:])})"
    programs = tuple(Program(b, f"branch{i}") for i, b in enumerate(branches))
    return f"_cond_run_taken({args[0]}, {ref(programs, 'branches')}, {', '.join(args[1:])})"


lowerings[cond_p] = _lower_cond


# The transformation rules: autodiff/control/cond_rules.py
from autodiff.control import cond_rules as _cond_rules  # noqa: E402, F401  (registers them)

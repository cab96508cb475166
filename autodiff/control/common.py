"""What the control-flow primitives share: tracing a user's function into a sub-jaxpr whose
consts are explicit operands, and splicing a sub-jaxpr's equations into another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autodiff.api_util import fun_name
from autodiff.errors import TransformError
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, ShapedArray, Var
from autodiff.tracing import Tracer, aval_of, trace_flat
from autodiff.tree import tree_flatten, tree_unflatten


def trace_sub(fun: Callable, in_tree, in_avals: Sequence[ShapedArray], transform: str):
    """Trace ``fun`` (taking the pytree ``in_tree`` of ``in_avals``) to a closed jaxpr with no
    consts: what it closes over (arrays, or values of the enclosing trace) becomes leading
    invars. Returns ``(jaxpr, consts, out_tree)``."""

    def flat(*tracers):
        out = fun(*tree_unflatten(in_tree, tracers))
        leaves, out_tree = tree_flatten(out)
        for o in leaves:
            if not (type(o) is Tracer or hasattr(o, "dtype") or type(o) in (bool, int, float)):
                raise TransformError(
                    f"[{transform}] `{fun_name(fun)}` returned a {type(o).__name__}; it must "
                    "return arrays or pytrees of arrays"
                )
        return leaves, out_tree

    closed, out_tree = trace_flat(flat, list(in_avals), fun_name(fun), transform)
    j = closed.jaxpr
    opened = Jaxpr([], j.constvars + j.invars, j.eqns, j.outvars)
    return ClosedJaxpr(opened, []), list(closed.consts), out_tree


def flat_avals(tree_of_values) -> tuple[list, list[ShapedArray], object]:
    leaves, tree = tree_flatten(tree_of_values)
    return leaves, [aval_of(x) for x in leaves], tree


def with_leading_invars(closed: ClosedJaxpr, avals_before, avals_after=()) -> ClosedJaxpr:
    """``closed`` taking extra, ignored inputs before (and after) its own."""
    j = closed.jaxpr
    before = [Var(a) for a in avals_before]
    after = [Var(a) for a in avals_after]
    return ClosedJaxpr(Jaxpr([], before + j.invars + after, j.eqns, j.outvars), [])


def splice(closed: ClosedJaxpr, inputs: Sequence) -> tuple[list[Eqn], list]:
    """The equations of ``closed`` (no consts) applied to the atoms ``inputs``, with fresh
    variables, and the atoms of its outputs."""
    env: dict = dict(zip(closed.jaxpr.invars, inputs))
    eqns = []
    for e in closed.jaxpr.eqns:
        ins = [a if type(a) is Literal else env[a] for a in e.inputs]
        outs = [Var(v.aval) for v in e.outputs]
        env.update(zip(e.outputs, outs))
        eqns.append(Eqn(e.prim, ins, e.params, outs))
    return eqns, [a if type(a) is Literal else env[a] for a in closed.jaxpr.outvars]


def check_same_types(avals_a, avals_b, what_a: str, what_b: str, transform: str, tree=None):
    if list(avals_a) != list(avals_b):
        a = ", ".join(x.str_short() for x in avals_a)
        b = ", ".join(x.str_short() for x in avals_b)
        raise TransformError(
            f"[{transform}] {what_a} and {what_b} must have identical types (shapes and "
            f"dtypes), but {what_a} gives ({a}) and {what_b} gives ({b}). Cast with .astype "
            "or broadcast so they agree."
        )

"""Lowering programs with control flow. MLX has no control-flow operations, so a jaxpr with
*host* equations (a loop, or a branch that must run only its taken side) becomes a Python
driver: each maximal run of other equations is a straight-line segment, lowered and
``mx.compile``d as a program of its own, and each host equation is Python in the driver that
calls its sub-programs (``for`` over a loop body, ``if`` on a predicate it evaluates).

    def step(a, b):
        c, d = _seg0(a, b)          # compiled
        e, = _scan1(c, d)           # a Python loop calling the compiled body
        f, = _seg2(e, a)            # compiled
        return (f,)

A primitive is host when ``host_rules[prim](eqn)`` says so; its lowering rule (in
``lower_mlx.lowerings``, like any other) then emits the driver's Python.
"""

from __future__ import annotations

from collections.abc import Callable

from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Var
from autodiff.lower_mlx import Lowered, lower_jaxpr

host_rules: dict = {}  # prim -> Callable[[Eqn], bool]


def is_host(eqn: Eqn) -> bool:
    rule: Callable | None = host_rules.get(eqn.prim)
    return rule is not None and rule(eqn)


def lower_program(closed: ClosedJaxpr, name: str = "lowered") -> Lowered:
    """Lower ``closed``: straight-line as one function, or a driver of compiled segments."""
    jaxpr = closed.jaxpr
    if not any(is_host(e) for e in jaxpr.eqns):
        return lower_jaxpr(jaxpr, name)
    from autodiff.program import Program  # a segment is a program (lowered, compiled, cached)

    eqns: list[Eqn] = []
    runs: list[list[Eqn]] = []
    for e in jaxpr.eqns:
        if is_host(e) or not runs or is_host(runs[-1][0]):
            runs.append([e])
        else:
            runs[-1].append(e)
    # What each segment reads from before it and must hand on to what comes after.
    later_uses: list[set[Var]] = []
    used: set[Var] = {a for a in jaxpr.outvars if type(a) is Var}
    for run in reversed(runs):
        later_uses.append(set(used))
        for e in run:
            used.update(a for a in e.inputs if type(a) is Var)
    later_uses.reverse()
    for k, run in enumerate(runs):
        if is_host(run[0]):
            eqns.extend(run)
            continue
        defined = {v for e in run for v in e.outputs}
        ins = _ordered_unique(
            a for e in run for a in e.inputs if type(a) is Var and a not in defined
        )
        outs = [v for e in run for v in e.outputs if v in later_uses[k]]
        if not outs:
            continue
        seg = Jaxpr([], [Var(v.aval) for v in ins], [], [])
        rename = dict(zip(ins, seg.invars))
        seg.eqns = [_renamed(e, rename) for e in run]
        seg.outvars = outs
        program = Program(ClosedJaxpr(seg, []), f"{name}_seg{k}")
        eqns.append(Eqn(_segment_p, list(ins), _SegmentParams(program), list(outs)))
    driver = Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, jaxpr.outvars)
    return lower_jaxpr(driver, name, compilable=False)


def _ordered_unique(xs):
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _renamed(eqn: Eqn, rename: dict) -> Eqn:
    ins = [a if type(a) is Literal else rename.get(a, a) for a in eqn.inputs]
    return Eqn(eqn.prim, ins, eqn.params, eqn.outputs)


class _Segment:
    """The pseudo-primitive of a compiled segment inside a driver (never in a user jaxpr)."""

    name = "segment"
    multiple_results = True


class _SegmentParams(dict):
    def __init__(self, program):
        super().__init__(program=program)


_segment_p = _Segment()


def _lower_segment(args, ins, outs, program):
    from autodiff.lower_mlx import ref

    return f"{ref(program, 'seg')}({', '.join(args)})"


def _install():
    from autodiff.lower_mlx import lowerings

    lowerings[_segment_p] = _lower_segment


_install()

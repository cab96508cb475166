"""Optimising loops before the passes: dead carries and outputs of ``scan`` (its DCE rule), and
loop-invariant hoisting (:func:`hoist_invariants`, which ``scan`` and ``while`` use as their
expanders: equations of the body that read only its consts run once, before the loop).
``autodiff/control/scan.py`` imports this module, and re-exports ``hoist_invariants``.
"""

from __future__ import annotations

from autodiff.control.scan import scan_p
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Params, Var
from autodiff.transforms import expanders
from autodiff.transforms.dce import dce_outputs, dce_rules

# ---------------------------------------------------------------------------------------------
# Optimisation: dead carries and outputs, loop-invariant hoisting


def _scan_dce(eqn: Eqn, used):
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    body = p["jaxpr"].jaxpr
    used_carry, used_ys = list(used[:nk]), list(used[nk:])
    while True:  # a carry is live if its output is used or a live output reads it
        pruned, used_ins = dce_outputs(body, used_carry + used_ys)
        widened = [a or b for a, b in zip(used_carry, used_ins[nc : nc + nk])]
        if widened == used_carry:
            break
        used_carry = widened
    keep_in = used_ins[:nc] + used_carry + used_ins[nc + nk :]
    new_body = Jaxpr(
        [], [v for v, k in zip(pruned.invars, keep_in) if k], pruned.eqns, pruned.outvars
    )
    new = Eqn(
        scan_p,
        [a for a, k in zip(eqn.inputs, keep_in) if k],
        Params.make(
            {
                **p,
                "jaxpr": ClosedJaxpr(new_body, []),
                "num_consts": sum(keep_in[:nc]),
                "num_carry": sum(used_carry),
            }
        ),
        [v for v, k in zip(eqn.outputs, used_carry + used_ys) if k],
    )
    return new, [True] * len(new.inputs)


dce_rules[scan_p] = _scan_dce


def hoist_invariants(eqn: Eqn, body_key: str, nc_key: str, loop_inputs: int):
    """Move the body's equations that read only its consts (and literals) out of the loop:
    they are computed once before it and enter as new consts. Returns the new equations, or
    None if there is nothing to hoist."""
    p = eqn.params
    closed = p[body_key]
    j = closed.jaxpr
    nc = p[nc_key]
    invariant = set(j.invars[:nc])
    hoisted = []
    for e in j.eqns:
        if all(type(a) is Literal or a in invariant for a in e.inputs) and e.prim.name not in (
            "scan",
            "while",
            "iota",
        ):
            hoisted.append(e)
            invariant.update(e.outputs)
    if not hoisted:
        return None
    needed = {a for e in j.eqns if e not in hoisted for a in e.inputs if type(a) is Var}
    needed |= {a for a in j.outvars if type(a) is Var}
    new_consts = [v for e in hoisted for v in e.outputs if v in needed]
    outer = dict(zip(j.invars[:nc], eqn.inputs[:nc]))
    outer_eqns, fresh = [], {}
    for e in hoisted:
        outs = [Var(v.aval) for v in e.outputs]
        fresh.update(zip(e.outputs, outs))
        ins = [a if type(a) is Literal else fresh.get(a, outer.get(a)) for a in e.inputs]
        outer_eqns.append(Eqn(e.prim, ins, e.params, outs))
    body_vars = [Var(v.aval) for v in new_consts]
    rename = dict(zip(new_consts, body_vars))
    rest = [
        Eqn(
            e.prim,
            [rename.get(a, a) if type(a) is Var else a for a in e.inputs],
            e.params,
            e.outputs,
        )
        for e in j.eqns
        if e not in hoisted
    ]
    body = Jaxpr(
        [],
        j.invars[:nc] + body_vars + j.invars[nc:],
        rest,
        [rename.get(a, a) if type(a) is Var else a for a in j.outvars],
    )
    params = {**p, body_key: ClosedJaxpr(body, []), nc_key: nc + len(new_consts)}
    inputs = eqn.inputs[:nc] + [fresh[v] for v in new_consts] + eqn.inputs[nc:]
    return outer_eqns + [Eqn(eqn.prim, inputs, Params.make(params), eqn.outputs)]


expanders[scan_p] = lambda eqn: hoist_invariants(eqn, "jaxpr", "num_consts", 0)

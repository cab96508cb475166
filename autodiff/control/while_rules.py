"""The transformation rules of ``while`` (see ``autodiff/control/loops.py``): evaluation, JVP,
partial evaluation, batching, DCE, invariant hoisting and lowering.

- JVP: a ``while`` of the body's JVP; which carries have tangents is a fixpoint.
- Partial evaluation: reverse mode raises (an unbounded loop cannot store its iterations),
  saying to pass ``max_steps`` or use ``fori_loop``/``scan``.
- Batching: batched carries are a fixpoint; a batched predicate runs until every example is
  done, freezing the finished ones with a select.
- DCE drops carries neither the result nor the predicate needs; hoisting moves
  loop-invariant computations out of the body; lowering is a Python ``while`` on the
  evaluated predicate, with the predicate and body compiled.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.control.loop_opt import hoist_invariants
from autodiff.control.loops import _bind_while, while_p
from autodiff.extend import (
    Zero,
    batch_rules,
    impls,
    instantiate,
    jvp_rules,
    lowerings,
    moveaxis,
    to_front,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Params, Var
from autodiff.lower_control import host_rules
from autodiff.lower_mlx import helpers, ref
from autodiff.tracing import aval_of, inline, trace_flat
from autodiff.transforms import expanders, optimize
from autodiff.transforms.dce import dce_outputs, dce_rules
from autodiff.transforms.jvp import jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_rules
from autodiff.transforms.vmap import vmap_jaxpr


def _split(args, p):
    cn, bn = p["cond_nconsts"], p["body_nconsts"]
    return list(args[:cn]), list(args[cn : cn + bn]), list(args[cn + bn :])


def _while_impl(*args, **p):
    cc, bc, carry = _split(args, p)
    while bool(interpret(p["cond_jaxpr"], *cc, *carry)[0]):
        carry = interpret(p["body_jaxpr"], *bc, *carry)
    return carry


impls[while_p] = _while_impl


def _while_jvp(primals, tangents, **p):
    cond, body = p["cond_jaxpr"], p["body_jaxpr"]
    cc, bc, init = _split(primals, p)
    _, tbc, tinit = _split(tangents, p)
    bnz = [type(t) is not Zero for t in tbc]
    carry_nz = [type(t) is not Zero for t in tinit]
    while True:
        out_nz = jvp_jaxpr(body, bnz + carry_nz)[1]
        widened = [a or b for a, b in zip(carry_nz, out_nz)]
        if widened == carry_nz:
            break
        carry_nz = widened
    body_jvp, _ = jvp_jaxpr(body, bnz + carry_nz, carry_nz)
    nb, nk = len(bc), len(init)
    kt = sum(carry_nz)
    # (bc, carry, tbc, tcarry) -> (carry, tcarry): reorder to (bc, tbc, carry, tcarry)
    n_tb = sum(bnz)
    j = body_jvp.jaxpr
    order = list(range(nb)) + list(range(nb + nk, nb + nk + n_tb)) + list(range(nb, nb + nk))
    order += list(range(nb + nk + n_tb, nb + nk + n_tb + kt))
    body_jvp = ClosedJaxpr(
        Jaxpr(j.constvars, [j.invars[i] for i in order], j.eqns, j.outvars), body_jvp.consts
    )
    cj = cond.jaxpr
    extra = [Var(cj.invars[len(cc) + i].aval) for i, z in enumerate(carry_nz) if z]
    cond_aug = ClosedJaxpr(Jaxpr([], cj.invars + extra, cj.eqns, cj.outvars), [])
    outs = _bind_while(
        cond_aug,
        body_jvp,
        cc,
        bc + [t for t, z in zip(tbc, bnz) if z],
        init + [instantiate(t) for t, z in zip(tinit, carry_nz) if z],
    )
    it = iter(outs[nk:])
    return outs[:nk], [next(it) if z else Zero(aval_of(o)) for z, o in zip(carry_nz, outs[:nk])]


jvp_rules[while_p] = _while_jvp


def _while_partial_eval(eqn: Eqn, unk):
    p = eqn.params
    n = p["cond_nconsts"] + p["body_nconsts"]
    if any(unk[n:]) or any(unk[p["cond_nconsts"] : n]):
        raise NotImplementedError(
            "[while_loop] reverse-mode differentiation (grad, vjp, linearize) of a while_loop "
            "needs a bound on its number of steps: pass max_steps=... to ad.while_loop (it "
            "then checkpoints), use ad.fori_loop with concrete bounds, or ad.scan. Forward "
            "mode (jvp, jacfwd) works without one."
        )
    return [], [eqn], [True] * len(eqn.outputs)


partial_eval_rules[while_p] = _while_partial_eval


def _while_batch(size, args, dims, **p):
    cond, body = p["cond_jaxpr"], p["body_jaxpr"]
    cc, bc, init = _split(args, p)
    dcc, dbc, dk = _split(dims, p)
    ccb, bcb = [d is not None for d in dcc], [d is not None for d in dbc]
    carry_b = [d is not None for d in dk]
    while True:
        out = vmap_jaxpr(body, [0 if b else None for b in bcb + carry_b], size)[1]
        pred_b = vmap_jaxpr(cond, [0 if b else None for b in ccb + carry_b], size)[1][0] is not None
        widened = [a or d is not None or pred_b for a, d in zip(carry_b, out)]
        if widened == carry_b:
            break
        carry_b = widened
    cc = [moveaxis(c, d, 0) if d is not None else c for c, d in zip(cc, dcc)]
    bc = [moveaxis(c, d, 0) if d is not None else c for c, d in zip(bc, dbc)]
    init = [to_front(c, d, size) if b else c for c, d, b in zip(init, dk, carry_b)]
    cond_b = vmap_jaxpr(cond, [0 if b else None for b in ccb + carry_b], size)[0]
    body_b = vmap_jaxpr(
        body, [0 if b else None for b in bcb + carry_b], size, [0 if b else None for b in carry_b]
    )[0]
    pred_dims = vmap_jaxpr(cond, [0 if b else None for b in ccb + carry_b], size)[1]
    if pred_dims[0] is None:
        outs = _bind_while(cond_b, body_b, cc, bc, init)
        return outs, [0 if b else None for b in carry_b]
    # A batched predicate: loop while any example runs; finished examples keep their value.
    ncc, nbc = len(cc), len(bc)

    def any_cond(*a):
        (pred,) = inline(cond_b, a)
        return [L.reduce_max(pred, (0,))], None

    def masked_body(*a):
        cconsts, bconsts, carry = a[:ncc], a[ncc : ncc + nbc], a[ncc + nbc :]
        (pred,) = inline(cond_b, list(cconsts) + list(carry))
        new = inline(body_b, list(bconsts) + list(carry))
        return [
            L.select(L.broadcast_in_dim(pred, aval_of(o).shape, (0,)), o, c)
            for o, c in zip(new, carry)
        ], None

    in_avals = [aval_of(x) for x in cc] + [aval_of(x) for x in init]
    any_c = optimize(trace_flat(any_cond, in_avals, "while_cond", "vmap")[0])
    body_avals = [aval_of(x) for x in cc + bc + init]
    mb = optimize(trace_flat(masked_body, body_avals, "while_body", "vmap")[0])
    outs = _bind_while(any_c, mb, cc, cc + bc, init)
    return outs, [0] * len(outs)


batch_rules[while_p] = _while_batch


def _while_dce(eqn: Eqn, used):
    p = eqn.params
    cn, bn = p["cond_nconsts"], p["body_nconsts"]
    body = p["body_jaxpr"].jaxpr
    cond = p["cond_jaxpr"].jaxpr
    cond_reads = dce_outputs(cond, [True])[1]
    live = [u or r for u, r in zip(used, cond_reads[cn:])]
    while True:
        pruned, reads = dce_outputs(body, live)
        widened = [a or b for a, b in zip(live, reads[bn:])]
        if widened == live:
            break
        live = widened
    new_body = Jaxpr(
        [], [v for v, k in zip(pruned.invars, reads[:bn] + live) if k], pruned.eqns, pruned.outvars
    )
    new_cond = Jaxpr(
        [], [v for v, k in zip(cond.invars, cond_reads[:cn] + live) if k], cond.eqns, cond.outvars
    )
    keep = cond_reads[:cn] + reads[:bn] + live
    new = Eqn(
        while_p,
        [a for a, k in zip(eqn.inputs, keep) if k],
        Params.make(
            {
                "cond_jaxpr": ClosedJaxpr(new_cond, []),
                "body_jaxpr": ClosedJaxpr(new_body, []),
                "cond_nconsts": sum(cond_reads[:cn]),
                "body_nconsts": sum(reads[:bn]),
            }
        ),
        [v for v, k in zip(eqn.outputs, live) if k],
    )
    return new, [True] * len(new.inputs)


dce_rules[while_p] = _while_dce


def _while_expand(eqn: Eqn):
    """Hoist loop-invariant computations out of the body (the predicate is cheap)."""
    p = eqn.params
    cn = p["cond_nconsts"]
    # hoist_invariants works on (consts..., rest...) inputs: present the body's view.
    view = Eqn(
        while_p,
        eqn.inputs[cn:],
        Params.make({"jaxpr": p["body_jaxpr"], "num_consts": p["body_nconsts"]}),
        eqn.outputs,
    )
    new = hoist_invariants(view, "jaxpr", "num_consts", 0)
    if new is None:
        return None
    *outer, loop = new
    params = {**p, "body_jaxpr": loop.params["jaxpr"], "body_nconsts": loop.params["num_consts"]}
    return outer + [Eqn(while_p, eqn.inputs[:cn] + loop.inputs, Params.make(params), eqn.outputs)]


expanders[while_p] = _while_expand
host_rules[while_p] = lambda eqn: True


def _while_run(cond, body, cc, bc, carry):
    import mlx.core as mx

    cond, body = cond.compiled_or_lowered(), body.compiled_or_lowered()
    carry = [c if isinstance(c, mx.array) else mx.array(c) for c in carry]
    while bool(cond(*cc, *carry)[0]):
        carry = body(*bc, *carry)
    return list(carry)


helpers["_while_run"] = _while_run


def _lower_while(args, ins, outs, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    from autodiff.program import Program

    cond = Program(cond_jaxpr, "while_cond", eager_compile=True)
    body = Program(body_jaxpr, "while_body", eager_compile=True)
    cn, bn = cond_nconsts, body_nconsts
    return (
        f"_while_run({ref(cond, 'cond')}, {ref(body, 'body')}, [{', '.join(args[:cn])}], "
        f"[{', '.join(args[cn : cn + bn])}], [{', '.join(args[cn + bn :])}])"
    )


lowerings[while_p] = _lower_while

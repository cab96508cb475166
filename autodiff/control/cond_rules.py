"""The transformation rules of ``cond`` (see ``autodiff/control/cond.py``): JVP, partial
evaluation, transpose, batching, DCE and the expansion of a cond with a literal index.

- JVP: the JVP of every branch, with the union of their nonzero output tangents.
- Partial evaluation: each branch split; the known cond outputs the residuals of every
  branch, zeros for the branches not taken.
- Transpose: a cond of the transposed branches.
- Batching: a batched index evaluates every branch and selects.
- DCE: operands and outputs no branch needs are dropped; a literal index selects its branch.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.control.common import splice
from autodiff.control.cond import cond_bind, cond_p
from autodiff.extend import (
    Zero,
    batch_rules,
    instantiate,
    is_undefined,
    jvp_rules,
    mark_linear,
    transpose_rules,
)
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Params, ShapedArray, Var
from autodiff.tracing import aval_of, inline
from autodiff.transforms import expanders
from autodiff.transforms.dce import dce_outputs, dce_rules
from autodiff.transforms.jvp import jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from autodiff.transforms.transpose import transpose_jaxpr
from autodiff.transforms.vmap import moveaxis, vmap_jaxpr


def _cond_jvp(primals, tangents, branches):
    index, *ops = primals
    nz = [type(t) is not Zero for t in tangents[1:]]
    n = len(branches[0].out_avals)
    out_nz = [False] * n
    for b in branches:
        out_nz = [a or z for a, z in zip(out_nz, jvp_jaxpr(b, nz)[1])]
    jvps = [jvp_jaxpr(b, nz, out_nz)[0] for b in branches]
    ts = [t for t, z in zip(tangents[1:], nz) if z]
    outs = cond_bind(index, [*ops, *ts], jvps)
    it = iter(outs[n:])
    t_outs = [next(it) if z else Zero(a) for a, z in zip(branches[0].out_avals, out_nz)]
    return outs[:n], t_outs


jvp_rules[cond_p] = _cond_jvp


def _outputs_padded(known: ClosedJaxpr, n_known: int, res_avals, i: int) -> ClosedJaxpr:
    """Branch ``i``'s known part, outputting every branch's residual slots (zeros in others)."""
    j = known.jaxpr
    eqns = list(j.eqns)
    own = j.outvars[n_known:]
    outs = list(j.outvars[:n_known])
    for k, avals in enumerate(res_avals):
        if k == i:
            outs.extend(own)
            continue
        for a in avals:
            lit = Literal(False if a.dtype == "bool" else 0, ShapedArray((), a.dtype))
            if a.shape == ():
                outs.append(lit)
            else:
                v = Var(a)
                eqns.append(
                    Eqn(
                        _broadcast(),
                        [lit],
                        Params.make({"shape": a.shape, "broadcast_dimensions": ()}),
                        [v],
                    )
                )
                outs.append(v)
    return ClosedJaxpr(Jaxpr(j.constvars, j.invars, eqns, outs), known.consts)


def _broadcast():
    from autodiff.primitives import broadcast_in_dim

    return broadcast_in_dim


def _cond_partial_eval(eqn: Eqn, unk):
    branches = eqn.params["branches"]
    index, *ops = eqn.inputs
    if unk[0]:
        return [], [eqn], [True] * len(eqn.outputs)
    ops_unk = unk[1:]
    n = len(eqn.outputs)
    out_unk = [False] * n
    for b in branches:
        out_unk = [a or u for a, u in zip(out_unk, partial_eval_jaxpr(b, ops_unk, [False] * n)[2])]
    splits = [partial_eval_jaxpr(b, ops_unk, out_unk) for b in branches]
    n_known = out_unk.count(False)
    res_avals = [[v.aval for v in k.jaxpr.outvars[n_known:]] for k, _, _, _ in splits]
    known_b = tuple(_outputs_padded(k, n_known, res_avals, i) for i, (k, *_) in enumerate(splits))
    res_vars = [Var(a) for avals in res_avals for a in avals]
    unknown_b = []
    for i, (_, u, _, nres) in enumerate(splits):
        uj = u.jaxpr
        before = [Var(a) for k in range(i) for a in res_avals[k]]
        after = [Var(a) for k in range(i + 1, len(splits)) for a in res_avals[k]]
        invars = before + uj.invars[:nres] + after + uj.invars[nres:]
        unknown_b.append(ClosedJaxpr(Jaxpr([], invars, uj.eqns, uj.outvars), []))
    known_outs = [v for v, u in zip(eqn.outputs, out_unk) if not u]
    unknown_outs = [v for v, u in zip(eqn.outputs, out_unk) if u]
    known_ops = [a for a, u in zip(ops, ops_unk) if not u]
    unknown_ops = [a for a, u in zip(ops, ops_unk) if u]
    known = Eqn(
        cond_p, [index, *known_ops], Params.make({"branches": known_b}), known_outs + res_vars
    )
    unknown = Eqn(
        cond_p,
        [index, *res_vars, *unknown_ops],
        Params.make({"branches": tuple(unknown_b)}),
        unknown_outs,
    )
    return [known], [unknown], out_unk


partial_eval_rules[cond_p] = _cond_partial_eval


def _cond_transpose(cts, index, *ops, branches):
    lin = [is_undefined(x) for x in ops]
    res = [x for x, l in zip(ops, lin) if not l]
    cts = [instantiate(c) for c in cts]
    transposed = [transpose_jaxpr(b, lin) for b in branches]
    outs = iter(cond_bind(index, [*res, *cts], transposed))
    return [None] + [next(outs) if l else None for l in lin]


transpose_rules[cond_p] = _cond_transpose
mark_linear(cond_p)


def _cond_batch(size, args, dims, branches):
    index, *ops = args
    di, *dops = dims
    n = len(branches[0].out_avals)
    vb = [vmap_jaxpr(b, dops, size, [0] * n)[0] for b in branches]
    if di is None:
        return cond_bind(index, ops, vb), [0] * n
    # A batched index: every branch runs on every example; each example selects its result.
    index = moveaxis(index, di, 0)
    results = [inline(b, ops) for b in vb]
    outs = []
    for k in range(n):
        acc = results[0][k]
        shape = aval_of(acc).shape
        for i in range(1, len(vb)):
            mask = L.broadcast_in_dim(L.eq(index, i), shape, (0,))
            acc = L.select(mask, results[i][k], acc)
        outs.append(acc)
    return outs, [0] * n


batch_rules[cond_p] = _cond_batch


def _cond_dce(eqn: Eqn, used):
    index, *ops = eqn.inputs
    pruned = [dce_outputs(b.jaxpr, used) for b in eqn.params["branches"]]
    used_ops = [any(u[i] for _, u in pruned) for i in range(len(ops))]
    branches = tuple(
        ClosedJaxpr(Jaxpr([], [v for v, u in zip(j.invars, used_ops) if u], j.eqns, j.outvars), [])
        for j, _ in pruned
    )
    new = Eqn(
        cond_p,
        [index] + [a for a, u in zip(ops, used_ops) if u],
        Params.make({"branches": branches}),
        [v for v, u in zip(eqn.outputs, used) if u],
    )
    return new, [True] * len(new.inputs)


dce_rules[cond_p] = _cond_dce


def _cond_expand(eqn: Eqn):
    """A cond whose index is a literal is the branch it selects."""
    index = eqn.inputs[0]
    if type(index) is not Literal:
        return None
    eqns, outs = splice(eqn.params["branches"][int(index.val)], eqn.inputs[1:])
    from autodiff.primitives import convert

    # bind the results to the cond's own output variables (identity converts; simplify drops them)
    for v, o in zip(eqn.outputs, outs):
        eqns.append(Eqn(convert, [o], Params.make({"new_dtype": v.aval.dtype}), [v]))
    return eqns


expanders[cond_p] = _cond_expand

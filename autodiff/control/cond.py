"""``cond`` and ``switch``: an index selects one of N branches, each a sub-jaxpr.

The primitive ``cond`` takes ``(index, *operands)`` (index: int32, clamped by ``switch``) and
``branches``: closed jaxprs of the same signature. Its rules: JVP (the JVP of every branch, with
the union of their nonzero output tangents), partial evaluation (each branch split; the known
cond outputs the residuals of every branch, zeros for the branches not taken), transpose (a
cond of the transposed branches), batching (a batched index evaluates every branch and selects),
DCE, and lowering: a Python ``if`` on the evaluated index that runs only the taken branch, or,
for small branches, every branch inside the compiled segment and a select (no host sync).
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.control.common import check_same_types, splice, trace_sub
from autodiff.dtypes import is_bool, is_int
from autodiff.extend import (
    Zero,
    batch_rules,
    bind,
    def_primitive,
    impls,
    instantiate,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    transpose_rules,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Literal, Params, ShapedArray, Var
from autodiff.lower_control import host_rules, is_host
from autodiff.lower_mlx import helpers, lower_jaxpr, ref
from autodiff.tracing import Tracer, aval_of, inline
from autodiff.transforms import expanders
from autodiff.transforms.dce import dce_outputs, dce_rules
from autodiff.transforms.jvp import jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from autodiff.transforms.transpose import transpose_jaxpr
from autodiff.transforms.vmap import moveaxis, vmap_jaxpr
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
# Rules


impls[cond_p] = lambda index, *ops, branches: interpret(branches[int(index)], *ops)


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

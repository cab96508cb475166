"""``checkpoint`` (alias ``remat``): trade compute for memory in reverse mode.

The primitive ``remat`` wraps a sub-jaxpr. Its partial evaluation is what makes it work: of the
values the backward pass needs (the residuals), only those the ``policy`` saves are kept by the
forward pass; the backward pass recomputes the others from the region's inputs. Its transpose
and every other rule keep the region a ``remat`` equation, so our CSE never merges the
recomputation with the forward pass, and the lowering passes the recomputation's inputs through
``mx.depends`` (as MLX's own checkpoint does) so MLX's compiler cannot merge them either.

Policies, as JAX's ``jax.checkpoint_policies``: ``nothing_saveable`` (the default: recompute
everything), ``everything_saveable``, ``dots_saveable`` (keep matmul outputs), and
``save_only_these_names(*names)`` for values tagged with :func:`checkpoint_name`.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from autodiff.control.common import splice, trace_sub
from autodiff.control.scan_rules import opened
from autodiff.extend import (
    batch_rules,
    bind,
    def_primitive,
    defelementwise,
    deflinear,
    impls,
    instantiate,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    transpose_rules,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Params, Var
from autodiff.lower_control import host_rules, is_host
from autodiff.lower_mlx import helpers, lower_jaxpr, ref
from autodiff.tracing import aval_of, is_tracing
from autodiff.transforms.dce import dce_outputs, dce_rules
from autodiff.transforms.jvp import Zero, jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from autodiff.transforms.transpose import transpose_jaxpr
from autodiff.transforms.vmap import vmap_jaxpr
from autodiff.tree import tree_flatten, tree_unflatten


def _remat_rule(*args, jaxpr, policy, prevent_cse):
    if jaxpr.in_avals != list(args):
        raise TypeError("the checkpointed region's inputs do not match its operands")
    return list(jaxpr.out_avals)


remat_p = def_primitive("remat", "control", _remat_rule, multiple_results=True)


# Policies: policy(eqn) -> whether the value it computes may be saved for the backward pass.
def nothing_saveable(eqn) -> bool:
    return False


def everything_saveable(eqn) -> bool:
    return True


def dots_saveable(eqn) -> bool:
    return eqn.prim.name in ("dot_general", "conv_general")


def save_only_these_names(*names: str):
    names = frozenset(names)

    def policy(eqn) -> bool:
        return eqn.prim is name_p and eqn.params["name"] in names

    policy.__name__ = f"save_only_these_names{tuple(sorted(names))}"
    return policy


checkpoint_policies = SimpleNamespace(
    nothing_saveable=nothing_saveable,
    everything_saveable=everything_saveable,
    dots_saveable=dots_saveable,
    checkpoint_dots=dots_saveable,
    save_only_these_names=save_only_these_names,
)


def checkpoint(fun=None, *, policy=None, prevent_cse: bool = True):
    """Mark ``fun`` for rematerialisation, as ``jax.checkpoint``: in reverse mode its
    intermediate values are recomputed in the backward pass instead of being stored, except
    those ``policy`` saves. Values and derivatives are unchanged.

    Args:
        fun: the function (also usable as ``@ad.checkpoint`` or
            ``@ad.checkpoint(policy=...)``).
        policy: which intermediate values to save (see ``ad.checkpoint_policies``); by
            default none are.
        prevent_cse: keep the recomputation apart from the forward computation (needed for
            the memory saving when both are in one compiled program).

    Example:
        >>> layer = ad.checkpoint(lambda h, w: anp.tanh(h @ w))
        >>> def loss(ws, x):
        ...     for w in ws:
        ...         x = layer(x, w)
        ...     return anp.sum(x)
    """
    if fun is None:
        return functools.partial(checkpoint, policy=policy, prevent_cse=prevent_cse)
    policy = policy or nothing_saveable

    @functools.wraps(fun, updated=())
    def checkpointed(*args, **kwargs):
        if not is_tracing():
            return fun(*args, **kwargs)
        leaves, tree = tree_flatten((args, kwargs))
        avals = [aval_of(x) for x in leaves]
        body, consts, out_tree = trace_sub(lambda a, k: fun(*a, **k), tree, avals, "checkpoint")
        outs = bind(remat_p, *consts, *leaves, jaxpr=body, policy=policy, prevent_cse=prevent_cse)
        return tree_unflatten(out_tree, outs)

    return checkpointed


remat = checkpoint


def checkpoint_name(x, name: str):
    """Tag ``x`` with ``name`` for ``save_only_these_names`` policies (identity otherwise).

    Example:
        >>> h = ad.checkpoint_name(h @ w, "hidden")
    """
    if not is_tracing():
        return x
    return bind(name_p, x, name=name)


name_p = def_primitive("name", "name", lambda x, *, name: [x])
deflinear(name_p)
transpose_rules[name_p] = lambda ct, x, name: [ct]
defelementwise(name_p)
impls[name_p] = lambda x, name: x
lowerings[name_p] = lambda a, ins, outs, name: a[0]


def _bind_remat(body: ClosedJaxpr, args, policy, prevent_cse) -> list:
    body, consts = opened(body)
    return bind(remat_p, *consts, *args, jaxpr=body, policy=policy, prevent_cse=prevent_cse)


# ---------------------------------------------------------------------------------------------
# Rules

impls[remat_p] = lambda *args, jaxpr, policy, prevent_cse: interpret(jaxpr, *args)


def _remat_jvp(primals, tangents, jaxpr, policy, prevent_cse):
    nz = [type(t) is not Zero for t in tangents]
    body, out_nz = jvp_jaxpr(jaxpr, nz)
    outs = _bind_remat(
        body, list(primals) + [t for t, z in zip(tangents, nz) if z], policy, prevent_cse
    )
    n = len(jaxpr.out_avals)
    it = iter(outs[n:])
    return outs[:n], [next(it) if z else Zero(a) for z, a in zip(out_nz, jaxpr.out_avals)]


jvp_rules[remat_p] = _remat_jvp


def _remat_partial_eval(eqn: Eqn, unk):
    p = eqn.params
    jaxpr, policy = p["jaxpr"], p["policy"]
    n_out = len(eqn.outputs)
    known, unknown, out_unk, nres = partial_eval_jaxpr(jaxpr, unk, [False] * n_out)
    kj = known.jaxpr
    n_known = out_unk.count(False)
    residuals = kj.outvars[n_known:]
    saved, recompute = _plan(kj, residuals, policy)
    # Forward: the known outputs and the saved values only (the rest is transient).
    fwd, _ = dce_outputs(
        Jaxpr([], kj.invars, kj.eqns, kj.outvars[:n_known] + saved), [True] * (n_known + len(saved))
    )
    known_ins = [a for a, u in zip(eqn.inputs, unk) if not u]
    fwd_eqns, fwd_outs = splice(ClosedJaxpr(fwd, []), known_ins)
    from autodiff.primitives import convert

    known_outs = [v for v, u in zip(eqn.outputs, out_unk) if not u]
    binds = [
        Eqn(convert, [o], Params.make({"new_dtype": v.aval.dtype}), [v])
        for v, o in zip(known_outs, fwd_outs[:n_known])
    ]
    # Backward: a remat that recomputes what was not saved (from the saved values and the
    # known inputs), then runs the unknown part.
    env = {v: Var(v.aval) for v in saved + kj.invars}
    rec_eqns = []
    for e in kj.eqns:
        if e in recompute:
            outs = [Var(v.aval) for v in e.outputs]
            ins = [env[a] if type(a) is Var else a for a in e.inputs]
            rec_eqns.append(Eqn(e.prim, ins, e.params, outs))
            env.update(zip(e.outputs, outs))
    u_in = [Var(a.aval) for a, u in zip(eqn.inputs, unk) if u]
    un_eqns, un_outs = splice(unknown, [env[r] for r in residuals] + u_in)
    body = Jaxpr([], [env[v] for v in saved + kj.invars] + u_in, rec_eqns + un_eqns, un_outs)
    unknown_eqn = Eqn(
        remat_p,
        list(fwd_outs[n_known:]) + known_ins + [a for a, u in zip(eqn.inputs, unk) if u],
        Params.make({**p, "jaxpr": ClosedJaxpr(body, [])}),
        [v for v, u in zip(eqn.outputs, out_unk) if u],
    )
    return fwd_eqns + binds, [unknown_eqn], out_unk


def _plan(kj: Jaxpr, residuals, policy):
    """Which values the forward pass saves for the backward pass (those ``policy`` allows,
    among what the residuals are computed from) and which equations the backward pass
    recomputes (the rest, back to saved values or the region's inputs)."""
    producer = {v: e for e in kj.eqns for v in e.outputs}
    inputs = set(kj.invars)
    saved, recompute, seen = [], set(), set()
    stack = [r for r in residuals if type(r) is Var]
    while stack:
        v = stack.pop()
        if v in seen or v in inputs:
            continue
        seen.add(v)
        e = producer[v]
        if policy(e):
            saved.append(v)
        elif e not in recompute:
            recompute.add(e)
            stack.extend(a for a in e.inputs if type(a) is Var)
    order = {v: i for i, e in enumerate(kj.eqns) for v in e.outputs}
    return sorted(saved, key=order.__getitem__), recompute


partial_eval_rules[remat_p] = _remat_partial_eval


def _remat_transpose(cts, *args, jaxpr, policy, prevent_cse):
    lin = [is_undefined(a) for a in args]
    body = transpose_jaxpr(jaxpr, lin)
    res = [a for a, l in zip(args, lin) if not l]
    outs = iter(_bind_remat(body, res + [instantiate(c) for c in cts], policy, prevent_cse))
    return [next(outs) if l else None for l in lin]


transpose_rules[remat_p] = _remat_transpose
mark_linear(remat_p)


def _remat_batch(size, args, dims, jaxpr, policy, prevent_cse):
    body, out_dims = vmap_jaxpr(jaxpr, dims, size)
    return _bind_remat(body, args, policy, prevent_cse), out_dims


batch_rules[remat_p] = _remat_batch


def _remat_dce(eqn: Eqn, used):
    pruned, reads = dce_outputs(eqn.params["jaxpr"].jaxpr, used)
    body = Jaxpr([], [v for v, r in zip(pruned.invars, reads) if r], pruned.eqns, pruned.outvars)
    new = Eqn(
        remat_p,
        [a for a, r in zip(eqn.inputs, reads) if r],
        Params.make({**eqn.params, "jaxpr": ClosedJaxpr(body, [])}),
        [v for v, u in zip(eqn.outputs, used) if u],
    )
    return new, [True] * len(new.inputs)


dce_rules[remat_p] = _remat_dce
host_rules[remat_p] = lambda eqn: any(is_host(e) for e in eqn.params["jaxpr"].eqns)


def _remat_call(fn, prevent_cse, *args):
    import mlx.core as mx

    from autodiff.lower_mlx import Lowered

    fn = fn.fn if isinstance(fn, Lowered) else fn
    if prevent_cse and args:
        arrays = [a for a in args if isinstance(a, mx.array)]
        if arrays:
            fresh = iter(mx.depends(arrays, arrays))
            args = [next(fresh) if isinstance(a, mx.array) else a for a in args]
    return fn(*args)


helpers["_remat_call"] = _remat_call


def _lower_remat(args, ins, outs, jaxpr, policy, prevent_cse):
    from autodiff.program import Program

    if any(is_host(e) for e in jaxpr.eqns):
        fn = Program(jaxpr, "remat")
    else:
        fn = lower_jaxpr(jaxpr.jaxpr, "remat")
    return f"_remat_call({ref(fn, 'remat')}, {prevent_cse}, {', '.join(args)})"


lowerings[remat_p] = _lower_remat

"""How ``custom_vjp`` differentiates: the JVP of ``custom_vjp_call`` and ``custom_lin``.

The JVP of ``custom_vjp_call`` runs the user's ``fwd`` and emits ``custom_lin``: linear in the
tangents, holding the residuals, whose transpose runs ``bwd``. So ``vjp`` (= jvp, partial
evaluation, transpose) uses fwd and bwd, while evaluating a ``custom_lin`` (forward mode on a
custom_vjp function) raises JAX's error, unless the function also has a JVP rule (MLX's
``custom_function.jvp``), which ``custom_lin`` then holds as its ``forward`` jaxpr.
"""

from __future__ import annotations

from autodiff.control.custom_call import _check_no_closure_tangents, _Rule, custom_vjp_call_p
from autodiff.errors import TransformError
from autodiff.extend import (
    batch_rules,
    bind,
    def_primitive,
    impls,
    instantiate,
    jvp_rules,
    lowerings,
    mark_linear,
    transpose_rules,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr
from autodiff.lower_mlx import helpers, lower_jaxpr, ref
from autodiff.tracing import as_tracer, aval_of, substituting, trace_flat
from autodiff.transforms.jvp import jvp_eval
from autodiff.transforms.vmap import vmap_eval
from autodiff.tree import tree_flatten, tree_unflatten


def _custom_vjp_jvp(primals, tangents, call, rule, num_consts):
    _check_no_closure_tangents(tangents, num_consts, "custom_vjp", rule)
    consts, args = primals[:num_consts], [as_tracer(a) for a in primals[num_consts:]]
    with substituting(rule.substitution(consts)):
        out, res = rule.funs[0](*tree_unflatten(rule.in_tree, args))
    outs, tree = tree_flatten(out)
    if tree != rule.out_tree:
        raise TransformError(
            f"[custom_vjp] fwd must return (output, residuals) with the function's output "
            f"structure {rule.out_tree}; its output has structure {tree}"
        )
    res_leaves, res_tree = tree_flatten(res)
    ts = [instantiate(t) for t in tangents[num_consts:]]
    lin = _Rule((rule.funs[1],), (rule.in_tree, res_tree), rule.out_tree, rule.closure)
    if rule.options.get("jvp") is not None:  # a JVP too (MLX's custom_function): forward mode
        forward = _trace_forward(rule, consts, args, ts)
        return outs, custom_lin(
            lin, consts, res_leaves, ts, [aval_of(o) for o in outs], forward, args
        )
    return outs, custom_lin(lin, consts, res_leaves, ts, [aval_of(o) for o in outs])


def _trace_forward(rule, consts, args, tangents) -> ClosedJaxpr:
    """The user's JVP rule as a jaxpr ``(consts, primals, tangents) -> output tangents``: what
    a ``custom_lin`` computes when evaluated (forward mode) instead of transposed."""
    nc, na = len(consts), len(args)

    def f(*xs):
        with substituting(rule.substitution(xs[:nc])):
            p = tree_unflatten(rule.in_tree, [as_tracer(x) for x in xs[nc : nc + na]])
            t = tree_unflatten(rule.in_tree, [as_tracer(x) for x in xs[nc + na :]])
            out = rule.options["jvp"](p, t)
        return tree_flatten(out)[0], None

    avals = [aval_of(x) for x in list(consts) + list(args) + list(tangents)]
    closed, _ = trace_flat(f, avals, "custom_jvp_rule", "jvp")
    return closed


jvp_rules[custom_vjp_call_p] = _custom_vjp_jvp

# custom_lin: (consts, residuals, tangents) -> output tangents, linear in the tangents.
# custom_lin: (forward consts, consts, residuals, primals, tangents) -> output tangents,
# linear in the tangents; forward consts and primals only with a ``forward`` jaxpr.
custom_lin_p = def_primitive(
    "custom_lin",
    "control",
    lambda *a, rule, num_fconsts, num_consts, num_res, num_primals, out_avals, forward: list(
        out_avals
    ),
    True,
)


def custom_lin(
    rule: _Rule, consts, residuals, tangents, out_avals, forward=None, primals=()
) -> list:
    """Bind ``custom_lin`` (the typed wrapper): the tangents of a custom_vjp function's
    outputs, computed by its ``bwd`` in reverse mode; in forward mode by ``forward`` (a jaxpr
    of ``(consts, primals, tangents)``, when the function has a JVP rule too) or an error."""
    fconsts = []
    if forward is not None:
        forward, fconsts = _opened(forward)
    return bind(
        custom_lin_p,
        *fconsts,
        *consts,
        *residuals,
        *primals,
        *tangents,
        rule=rule,
        num_fconsts=len(fconsts),
        num_consts=len(consts),
        num_res=len(residuals),
        num_primals=len(primals),
        out_avals=tuple(out_avals),
        forward=forward,
    )


def _lin_split(args, p):
    nf, nc, nr, np_ = p["num_fconsts"], p["num_consts"], p["num_res"], p["num_primals"]
    i = 0
    parts = []
    for n in (nf, nc, nr, np_):
        parts.append(list(args[i : i + n]))
        i += n
    parts.append(list(args[i:]))
    return parts  # fconsts, consts, residuals, primals, tangents


def _forward_inputs(args, p):
    fc, c, _, prim, t = _lin_split(args, p)
    return fc + c + prim + t


def _opened(closed):
    from autodiff.control.scan_rules import opened

    return opened(closed)


def _custom_lin_transpose(cts, *args, rule, **p):
    _, consts, res, _, tangent_args = _lin_split(args, p)
    num_before = len(args) - len(tangent_args)
    in_tree, res_tree = rule.in_tree
    cts = [as_tracer(instantiate(c)) for c in cts]
    res = [as_tracer(r) for r in res]
    with substituting(rule.substitution(consts)):
        got = rule.funs[0](tree_unflatten(res_tree, res), tree_unflatten(rule.out_tree, cts))
    tangent_avals = [aval_of(a) if not hasattr(a, "aval") else a.aval for a in tangent_args]
    if not isinstance(got, (tuple, list)) or len(got) != in_tree.num_children:
        raise TransformError(
            f"[custom_vjp] bwd must return a tuple with one cotangent per argument "
            f"({in_tree.num_children}); it returned {type(got).__name__}"
            + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "")
        )
    leaves = []
    for sub, arg_tree in zip(got, in_tree.children()):
        if sub is None:
            leaves.extend([None] * arg_tree.num_leaves)
        else:
            sub_leaves, sub_tree = tree_flatten(sub)
            if sub_tree != arg_tree:
                raise TransformError(
                    f"[custom_vjp] bwd returned a cotangent of structure {sub_tree} for an "
                    f"argument of structure {arg_tree}"
                )
            leaves.extend(sub_leaves)
    out = []
    for c, a in zip(leaves, tangent_avals):
        out.append(None if c is None else c)
        if c is not None and aval_of(c).shape != a.shape:
            raise TransformError(
                f"[custom_vjp] bwd returned a cotangent of type {aval_of(c).str_short()} for an "
                f"argument of type {a.str_short()}"
            )
    return [None] * num_before + out


transpose_rules[custom_lin_p] = _custom_lin_transpose
mark_linear(custom_lin_p)


def _no_forward_mode(*args, **params):
    raise TransformError(
        "[custom_vjp] forward-mode differentiation (jvp, jacfwd, linearize's tangent map) of a "
        "custom_vjp function is not possible: its rule only gives the VJP. Use custom_jvp "
        "to define a rule that works in both modes."
    )


# Evaluated (forward mode) rather than transposed: the ``forward`` jaxpr if there is one.


def _lin_impl(*args, forward, **p):
    if forward is None:
        _no_forward_mode()
    return interpret(forward, *_forward_inputs(args, p))


def _lower_lin(a, ins, outs, forward, **p):
    if forward is None:
        return f"_custom_lin_forward({', '.join(a)})"
    names = _forward_inputs(a, p)
    return f"{ref(lower_jaxpr(forward.jaxpr, 'custom_jvp_rule'), 'forward')}.fn({', '.join(names)})"


def _lin_batch(size, args, dims, forward, **p):
    if forward is None:
        _no_forward_mode()
    outs, out_dims = vmap_eval(forward, _forward_inputs(args, p), _forward_inputs(dims, p), size)
    return outs, out_dims


def _lin_jvp(primals, tangents, forward, **p):
    if forward is None:
        _no_forward_mode()
    return jvp_eval(forward, _forward_inputs(primals, p), _forward_inputs(tangents, p))


impls[custom_lin_p] = _lin_impl
helpers["_custom_lin_forward"] = _no_forward_mode
lowerings[custom_lin_p] = _lower_lin
batch_rules[custom_lin_p] = _lin_batch
jvp_rules[custom_lin_p] = _lin_jvp

"""The primitives ``custom_jvp_call`` and ``custom_vjp_call``: what ``custom_jvp`` and
``custom_vjp`` (``autodiff/control/custom.py``) bind.

Each holds the function as a sub-jaxpr (``call``) and the user's rule as a :class:`_Rule`.
Evaluation, lowering and batching treat the equations as calls of ``call``; batching keeps the
custom rule by batching it too (or runs MLX's ``custom_function.vmap`` rule), unless a value the
function closes over (or a traced ``nondiff_argnums`` argument) is batched: the rule takes those
unbatched, so the batched equation evaluates but raises if differentiated. The JVP of
``custom_jvp_call`` runs the rule on the current primals and tangents; that of
``custom_vjp_call``, which emits ``custom_lin``, is in ``autodiff/control/custom_lin.py``.
"""

from __future__ import annotations

from autodiff.errors import TransformError
from autodiff.extend import (
    Zero,
    batch_rules,
    bind,
    def_primitive,
    impls,
    instantiate,
    jvp_rules,
    lowerings,
    to_front,
)
from autodiff.interpret import interpret
from autodiff.lower_control import host_rules, is_host
from autodiff.lower_mlx import lower_jaxpr, ref
from autodiff.tracing import as_tracer, aval_of, substituting
from autodiff.transforms.vmap import vmap_jaxpr
from autodiff.tree import tree_flatten, tree_unflatten


class _Rule:
    """A custom rule bound with one equation: the Python function(s), the trees of the
    arguments and outputs, and which traced values the function closed over (``closure``:
    pairs of a tracer and the index of the equation's const it became). Equal for the
    structural cache when the function and trees are (``cache_key``)."""

    __slots__ = ("funs", "in_tree", "out_tree", "closure", "cache_key", "batched", "options")

    def __init__(self, funs, in_tree, out_tree, closure, batched=False, options=None):
        self.funs, self.in_tree, self.out_tree = funs, in_tree, out_tree
        self.closure, self.batched = closure, batched
        # MLX's custom_function: {"closure_constant": bool, "vmap": fn, "jvp": fn}
        self.options = options or {}
        self.cache_key = ("custom", funs, in_tree, out_tree, batched, tuple(self.options.items()))

    def substitution(self, consts):
        return [(t, consts[k]) for t, k in self.closure]

    def __repr__(self):
        return "<" + ", ".join(getattr(f, "__name__", "rule") for f in self.funs) + ">"


def _call_rule(*args, call, rule, num_consts):
    if call.in_avals != list(args):
        raise TypeError("the custom function's operands do not match its jaxpr")
    return list(call.out_avals)


custom_jvp_call_p = def_primitive("custom_jvp_call", "control", _call_rule, multiple_results=True)
custom_vjp_call_p = def_primitive("custom_vjp_call", "control", _call_rule, multiple_results=True)


def custom_jvp_call(call, rule: _Rule, consts, args) -> list:
    """Bind ``custom_jvp_call`` (the typed wrapper; users write ``@ad.custom_jvp``)."""
    return bind(custom_jvp_call_p, *consts, *args, call=call, rule=rule, num_consts=len(consts))


def custom_vjp_call(call, rule: _Rule, consts, args) -> list:
    """Bind ``custom_vjp_call`` (the typed wrapper; users write ``@ad.custom_vjp``)."""
    return bind(custom_vjp_call_p, *consts, *args, call=call, rule=rule, num_consts=len(consts))


def _lower_call(a, ins, outs, call, rule, num_consts):
    if any(is_host(e) for e in call.eqns):  # a loop inside: its own driver
        from autodiff.program import Program

        return f"{ref(Program(call, 'custom'), 'custom')}({', '.join(a)})"
    return f"{ref(lower_jaxpr(call.jaxpr, 'custom'), 'custom')}.fn({', '.join(a)})"


for _p in (custom_jvp_call_p, custom_vjp_call_p):
    impls[_p] = lambda *args, call, rule, num_consts: interpret(call, *args)
    lowerings[_p] = _lower_call
    host_rules[_p] = lambda eqn: any(is_host(e) for e in eqn.params["call"].eqns)


def _check_no_closure_tangents(tangents, num_consts, kind, rule):
    if rule.options.get("closure_constant"):  # MLX's custom_function: captured = constant
        return
    if any(type(t) is not Zero for t in tangents[:num_consts]):
        raise TransformError(
            f"[{kind}] a function with a custom rule is differentiated with respect to a value "
            "it closes over; the rule only says how to differentiate it with respect to its "
            "arguments. Pass that value as an argument instead."
        )


def _custom_jvp_jvp(primals, tangents, call, rule, num_consts):
    _check_no_closure_tangents(tangents, num_consts, "custom_jvp", rule)
    consts, args = primals[:num_consts], primals[num_consts:]
    ts = [as_tracer(instantiate(t)) for t in tangents[num_consts:]]
    args = [as_tracer(a) for a in args]
    with substituting(rule.substitution(consts)):
        out, t_out = rule.funs[0](
            tuple(tree_unflatten(rule.in_tree, args)), tuple(tree_unflatten(rule.in_tree, ts))
        )
    outs, tree = tree_flatten(out)
    t_outs, t_tree = tree_flatten(t_out)
    if tree != rule.out_tree or t_tree != rule.out_tree:
        raise TransformError(
            f"[custom_jvp] the rule must return (output, tangent) with the function's output "
            f"structure {rule.out_tree}; it returned {tree} and {t_tree}"
        )
    for o, t in zip(outs, t_outs):
        if aval_of(o).shape != aval_of(t).shape:
            raise TransformError(
                f"[custom_jvp] a tangent of type {aval_of(t).str_short()} for an output of type "
                f"{aval_of(o).str_short()}: the rule's tangents must have the outputs' shapes"
            )
    return outs, t_outs


jvp_rules[custom_jvp_call_p] = _custom_jvp_jvp


def _custom_batch(prim):
    def rule(size, args, dims, call, rule, num_consts):
        if rule.options.get("vmap") is not None:  # MLX's custom_function.vmap
            return _user_vmap(rule, args[num_consts:], dims[num_consts:])
        # a batched closure (or traced nondiff argument): the call is batched, but the rule
        # can't be (it takes those values unbatched), so differentiating it afterwards raises
        closure_dims = list(dims[:num_consts])
        batched_closure = any(d is not None for d in closure_dims)
        args = list(args[:num_consts]) + [
            to_front(a, d, size) for a, d in zip(args[num_consts:], dims[num_consts:])
        ]
        in_dims = closure_dims + [0] * (len(args) - num_consts)
        body = vmap_jaxpr(call, in_dims, size, [0] * len(call.out_avals))[0]
        from autodiff.batching import vmap

        if batched_closure:
            funs = (_BatchedClosure(prim.name),) * len(rule.funs)
        else:
            funs = tuple(vmap(f) for f in rule.funs)
        batched = _Rule(funs, rule.in_tree, rule.out_tree, rule.closure, batched=True)
        from autodiff.control.scan_rules import opened

        body, extra = opened(body)
        # extra consts of the batched body go first; the closure indices shift by them
        batched.closure = [(t, k + len(extra)) for t, k in rule.closure]
        outs = bind(
            prim, *extra, *args, call=body, rule=batched, num_consts=num_consts + len(extra)
        )
        return outs, [0] * len(outs)

    batch_rules[prim] = rule


class _BatchedClosure:
    """The rule of a custom function batched over a value it closes over (or a traced
    ``nondiff_argnums`` argument): differentiating it raises."""

    __slots__ = ("prim", "__name__")

    def __init__(self, prim: str):
        self.prim, self.__name__ = prim, "batched_closure"

    def __call__(self, *args):
        kind = self.prim.replace("_call", "")
        raise TransformError(
            f"[{kind}] a {kind} function is differentiated after vmap batched a value it closes "
            "over or a nondiff_argnums argument; the rule takes those unbatched. Differentiate "
            "inside the vmap instead (vmap of grad), or pass that value as an ordinary argument."
        )

    def __eq__(self, other):
        return type(other) is _BatchedClosure and other.prim == self.prim

    def __hash__(self):
        return hash(("batched_closure", self.prim))


def _user_vmap(rule, args, dims):
    inputs = tree_unflatten(rule.in_tree, args)
    axes = tree_unflatten(rule.in_tree, dims)
    single = len(inputs) == 1
    outs, out_axes = rule.options["vmap"](
        inputs[0] if single else inputs, axes[0] if single else axes
    )
    leaves, tree = tree_flatten(outs)
    if tree != rule.out_tree:
        raise TransformError(
            f"[custom_function] the vmap rule must return outputs with the function's output "
            f"structure {rule.out_tree}; it returned {tree}"
        )
    from autodiff.api_util import broadcast_prefix

    dims_out = broadcast_prefix(out_axes, outs, "out_axes", "custom_function.vmap")
    return leaves, [None if d is None else d % aval_of(x).ndim for x, d in zip(leaves, dims_out)]


_custom_batch(custom_jvp_call_p)
_custom_batch(custom_vjp_call_p)

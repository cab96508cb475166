"""Custom derivatives: ``custom_jvp`` and ``custom_vjp``, with JAX's API.

``custom_jvp_call`` holds the function as a sub-jaxpr (``call``) and the user's rule as a
``_Rule``; its JVP runs the rule on the current primals and tangents. ``custom_vjp_call`` does
the same with ``fwd``, and its JVP emits ``custom_lin``: linear in the tangents, holding the
residuals, whose transpose runs ``bwd``. So ``vjp`` (= jvp, partial evaluation, transpose) uses
fwd and bwd, while evaluating a ``custom_lin`` (forward mode on a custom_vjp function) raises
JAX's error. Everything else (evaluation, lowering, batching) treats the equations as calls of
``call``; batching keeps the custom rule by batching it too.

Rules run when the equation is transformed, after the trace that bound it has finished, so the
values the function closed over are passed to the rule by substitution (``tracing.substituting``):
the rule may close over what the function closes over.
"""

from __future__ import annotations

import functools

from autodiff.control.common import trace_sub
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
    mark_linear,
    to_front,
    transpose_rules,
)
from autodiff.interpret import interpret
from autodiff.ir import ClosedJaxpr
from autodiff.lower_control import host_rules, is_host
from autodiff.lower_mlx import helpers, lower_jaxpr, ref
from autodiff.tracing import (
    Tracer,
    _state,
    as_tracer,
    aval_of,
    is_tracing,
    substituting,
    trace_flat,
)
from autodiff.transforms.jvp import jvp_eval
from autodiff.transforms.vmap import vmap_eval, vmap_jaxpr
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


class _Bound:
    """``fun`` with leading arguments bound; equal when the function and arguments are (so
    rules bound in different traces of one function share cache entries)."""

    __slots__ = ("fun", "args", "__name__")

    def __init__(self, fun, *args):
        self.fun, self.args = fun, args
        self.__name__ = getattr(args[0], "__name__", "rule") if args else "rule"

    def __call__(self, *more):
        return self.fun(*self.args, *more)

    def __eq__(self, other):
        return type(other) is _Bound and self.fun is other.fun and _same(self.args, other.args)

    def __hash__(self):
        return hash((self.fun, len(self.args), id(self.args[0]) if self.args else 0))


def _same(a, b) -> bool:
    try:
        return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b))
    except Exception:  # noqa: BLE001 - arrays and the like compare by identity here
        return False


def _closure_pairs(consts) -> list:
    """For each const: the tracers it stands for (itself, and any tracer an enclosing rule's
    substitution maps onto it), so a nested rule can substitute them all."""
    pairs = [(c, k) for k, c in enumerate(consts) if type(c) is Tracer]
    for _, (orig, value) in list(_state.subst.items()):
        for k, c in enumerate(consts):
            if type(value) is Tracer and type(c) is Tracer and value.ir_var is c.ir_var:
                pairs.append((orig, k))
    return pairs


def _trace_call(fun, nondiff, argnums, args, transform):
    diff_args = [a for i, a in enumerate(args) if i not in argnums]
    leaves, tree = tree_flatten(tuple(diff_args))

    def call(*diff):
        it = iter(diff)
        return fun(*[nondiff[i] if i in argnums else next(it) for i in range(len(args))])

    body, consts, out_tree = trace_sub(call, tree, [aval_of(x) for x in leaves], transform)
    return body, consts, leaves, tree, out_tree


def _static_args(args, argnums):
    return {i: args[i] for i in argnums}


class custom_jvp:
    """A function with a custom JVP rule, as ``jax.custom_jvp``.

    Example:
        >>> @ad.custom_jvp
        ... def softplus(x):
        ...     return anp.log1p(anp.exp(x))
        >>> @softplus.defjvp
        ... def softplus_jvp(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     return softplus(x), t * anp.sigmoid(x)   # finite at x = 100
    """

    def __init__(self, fun, nondiff_argnums=()):
        self.fun, self.nondiff_argnums = fun, tuple(nondiff_argnums)
        self.jvp = None
        functools.update_wrapper(self, fun, updated=())

    def defjvp(self, jvp):
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``."""
        self.jvp = jvp
        return jvp

    def __call__(self, *args):
        if self.jvp is None:
            raise TypeError(
                f"[custom_jvp] `{self.__name__}` has no rule: decorate one with .defjvp"
            )
        if not is_tracing():
            return self.fun(*args)
        argnums = {n % len(args) for n in self.nondiff_argnums}
        nondiff = _static_args(args, argnums)
        body, consts, leaves, tree, out_tree = _trace_call(
            self.fun, nondiff, argnums, args, "custom_jvp"
        )
        rule_fun = _Bound(_call_jvp_rule, self.jvp, tuple(nondiff[i] for i in sorted(argnums)))
        rule = _Rule((rule_fun,), tree, out_tree, _closure_pairs(consts))
        outs = custom_jvp_call(body, rule, consts, leaves)
        return tree_unflatten(out_tree, outs)


def _call_jvp_rule(jvp, nondiff, primals, tangents):
    return jvp(*nondiff, primals, tangents)


class custom_vjp:
    """A function with a custom VJP, as ``jax.custom_vjp``: ``fwd`` returns the output and
    residuals, ``bwd`` maps residuals and the output cotangent to one cotangent per argument.
    Forward mode (``jvp``) of it raises; use ``custom_jvp`` for that.

    Example:
        >>> @ad.custom_vjp
        ... def clip_gradient(x):
        ...     return x
        >>> clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (anp.clip(g, -1, 1),))
    """

    def __init__(self, fun, nondiff_argnums=()):
        self.fun, self.nondiff_argnums = fun, tuple(nondiff_argnums)
        self.fwd = self.bwd = None
        functools.update_wrapper(self, fun, updated=())

    def defvjp(self, fwd, bwd):
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(*nondiff_args, residuals, g) ->
        tuple of cotangents`` (one per differentiable argument; None means zero)."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise TypeError(f"[custom_vjp] `{self.__name__}` has no rule: set it with .defvjp")
        if not is_tracing():
            return self.fun(*args)
        argnums = {n % len(args) for n in self.nondiff_argnums}
        nondiff = _static_args(args, argnums)
        body, consts, leaves, tree, out_tree = _trace_call(
            self.fun, nondiff, argnums, args, "custom_vjp"
        )
        static = tuple(nondiff[i] for i in sorted(argnums))
        fwd = _Bound(_call_fwd, self.fwd, tuple(sorted(argnums)), static)
        bwd = _Bound(_call_bwd, self.bwd, static)
        rule = _Rule((fwd, bwd), tree, out_tree, _closure_pairs(consts))
        outs = custom_vjp_call(body, rule, consts, leaves)
        return tree_unflatten(out_tree, outs)


def _call_fwd(fwd, argnums, static, *diff):
    it, st = iter(diff), iter(static)
    n = len(diff) + len(static)
    return fwd(*[next(st) if i in argnums else next(it) for i in range(n)])


def _call_bwd(bwd, static, res, g):
    return bwd(*static, res, g)


# ---------------------------------------------------------------------------------------------
# The primitives


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


def _custom_batch(prim):
    def rule(size, args, dims, call, rule, num_consts):
        if rule.options.get("vmap") is not None:  # MLX's custom_function.vmap
            return _user_vmap(rule, args[num_consts:], dims[num_consts:])
        if any(d is not None for d in dims[:num_consts]):
            raise TransformError(
                f"[vmap] of a {prim.name.replace('_call', '')} function that closes over a "
                "batched value: pass that value as an argument instead"
            )
        args = list(args[:num_consts]) + [
            to_front(a, d, size) for a, d in zip(args[num_consts:], dims[num_consts:])
        ]
        in_dims = [None] * num_consts + [0] * (len(args) - num_consts)
        body = vmap_jaxpr(call, in_dims, size, [0] * len(call.out_avals))[0]
        from autodiff.batching import vmap

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

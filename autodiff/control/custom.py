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

This module holds the user-facing ``custom_jvp`` and ``custom_vjp``; the primitives they bind
are in ``autodiff/control/custom_call.py`` and ``custom_lin`` (custom_vjp's derivative) in
``autodiff/control/custom_lin.py``. Their names are re-exported here.
"""

from __future__ import annotations

import functools

from autodiff import lax as L
from autodiff.control.common import trace_sub, with_leading_invars
from autodiff.control.custom_call import (  # noqa: F401  (re-exported)
    _Rule,
    custom_jvp_call,
    custom_jvp_call_p,
    custom_vjp_call,
    custom_vjp_call_p,
)
from autodiff.control.custom_lin import custom_lin, custom_lin_p  # noqa: F401  (re-exported)
from autodiff.tracing import Tracer, _state, aval_of, is_tracing
from autodiff.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten


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
    # Traced nondiff arguments are consts even if the function does not read them: the rule
    # receives them, so it must see them substituted when it runs (after this trace ends).
    known = {c.ir_var for c in consts if type(c) is Tracer}
    traced = []
    for x in (x for i in argnums for x in tree_leaves(nondiff[i])):
        if type(x) is Tracer and x.ir_var not in known:
            known.add(x.ir_var)
            traced.append(x)
    if traced:
        body = with_leading_invars(body, [aval_of(x) for x in traced])
        consts = traced + list(consts)
    return body, consts, leaves, tree, out_tree


def _nondiff(args, nondiff_argnums):
    """The nondiff argument numbers (normalised, in the order given: the order the rule
    takes them, as JAX) and their values by position. Traced values among them are not
    differentiated (JAX's stop_gradient on them): their derivative is zero."""
    order = list(dict.fromkeys(n % len(args) for n in nondiff_argnums))
    return order, {i: _stopped(args[i]) for i in order}


def _stopped(arg):
    if not any(type(x) is Tracer for x in tree_leaves(arg)):
        return arg  # static (a callable, a number, ...): passed as it is
    return tree_map(lambda x: L.stop_gradient(x) if type(x) is Tracer else x, arg)


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
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``: the
        ``nondiff_argnums`` arguments come first, in the order ``nondiff_argnums`` lists them."""
        self.jvp = jvp
        return jvp

    def __call__(self, *args):
        if self.jvp is None:
            raise TypeError(
                f"[custom_jvp] `{self.__name__}` has no rule: decorate one with .defjvp"
            )
        if not is_tracing():
            return self.fun(*args)
        order, nondiff = _nondiff(args, self.nondiff_argnums)
        body, consts, leaves, tree, out_tree = _trace_call(
            self.fun, nondiff, set(order), args, "custom_jvp"
        )
        rule_fun = _Bound(_call_jvp_rule, self.jvp, tuple(nondiff[i] for i in order))
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
        """Set ``fwd(*args) -> (out, residuals)`` (every argument, in its place) and
        ``bwd(*nondiff_args, residuals, g) -> tuple of cotangents`` (the ``nondiff_argnums``
        arguments in the order it lists them; one cotangent per differentiable argument, None
        meaning zero)."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise TypeError(f"[custom_vjp] `{self.__name__}` has no rule: set it with .defvjp")
        if not is_tracing():
            return self.fun(*args)
        order, nondiff = _nondiff(args, self.nondiff_argnums)
        body, consts, leaves, tree, out_tree = _trace_call(
            self.fun, nondiff, set(order), args, "custom_vjp"
        )
        positions = tuple(sorted(order))  # fwd takes every argument in its place
        fwd = _Bound(_call_fwd, self.fwd, positions, tuple(nondiff[i] for i in positions))
        bwd = _Bound(_call_bwd, self.bwd, tuple(nondiff[i] for i in order))  # as given
        rule = _Rule((fwd, bwd), tree, out_tree, _closure_pairs(consts))
        outs = custom_vjp_call(body, rule, consts, leaves)
        return tree_unflatten(out_tree, outs)


def _call_fwd(fwd, argnums, static, *diff):
    it, st = iter(diff), iter(static)
    n = len(diff) + len(static)
    return fwd(*[next(st) if i in argnums else next(it) for i in range(n)])


def _call_bwd(bwd, static, res, g):
    return bwd(*static, res, g)

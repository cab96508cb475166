"""``custom_function``, as ``mx.custom_function``, on autodiff's custom-rule machinery."""

from __future__ import annotations

import functools

from autodiff.control.custom import (
    _Bound,
    _closure_pairs,
    _Rule,
    _trace_call,
    custom_jvp_call,
    custom_vjp_call,
)
from autodiff.tracing import is_tracing
from autodiff.tree import tree_unflatten


def _one(xs):
    """MLX passes a single argument (output) as itself, several as a tuple."""
    return xs[0] if len(xs) == 1 else tuple(xs)


class custom_function:
    """A function with custom transformations, as ``mx.custom_function``: ``.vjp`` (used by
    reverse mode), ``.jvp`` (forward mode, and reverse mode too when there is no ``.vjp``) and
    ``.vmap``; transformations left undefined are the default ones. As in MLX, arrays the
    function captures are constants: nothing is differentiated with respect to them.

    Example:
        >>> @mx.custom_function
        ... def f(x, y):
        ...     return mx.sin(x) * y
        >>> @f.vjp
        ... def f_vjp(primals, cotangent, output):
        ...     x, y = primals
        ...     return cotangent * mx.cos(x) * y, cotangent * mx.sin(x)
    """

    def __init__(self, fun):
        self.fun = fun
        self._vjp = self._jvp = self._vmap = None
        functools.update_wrapper(self, fun, updated=())

    def vjp(self, f):
        """Set ``f(primals, cotangents, outputs) -> cotangents of the primals``."""
        self._vjp = f
        return self

    def jvp(self, f):
        """Set ``f(primals, tangents) -> tangents of the outputs``."""
        self._jvp = f
        return self

    def vmap(self, f):
        """Set ``f(inputs, axes) -> (outputs, output axes)``."""
        self._vmap = f
        return self

    def __call__(self, *args):
        if not is_tracing():
            return self.fun(*args)
        body, consts, leaves, tree, out_tree = _trace_call(
            self.fun, {}, set(), args, "custom_function"
        )
        options = {"closure_constant": True, "vmap": self._vmap}
        pairs = _closure_pairs(consts)
        if self._vjp is not None:
            if self._jvp is not None:
                options["jvp"] = _Bound(_mlx_jvp, self._jvp)
            fwd, bwd = _Bound(_fwd, self.fun), _Bound(_bwd, self._vjp)
            rule = _Rule((fwd, bwd), tree, out_tree, pairs, options=options)
            outs = custom_vjp_call(body, rule, consts, leaves)
        else:
            rule_fun = _Bound(_jvp_rule, self.fun, self._jvp)
            rule = _Rule((rule_fun,), tree, out_tree, pairs, options=options)
            outs = custom_jvp_call(body, rule, consts, leaves)
        return tree_unflatten(out_tree, outs)


def _fwd(fun, *args):
    out = fun(*args)
    return out, (args, out)


def _bwd(user_vjp, res, g):
    args, out = res
    cts = user_vjp(_one(args), g, out)
    return (cts,) if len(args) == 1 else tuple(cts)


def _mlx_jvp(user_jvp, primals, tangents):
    return user_jvp(_one(primals), _one(tangents))


def _jvp_rule(fun, user_jvp, primals, tangents):
    if user_jvp is None:  # no custom JVP: the function's own derivative
        from autodiff.forward import jvp

        return jvp(fun, tuple(primals), tuple(tangents))
    return fun(*primals), user_jvp(_one(primals), _one(tangents))

"""Algebraic simplification, one forward pass of small local rewrites.

Each rewrite looks at one equation (inputs already rewritten) and returns either an atom that
replaces its output, a new ``(prim, inputs, params)`` to rewrite further, or None. ``Filled``
arrays (``broadcast_in_dim`` of a literal) are recognised as constants, so ``x * ones`` is ``x``
and a filled operand of an elementwise op becomes a rank-0 literal. Equations on literals only
are folded (rank-0 results) by ``transforms/fold.py``.
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.dtypes import is_float
from autodiff.ir import Eqn, Jaxpr, Literal, Params, ShapedArray, Var
from autodiff.transforms.fold import fold

rewrites: dict = {}


class _Ctx:
    """Definitions of the variables seen so far, for rules that look through their inputs."""

    __slots__ = ("defs", "fills")

    def __init__(self):
        self.defs: dict[Var, Eqn] = {}
        self.fills: dict[Var, Literal] = {}  # vars that are a broadcast literal

    def define(self, eqn: Eqn):
        for v in eqn.outputs:
            self.defs[v] = eqn
        if eqn.prim is P.broadcast_in_dim and type(eqn.inputs[0]) is Literal:
            self.fills[eqn.outputs[0]] = eqn.inputs[0]

    def filled(self, a) -> Literal | None:
        """The literal a filled array (or literal) consists of, else None."""
        return a if type(a) is Literal else self.fills.get(a)

    def is_const(self, a, value) -> bool:
        lit = self.filled(a)
        return lit is not None and lit.val == value

    def producer(self, a, prim) -> Eqn | None:
        d = self.defs.get(a) if type(a) is Var else None
        return d if d is not None and d.prim is prim else None


def _same_shape(a, out: ShapedArray) -> bool:
    return a.aval == out


def _add(ctx, out, x, y):
    if ctx.is_const(y, 0) and _same_shape(x, out):
        return x
    if ctx.is_const(x, 0) and _same_shape(y, out):
        return y


def _sub(ctx, out, x, y):
    if ctx.is_const(y, 0) and _same_shape(x, out):
        return x
    if ctx.is_const(x, 0) and _same_shape(y, out):
        return P.neg, [y], {}


def _mul(ctx, out, x, y):
    for a, b in ((x, y), (y, x)):
        if ctx.is_const(b, 1) and _same_shape(a, out):
            return a
        if ctx.is_const(b, -1) and _same_shape(a, out):
            return P.neg, [a], {}
        if type(b) is Literal and type(a) is Var and is_float(out.dtype):
            scaled = _scaled(ctx, a)
            if scaled is not None:  # (y * c1) * c2 = y * (c1 * c2)
                return P.mul, [scaled[0], Literal(scaled[1].val * b.val, b.aval)], {}
            d = ctx.producer(a, P.neg)
            if d is not None:  # (-y) * c = y * -c
                return P.mul, [d.inputs[0], Literal(-b.val, b.aval)], {}


def _logical(absorbing):
    """``x and False`` is False, ``x and True`` is x (``or``: the other way round)."""

    def rule(ctx, out, x, y):
        for a, b in ((x, y), (y, x)):
            lit = ctx.filled(b)
            if lit is None:
                continue
            if bool(lit.val) == absorbing:
                return _filled_value(lit, out)
            if _same_shape(a, out):
                return a

    return rule


def _filled_value(lit, out):
    if out.shape == ():
        return lit
    return P.broadcast_in_dim, [lit], {"shape": out.shape, "broadcast_dimensions": ()}


def _div(ctx, out, x, y):
    if ctx.is_const(y, 1) and _same_shape(x, out):
        return x


def _pow(ctx, out, x, y):
    if ctx.is_const(y, 1) and _same_shape(x, out):
        return x
    if ctx.is_const(y, 2) and _same_shape(x, out):
        return P.square, [x], {}
    if ctx.is_const(y, 0) and is_float(out.dtype):  # x**0 == 1 even for inf and nan
        return (
            P.broadcast_in_dim,
            [Literal(1.0, ShapedArray((), out.dtype))],
            {"shape": out.shape, "broadcast_dimensions": ()},
        )


def _neg(ctx, out, x):
    d = ctx.producer(x, P.neg)
    if d is not None:
        return d.inputs[0]
    scaled = _scaled(ctx, x)
    if scaled is not None:  # -(y * c) = y * -c
        y, c = scaled
        return P.mul, [y, Literal(-c.val, c.aval)], {}


def _scaled(ctx, x):
    """``(y, c)`` if ``x = y * c`` for a literal ``c``, else None."""
    d = ctx.producer(x, P.mul)
    if d is not None:
        a, b = d.inputs
        if type(b) is Literal and type(a) is Var:
            return a, b
        if type(a) is Literal and type(b) is Var:
            return b, a
    return None


def _select(ctx, out, p, x, y):
    if x is y and _same_shape(x, out):
        return x
    lit = ctx.filled(p)
    if lit is not None:
        chosen = x if lit.val else y
        if _same_shape(chosen, out):
            return chosen


def _broadcast_in_dim(ctx, out, x, shape, broadcast_dimensions):
    if x.aval.shape == shape and broadcast_dimensions == tuple(range(len(shape))):
        return x
    d = ctx.producer(x, P.broadcast_in_dim)
    if d is not None:
        dims = tuple(broadcast_dimensions[i] for i in d.params["broadcast_dimensions"])
        return P.broadcast_in_dim, [d.inputs[0]], {"shape": shape, "broadcast_dimensions": dims}


def _filled(ctx, out, x, **_):
    """reshape/transpose/squeeze/expand_dims/slice of a filled array is a filled array."""
    lit = ctx.filled(x)
    if lit is not None and type(x) is Var:
        return P.broadcast_in_dim, [lit], {"shape": out.shape, "broadcast_dimensions": ()}


_RESHAPES = (P.reshape, P.squeeze, P.expand_dims)


def _reshape(ctx, out, x, **_):
    """Chains of reshape/squeeze/expand_dims are one reshape (or none)."""
    d = ctx.defs.get(x) if type(x) is Var else None
    if d is not None and d.prim in _RESHAPES:
        inner = d.inputs[0]
        if inner.aval.shape == out.shape:
            return inner
        return P.reshape, [inner], {"new_sizes": out.shape}
    return _filled(ctx, out, x)


def _transpose(ctx, out, x, permutation):
    if permutation == tuple(range(len(permutation))):
        return x
    d = ctx.producer(x, P.transpose)
    if d is not None:
        inner = d.params["permutation"]
        return P.transpose, [d.inputs[0]], {"permutation": tuple(inner[p] for p in permutation)}
    return _filled(ctx, out, x)


def _slice(ctx, out, x, **params):
    return x if x.aval == out else _filled(ctx, out, x)


def _reduce_sum(ctx, out, x, axes):
    lit = ctx.filled(x)
    if lit is not None and type(x) is Var:
        n = 1
        for a in axes:
            n *= x.aval.shape[a]
        total = Literal(lit.val * n, lit.aval)
        if out.shape == ():
            return total
        return P.broadcast_in_dim, [total], {"shape": out.shape, "broadcast_dimensions": ()}


rewrites[P.add] = _add
rewrites[P.sub] = _sub
rewrites[P.mul] = _mul
rewrites[P.div] = _div
rewrites[P.logical_and] = _logical(absorbing=False)
rewrites[P.logical_or] = _logical(absorbing=True)
rewrites[P.pow_] = _pow
rewrites[P.neg] = _neg
rewrites[P.select] = _select
rewrites[P.broadcast_in_dim] = _broadcast_in_dim
rewrites[P.reshape] = _reshape
rewrites[P.transpose] = _transpose
rewrites[P.squeeze] = _reshape
rewrites[P.expand_dims] = _reshape
rewrites[P.slice_] = _slice
rewrites[P.reduce_sum] = _reduce_sum
rewrites[P.convert] = lambda ctx, out, x, new_dtype: x if x.aval == out else None


# ---------------------------------------------------------------------------------------------


def _fold(prim, ins, params, out: ShapedArray) -> Literal | None:
    """Evaluate an equation whose inputs are all literals (rank-0 results only)."""
    if prim.multiple_results:
        return None
    return fold(prim, ins, params, out)


_ELEMENTWISE_LITERAL_OK = frozenset(
    p for p in P.PRIMITIVES.values() if p.family in ("binary", "compare")
) | {P.select}


def simplify(jaxpr: Jaxpr) -> Jaxpr:
    """Apply the rewrites (and literal folding) in one forward pass."""
    ctx = _Ctx()
    env: dict = {}
    eqns: list[Eqn] = []
    changed = False

    def sub(a):
        return env.get(a, a) if type(a) is Var else a

    for eqn in jaxpr.eqns:
        prim, ins, params = eqn.prim, [sub(a) for a in eqn.inputs], eqn.params
        outs = eqn.outputs
        replacement = None
        for _ in range(8):  # rewrite to a fixed point, bounded
            if len(outs) == 1 and all(type(a) is Literal for a in ins) and ins:
                replacement = _fold(prim, ins, params, outs[0].aval)
                if replacement is not None:
                    break
            fills = ctx.fills
            if (
                P.is_elementwise(prim)
                and ins
                and all(type(a) is Literal or a in fills for a in ins)
            ):
                # filled op filled -> filled: fold the scalars, broadcast the result
                out = outs[0].aval
                lit = _fold(prim, [ctx.filled(a) for a in ins], params, out.update(shape=()))
                prim, ins, params = (
                    P.broadcast_in_dim,
                    [lit],
                    Params.make({"shape": out.shape, "broadcast_dimensions": ()}),
                )
                changed = True
                continue
            if prim in _ELEMENTWISE_LITERAL_OK and any(a in ctx.fills for a in ins):
                ins = _literalize(ctx, prim, ins, outs[0].aval)
            rule = rewrites.get(prim)
            r = rule(ctx, outs[0].aval, *ins, **params) if rule is not None else None
            if r is None:
                break
            if type(r) is not tuple:
                replacement = r
                break
            prim, ins, params = r[0], r[1], Params.make(r[2])
            changed = True
        if replacement is not None:
            env[outs[0]] = replacement
            changed = True
            continue
        if (
            prim is not eqn.prim
            or params is not eqn.params
            or any(a is not b for a, b in zip(ins, eqn.inputs))
        ):
            eqn = Eqn(prim, ins, params, outs)
            changed = True
        eqns.append(eqn)
        ctx.define(eqn)
    if not changed:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, [sub(a) for a in jaxpr.outvars])


def _literalize(ctx, prim, ins, out):
    """Filled operands of an elementwise op become rank-0 literals, as long as one value
    operand keeps the output's full shape (a select's predicate may always be rank 0)."""
    values = [1, 2] if prim is P.select else list(range(len(ins)))
    keep_one = not any(
        ctx.filled(ins[i]) is None and ins[i].aval.shape == out.shape for i in values
    )
    new = list(ins)
    for i in range(len(ins)):
        lit = ctx.filled(ins[i])
        if lit is None or type(ins[i]) is not Var:
            continue
        if keep_one and i in values:
            keep_one = False
            continue
        new[i] = lit
    return new

"""The JVP rules of the core primitives (``autodiff/primitives.py``): elementwise, then shape,
indexing, reductions and contraction, most in one line through the builders of
``transforms/jvp.py`` (``defjvp``, ``deflinear``, ``defzero``), whose docstring states
the rule contract and the conventions at kinks. Registered into its ``jvp_rules`` when that
module is imported; the families in ``autodiff/ops/`` register their own.
"""

from __future__ import annotations

import math

from autodiff import lax
from autodiff import primitives as P
from autodiff.dtypes import is_complex, is_inexact
from autodiff.tracing import aval_of, bind
from autodiff.transforms.jvp import (
    Zero,
    add_tangents,
    defjvp,
    deflinear,
    defzero,
    jvp_rules,
    mark_linear,
)

# ---------------------------------------------------------------------------------------------
# Elementwise rules

L = lax
mul, add, sub, div, neg = L.mul, L.add, L.sub, L.div, L.neg

deflinear(P.neg)
deflinear(P.add)
deflinear(P.sub)
deflinear(P.stop_gradient, linear_argnums=())


def _abs_jvp(t, y, x):
    if not is_complex(aval_of(x).dtype):
        return L.select(L.ge(x, 0.0), t, neg(t))  # abs'(0) = 1, as JAX
    # Re(t conj(x)) / |x|, and 0 at x == 0 (JAX's rule)
    nonzero = L.convert(_replace_zero(y), aval_of(x).dtype)
    return L.real(mul(t, div(L.conj(x), nonzero)))


defjvp(P.abs_, _abs_jvp, use_out=True)
defjvp(P.square, lambda t, x: mul(t, mul(x, 2.0)))
defjvp(P.reciprocal, lambda t, y, x: neg(mul(t, L.square(y))), use_out=True)
defjvp(P.sqrt, lambda t, y, x: div(t, mul(y, 2.0)), use_out=True)
defjvp(P.rsqrt, lambda t, y, x: mul(t, mul(div(y, x), -0.5)), use_out=True)
defjvp(P.exp, lambda t, y, x: mul(t, y), use_out=True)
defjvp(P.expm1, lambda t, y, x: mul(t, add(y, 1.0)), use_out=True)
defjvp(P.log, lambda t, x: div(t, x))
defjvp(P.log1p, lambda t, x: div(t, add(x, 1.0)))
defjvp(P.log2, lambda t, x: div(t, mul(x, math.log(2))))
defjvp(P.log10, lambda t, x: div(t, mul(x, math.log(10))))
defjvp(P.sin, lambda t, x: mul(t, L.cos(x)))
defjvp(P.cos, lambda t, x: neg(mul(t, L.sin(x))))
defjvp(P.tan, lambda t, y, x: mul(t, add(L.square(y), 1.0)), use_out=True)
defjvp(P.arcsin, lambda t, x: mul(t, L.rsqrt(sub(1.0, L.square(x)))))
defjvp(P.arccos, lambda t, x: neg(mul(t, L.rsqrt(sub(1.0, L.square(x))))))
defjvp(P.arctan, lambda t, x: div(t, add(L.square(x), 1.0)))
defjvp(P.sinh, lambda t, x: mul(t, L.cosh(x)))
defjvp(P.cosh, lambda t, x: mul(t, L.sinh(x)))
defjvp(P.tanh, lambda t, y, x: mul(t, sub(1.0, L.square(y))), use_out=True)
defjvp(P.arcsinh, lambda t, x: mul(t, L.rsqrt(add(L.square(x), 1.0))))
defjvp(P.arccosh, lambda t, x: mul(t, L.rsqrt(mul(sub(x, 1.0), add(x, 1.0)))))
defjvp(P.arctanh, lambda t, x: div(t, sub(1.0, L.square(x))))
defjvp(P.sigmoid, lambda t, y, x: mul(t, mul(y, sub(1.0, y))), use_out=True)
defjvp(P.erf, lambda t, x: mul(t, mul(L.exp(neg(L.square(x))), 2 / math.sqrt(math.pi))))
defjvp(
    P.erfinv, lambda t, y, x: mul(t, mul(L.exp(L.square(y)), math.sqrt(math.pi) / 2)), use_out=True
)
for _p in (P.sign, P.floor, P.ceil, P.round_, P.logical_not, *P.family("compare")):
    defzero(_p)
for _p in (P.logical_and, P.logical_or):
    defzero(_p)

defjvp(P.mul, lambda tx, x, y: mul(tx, y), lambda ty, x, y: mul(x, ty))
defjvp(
    P.div,
    lambda tx, out, x, y: div(tx, y),
    lambda ty, out, x, y: neg(mul(ty, div(out, y))),
    use_out=True,
)


def _replace_zero(x):
    return L.select(L.eq(x, 0.0), L.full(aval_of(x).shape, 1.0, aval_of(x).dtype), x)


def _pow_dx(t, out, x, y):
    # y * x**(y-1). It is 0 * inf = nan only at x == y == 0, where the partial derivative
    # (of the constant x**0 == 1) is 0: that one point is guarded, with a safe x inside the
    # guard so no nan reaches either branch's derivative. A guard on y == 0 alone would also
    # hold the jacobian's y-derivative (1/x there) at zero: the mixed partial of x**y.
    at_00 = L.logical_and(L.eq(x, 0.0), L.eq(y, 0.0))
    safe_x = L.select(at_00, L.full(aval_of(x).shape, 1.0, aval_of(x).dtype), x)
    jac = mul(y, L.pow_(safe_x, sub(y, 1.0)))
    jac = L.select(at_00, L.full(aval_of(jac).shape, 0.0, aval_of(jac).dtype), jac)
    return mul(t, jac)


def _pow_dy(t, out, x, y):
    # log(x) * x**y, with log(0) replaced so that 0**y has derivative 0 in y.
    return mul(t, mul(L.log(_replace_zero(x)), out))


defjvp(P.pow_, _pow_dx, _pow_dy, use_out=True)


def _balanced_eq(x, z, y):
    """1 where x == z != y, 0.5 where x == z == y, else 0."""
    one = L.select(
        L.eq(y, z),
        L.full(aval_of(z).shape, 0.5, aval_of(z).dtype),
        L.full(aval_of(z).shape, 1.0, aval_of(z).dtype),
    )
    return L.select(L.eq(x, z), one, L.full(aval_of(z).shape, 0.0, aval_of(z).dtype))


defjvp(
    P.max_,
    lambda t, out, x, y: mul(t, _balanced_eq(x, out, y)),
    lambda t, out, x, y: mul(t, _balanced_eq(y, out, x)),
    use_out=True,
)
defjvp(
    P.min_,
    lambda t, out, x, y: mul(t, _balanced_eq(x, out, y)),
    lambda t, out, x, y: mul(t, _balanced_eq(y, out, x)),
    use_out=True,
)
defjvp(P.rem, lambda t, x, y: t, lambda t, x, y: mul(t, neg(L.floor(div(x, y)))))


def _arctan2_denominator(x, y):
    return add(L.square(x), L.square(y))


defjvp(
    P.arctan2,
    lambda t, x, y: mul(t, div(y, _arctan2_denominator(x, y))),
    lambda t, x, y: mul(t, div(neg(x), _arctan2_denominator(x, y))),
)
deflinear(P.select, linear_argnums=(1, 2))


def _convert_jvp(primals, tangents, new_dtype):
    (x,), (t,) = primals, tangents
    out = L.convert(x, new_dtype)
    if type(t) is Zero or not (is_inexact(new_dtype) and is_inexact(aval_of(x).dtype)):
        return out, Zero(aval_of(out))
    return out, L.convert(t, new_dtype)


jvp_rules[P.convert] = _convert_jvp
mark_linear(P.mul, P.div, P.convert)

# ---------------------------------------------------------------------------------------------
# Structural, indexing, reductions, contraction

for _p in (
    P.broadcast_in_dim,
    P.reshape,
    P.transpose,
    P.squeeze,
    P.expand_dims,
    P.slice_,
    P.pad,
    P.concatenate,
    P.reduce_sum,
    P.cumsum,
):
    deflinear(_p)
deflinear(P.take, linear_argnums=(0,))
deflinear(P.take_along_axis, linear_argnums=(0,))
deflinear(P.scatter_add, linear_argnums=(0, 2))
defzero(P.argmax)
defzero(P.argmin)
defzero(P.iota)


def _chooser(prim):
    def rule(primals, tangents, axes):
        (x,), (t,) = primals, tangents
        out = bind(prim, x, axes=axes)
        if type(t) is Zero:
            return out, Zero(aval_of(out))
        shape = aval_of(x).shape
        kept = [i for i in range(len(shape)) if i not in axes]
        loc = L.convert(L.eq(x, L.broadcast_in_dim(out, shape, kept)), aval_of(x).dtype)
        return out, div(L.reduce_sum(mul(t, loc), axes), L.reduce_sum(loc, axes))

    jvp_rules[prim] = rule


_chooser(P.reduce_max)
_chooser(P.reduce_min)


def _reduce_prod_jvp(primals, tangents, axes):
    # Product rule over a balanced tree of multiplications: exact at zeros, to any order.
    (x,), (t,) = primals, tangents
    out = bind(P.reduce_prod, x, axes=axes)
    if type(t) is Zero:
        return out, Zero(aval_of(out))
    shape = aval_of(x).shape
    kept = [i for i in range(len(shape)) if i not in axes]
    n = 1
    for a in axes:
        n *= shape[a]
    rest = tuple(shape[i] for i in kept)

    def to_rows(v):
        return L.reshape(L.transpose(v, list(axes) + kept), (n,) + rest)

    p, dp = to_rows(x), to_rows(t)
    while n > 1:
        if n % 2:
            p = L.concatenate([p, L.full((1,) + rest, 1.0, aval_of(p).dtype)], 0)
            dp = L.concatenate([dp, L.full((1,) + rest, 0.0, aval_of(dp).dtype)], 0)
            n += 1
        a, b = L.slice_in_dim(p, 0, n, 2, 0), L.slice_in_dim(p, 1, n, 2, 0)
        da, db = L.slice_in_dim(dp, 0, n, 2, 0), L.slice_in_dim(dp, 1, n, 2, 0)
        p, dp = mul(a, b), add(mul(da, b), mul(a, db))
        n //= 2
    return out, L.reshape(dp, rest)


jvp_rules[P.reduce_prod] = _reduce_prod_jvp


def _dot_general_jvp(primals, tangents, dimension_numbers):
    (x, y), (tx, ty) = primals, tangents
    out = L.dot_general(x, y, dimension_numbers)
    t_out = Zero(aval_of(out))
    if type(tx) is not Zero:
        t_out = L.dot_general(tx, y, dimension_numbers)
    if type(ty) is not Zero:
        t_out = add_tangents(t_out, L.dot_general(x, ty, dimension_numbers))
    return out, t_out


jvp_rules[P.dot_general] = _dot_general_jvp
mark_linear(P.dot_general)

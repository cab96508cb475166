"""Reassociation: products as monomials, sums as polynomials of like terms combined.

A product tree ``3 * (h * c) * (2 * s)`` becomes the monomial ``6 * c*h*s``: its factors
sorted by definition order and multiplied left to right, so equal sub-products anywhere in the
program become equal prefixes, built once. A sum tree becomes a list of such monomials with
like terms combined (``a*x + b*x = (a+b)*x``), added in a canonical order that shares equal
prefixes too. Derivative programs are sums of products sharing factors, so this shrinks them.
Sums are never multiplied out (expanding products of sums can trade accuracy for size), so the
result differs from the input only by rounding, as with any reassociation; zero coefficients
are kept, so infinities and NaNs propagate as before.
"""

from __future__ import annotations

from autodiff import primitives as P
from autodiff.dtypes import is_float
from autodiff.ir import Eqn, Jaxpr, Literal, Params, ShapedArray, Var

_EMPTY = Params.make({})
MAX_TERMS = 24  # larger sums are left as they are


def reassociate(jaxpr: Jaxpr) -> Jaxpr:
    order = {v: i for i, v in enumerate(jaxpr.constvars + jaxpr.invars)}
    for e in jaxpr.eqns:
        for v in e.outputs:
            order[v] = len(order)

    def rank(v):
        return order.get(v, 1 << 60)

    # poly[v]: {factors (sorted tuple of atoms): coefficient}; a monomial has one term
    poly: dict = {}
    eqns: list[Eqn] = []
    env: dict = {}
    built: dict = {}
    changed = False

    def sub(a):
        return env.get(a, a) if type(a) is Var else a

    def as_poly(a):
        if type(a) is Literal:
            return {(): float(a.val)}
        return poly.get(a) or {(a,): 1.0}

    reuse = []  # [eqn]: the equation being rewritten, whose output emitting may reuse

    def new(prim, ins, aval, key):
        v = built.get(key)
        if v is None:
            if reuse and prim is reuse[0].prim and _same_atoms(ins, reuse[0].inputs):
                eqn = reuse.pop()  # what emitting builds is this equation: keep it
                v = eqn.outputs[0]
                eqns.append(eqn)
            else:
                v = Var(aval)
                eqns.append(Eqn(prim, ins, _EMPTY, [v]))
            built[key] = v
        return v

    def product(factors, aval):
        acc = factors[0]
        for i in range(1, len(factors)):
            acc = new(P.mul, [acc, factors[i]], aval, ("*",) + factors[: i + 1])
            poly[acc] = {factors[: i + 1]: 1.0}
        return acc

    def term(factors, coef, aval):
        """The monomial ``coef * prod(factors)``."""
        if not factors:
            return Literal(coef, ShapedArray((), aval.dtype))
        body = product(factors, aval) if len(factors) > 1 else factors[0]
        if coef == 1.0:
            return body
        lit = Literal(coef, ShapedArray((), aval.dtype))
        return new(P.mul, [body, lit], aval, ("c", factors, coef))

    sort_keys: dict = {}

    def sort_key(kv):
        factors = kv[0]
        k = sort_keys.get(factors)
        if k is None:
            k = sort_keys[factors] = tuple([order.get(v, 1 << 60) for v in factors])
        return k

    def emit(p, aval):
        """The sum of the terms, canonically ordered; negative terms are subtracted, so
        coefficients appear with one sign (each distinct literal costs a fused kernel an
        input), and an all-negative sum is negated once at the end."""
        terms = sorted(p.items(), key=sort_key) if len(p) > 1 else list(p.items())
        flip = all(c < 0 for _, c in terms)
        if flip:
            terms = [(f, -c) for f, c in terms]
        else:  # start from a positive term, if there is one
            first = next((i for i, (_, c) in enumerate(terms) if c > 0), 0)
            terms = [terms[first]] + terms[:first] + terms[first + 1 :]
        acc, key = None, ("+",)
        for factors, coef in terms:
            key = key + ((factors, coef),)
            if acc is None:
                acc = term(factors, coef, aval)
            else:
                t = term(factors, abs(coef), aval)
                acc = new(P.sub if coef < 0 else P.add, [acc, t], aval, key)
        return new(P.neg, [acc], aval, ("-",) + key) if flip else acc

    for eqn in jaxpr.eqns:
        ins = [sub(a) for a in eqn.inputs]
        out = eqn.outputs[0] if eqn.outputs else None
        p = None
        if (
            out is not None
            and eqn.prim in _ALGEBRA
            and is_float(out.aval.dtype)
            and all(type(a) is Literal or a.aval == out.aval for a in ins)
        ):
            if eqn.prim is P.mul:
                x, y = as_poly(ins[0]), as_poly(ins[1])
                if len(x) == 1 and len(y) == 1:  # monomial * monomial; sums are not expanded
                    (fx, cx), (fy, cy) = next(iter(x.items())), next(iter(y.items()))
                    p = {tuple(sorted(fx + fy, key=rank)): cx * cy}
            elif eqn.prim is P.neg:
                p = {f: -c for f, c in as_poly(ins[0]).items()}
            elif eqn.prim is P.square or eqn.prim is P.pow_:
                k = 2 if eqn.prim is P.square else ins[1].val if type(ins[1]) is Literal else None
                x = as_poly(ins[0])
                if k in (2, 3, 4) and len(x) == 1:  # small integer powers of a monomial
                    ((fx, cx),) = x.items()
                    p = {tuple(sorted(fx * int(k), key=rank)): cx ** int(k)}
            else:
                p = dict(as_poly(ins[0]))
                sign = 1.0 if eqn.prim is P.add else -1.0
                for f, c in as_poly(ins[1]).items():
                    p[f] = p.get(f, 0.0) + sign * c
                if len(p) > MAX_TERMS:
                    p = None
        if p is not None and () not in p:  # constant terms: left to the simplifier
            if _already_canonical(eqn.prim, ins, p):
                poly[out] = p  # keep the equation; later terms may build on it
                if eqn.prim is P.mul:
                    ((factors, coef),) = p.items()
                    key = ("*",) + factors if type(ins[1]) is Var else ("c", factors, coef)
                    built.setdefault(key, out)
                if any(a is not b for a, b in zip(ins, eqn.inputs)):
                    eqn = Eqn(eqn.prim, ins, eqn.params, eqn.outputs)
                eqns.append(eqn)
                continue
            if any(a is not b for a, b in zip(ins, eqn.inputs)):
                eqn = Eqn(eqn.prim, ins, eqn.params, eqn.outputs)
            reuse[:] = [eqn]
            atom = emit(p, out.aval)
            del reuse[:]
            poly[atom] = p
            if atom is out:  # already in canonical form (an earlier pass emitted it)
                continue
            env[out] = atom
            changed = True
            continue
        if any(a is not b for a, b in zip(ins, eqn.inputs)):
            eqn = Eqn(eqn.prim, ins, eqn.params, eqn.outputs)
        eqns.append(eqn)
    if not changed:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, [sub(a) for a in jaxpr.outvars])


_ALGEBRA = frozenset([P.mul, P.neg, P.add, P.sub, P.square, P.pow_])


def _same_atoms(xs, ys) -> bool:
    for x, y in zip(xs, ys):
        if x is y:
            continue
        if type(x) is not Literal or type(y) is not Literal or x.aval != y.aval:
            return False
        if x.key() != y.key():
            return False
    return len(xs) == len(ys)


def _already_canonical(prim, ins, p) -> bool:
    """Whether the equation is what emitting ``p`` would produce anyway: a product of two
    atoms in canonical order, an atom times a literal, or a negated atom."""
    if len(p) != 1:
        return False
    ((factors, coef),) = p.items()
    if prim is P.mul:
        x, y = ins
        if type(y) is Literal:
            return factors == (x,) and coef == y.val
        return coef == 1.0 and factors == (x, y)
    return prim is P.neg and coef == -1.0 and factors == (ins[0],)

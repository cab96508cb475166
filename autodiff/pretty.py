"""Printing jaxprs in JAX's notation, sub-jaxprs (cond branches, loop bodies) nested:

{ lambda ; a:i32[] b:f32[3]. let
    c:f32[3] = cond[
      branches=(
        { lambda ; d:f32[3]. let e:f32[3] = sin d in (e,) }
        { lambda ; f:f32[3]. let g:f32[3] = cos f in (g,) }
      )
    ] a b
  in (c,) }
"""

from __future__ import annotations

import itertools

from autodiff.dtypes import is_float
from autodiff.ir import Atom, ClosedJaxpr, Jaxpr, Literal, Var


def _names():
    letters = "abcdefghijklmnopqrstuvwxyz"
    for n in itertools.count(1):
        for combo in itertools.product(letters, repeat=n):
            yield "".join(combo)


def _fmt_literal(lit: Literal) -> str:
    v = lit.val
    if lit.aval.dtype == "bool":
        return str(bool(v))
    return (
        repr(float(v))
        if is_float(lit.aval.dtype)
        else repr(v)
        if isinstance(v, complex)
        else str(int(v))
    )


def _is_jaxpr(v) -> bool:
    return type(v) in (ClosedJaxpr, Jaxpr) or (
        type(v) is tuple and v and all(type(x) in (ClosedJaxpr, Jaxpr) for x in v)
    )


def pp_jaxpr(jaxpr: Jaxpr | ClosedJaxpr, indent: int = 0, gen=None) -> str:
    """The text of ``jaxpr``; variable names run on through its sub-jaxprs."""
    jaxpr = jaxpr.jaxpr if type(jaxpr) is ClosedJaxpr else jaxpr
    names: dict[Var, str] = {}
    gen = gen or _names()

    def decl(v: Var) -> str:
        names[v] = next(gen)
        return f"{names[v]}:{v.aval.str_short()}"

    def use(a: Atom) -> str:
        if isinstance(a, Literal):
            return _fmt_literal(a)
        return names.get(a, "?" + str(a.id))

    pad = " " * indent
    consts = " ".join(decl(v) for v in jaxpr.constvars)
    ins = " ".join(decl(v) for v in jaxpr.invars)
    if not jaxpr.eqns and indent:  # a short sub-jaxpr on one line
        outs = ", ".join(use(a) for a in jaxpr.outvars)
        return f"{pad}{{ lambda {consts}; {ins}. let  in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}"
    lines = [f"{pad}{{ lambda {consts}; {ins}. let"]
    for eqn in jaxpr.eqns:
        lhs = " ".join(decl(v) for v in eqn.outputs)
        simple = " ".join(f"{k}={v}" for k, v in sorted(eqn.params.items()) if not _is_jaxpr(v))
        subs = [(k, v) for k, v in sorted(eqn.params.items()) if _is_jaxpr(v)]
        args = " ".join(use(a) for a in eqn.inputs)
        if not subs:
            params = f"[{simple}]" if simple else ""
            lines.append(f"{pad}    {lhs} = {eqn.prim.name}{params} {args}".rstrip())
            continue
        lines.append(f"{pad}    {lhs} = {eqn.prim.name}[")
        for k, v in subs:
            inner = v if type(v) is tuple else (v,)
            lines.append(f"{pad}      {k}=" + ("(" if type(v) is tuple else ""))
            for j in inner:
                lines.append(pp_jaxpr(j, indent + 8, gen))
            if type(v) is tuple:
                lines.append(f"{pad}      )")
        if simple:
            lines.append(f"{pad}      {simple}")
        lines.append(f"{pad}    ] {args}".rstrip())
    outs = ", ".join(use(a) for a in jaxpr.outvars)
    lines.append(f"{pad}  in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}")
    return "\n".join(lines)

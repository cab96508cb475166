"""The transformation rules of ``scan``: JVP, partial evaluation, transpose and batching.

- JVP: a scan of the body's JVP; which carries have tangents is a fixpoint (a carry whose
  tangent is zero at first may become nonzero after one iteration).
- Partial evaluation (reverse mode's forward pass): the body is split into a known part, run
  as a scan that also outputs each iteration's residuals stacked along the loop axis, and an
  unknown (linear) part, run as a second scan over those residuals. Residuals that are loop
  consts or scanned inputs are passed through instead of stacked.
- Transpose: the linear scan run backwards, cotangents of the carry as its carry and the
  cotangents of the linear consts accumulated as extra carries.
- Batching: carries batched as a fixpoint; scanned inputs keep the loop axis first.
"""

from __future__ import annotations

from autodiff import lax as L
from autodiff.control.scan import scan_p
from autodiff.extend import (
    UndefinedPrimal,
    Zero,
    batch_rules,
    bind,
    instantiate,
    is_undefined,
    jvp_rules,
    mark_linear,
    moveaxis,
    to_front,
    transpose_rules,
)
from autodiff.ir import ClosedJaxpr, Eqn, Jaxpr, Params, Var
from autodiff.tracing import aval_of, trace_flat
from autodiff.transforms import optimize
from autodiff.transforms.jvp import jvp_jaxpr
from autodiff.transforms.partial_eval import partial_eval_jaxpr, partial_eval_rules
from autodiff.transforms.transpose import backward_pass
from autodiff.transforms.vmap import vmap_jaxpr


def permuted(closed: ClosedJaxpr, in_order, out_order) -> ClosedJaxpr:
    j = closed.jaxpr
    return ClosedJaxpr(
        Jaxpr(
            j.constvars, [j.invars[i] for i in in_order], j.eqns, [j.outvars[i] for i in out_order]
        ),
        closed.consts,
    )


def opened(closed: ClosedJaxpr) -> tuple[ClosedJaxpr, list]:
    """A jaxpr with no consts, taking its former consts first; and those consts."""
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr([], j.constvars + j.invars, j.eqns, j.outvars), []), list(
        closed.consts
    )


def _bind_scan(body: ClosedJaxpr, consts, init, xs, p) -> list:
    body, hoisted = opened(body)
    return bind(
        scan_p,
        *hoisted,
        *consts,
        *init,
        *xs,
        jaxpr=body,
        num_consts=len(hoisted) + len(consts),
        num_carry=len(init),
        length=p["length"],
        reverse=p["reverse"],
        unroll=p["unroll"],
    )


def _split(xs, nc, nk):
    return list(xs[:nc]), list(xs[nc : nc + nk]), list(xs[nc + nk :])


def _positions(mask):
    return [i for i, m in enumerate(mask) if m]


# ---------------------------------------------------------------------------------------------
# JVP


def _scan_jvp(primals, tangents, **p):
    jaxpr, nc, nk = p["jaxpr"], p["num_consts"], p["num_carry"]
    ny = len(jaxpr.out_avals) - nk
    nz = [type(t) is not Zero for t in tangents]
    cnz, inz, xnz = _split(nz, nc, nk)
    carry_nz = list(inz)
    while True:
        out_nz = jvp_jaxpr(jaxpr, cnz + carry_nz + xnz)[1]
        widened = [a or b for a, b in zip(carry_nz, out_nz[:nk])]
        if widened == carry_nz:
            break
        carry_nz = widened
    body, out_nz = jvp_jaxpr(jaxpr, cnz + carry_nz + xnz, carry_nz + [False] * ny)
    ynz = out_nz[nk:]
    n_in = len(primals)
    ct, kt, xt = (len(_positions(m)) for m in (cnz, carry_nz, xnz))
    # body: (consts, carry, xs, const tangents, carry tangents, x tangents) -> (carry, ys,
    # carry tangents, y tangents); the scan wants each group's tangents next to it.
    t0 = n_in
    in_order = (
        list(range(nc))
        + list(range(t0, t0 + ct))
        + list(range(nc, nc + nk))
        + list(range(t0 + ct, t0 + ct + kt))
        + list(range(nc + nk, n_in))
        + list(range(t0 + ct + kt, t0 + ct + kt + xt))
    )
    yt = len(_positions(ynz))
    out_order = (
        list(range(nk))
        + list(range(nk + ny, nk + ny + kt))
        + list(range(nk, nk + ny))
        + list(range(nk + ny + kt, nk + ny + kt + yt))
    )
    body = permuted(body, in_order, out_order)
    consts, init, xs = _split(primals, nc, nk)
    tc, ti, tx = _split(tangents, nc, nk)
    outs = _bind_scan(
        body,
        consts + [t for t, z in zip(tc, cnz) if z],
        init + [instantiate(t) for t, z in zip(ti, carry_nz) if z],
        xs + [t for t, z in zip(tx, xnz) if z],
        p,
    )
    carry, t_carry = outs[:nk], iter(outs[nk : nk + kt])
    ys, t_ys = outs[nk + kt : nk + kt + ny], iter(outs[nk + kt + ny :])
    avals = [aval_of(o) for o in carry + ys]
    t_outs = [next(t_carry) if z else Zero(a) for z, a in zip(carry_nz, avals[:nk])]
    t_outs += [next(t_ys) if z else Zero(a) for z, a in zip(ynz, avals[nk:])]
    return carry + ys, t_outs


jvp_rules[scan_p] = _scan_jvp

# ---------------------------------------------------------------------------------------------
# Partial evaluation


def _scan_partial_eval(eqn: Eqn, unk):
    p = eqn.params
    body, nc, nk, length = p["jaxpr"], p["num_consts"], p["num_carry"], p["length"]
    ny = len(eqn.outputs) - nk
    cu, iu, xu = _split(unk, nc, nk)
    carry_u = list(iu)
    while True:
        out_u = partial_eval_jaxpr(body, cu + carry_u + xu, carry_u + [False] * ny)[2]
        widened = [a or b for a, b in zip(carry_u, out_u[:nk])]
        if widened == carry_u:
            break
        carry_u = widened
    known, unknown, out_u, nres = partial_eval_jaxpr(
        body, cu + carry_u + xu, carry_u + [False] * ny
    )
    yu = out_u[nk:]
    consts, init, xs = _split(eqn.inputs, nc, nk)
    k_consts = [a for a, u in zip(consts, cu) if not u]
    k_init = [a for a, u in zip(init, carry_u) if not u]
    k_xs = [a for a, u in zip(xs, xu) if not u]
    kj = known.jaxpr
    n_kc, n_kk = len(k_consts), len(k_init)
    n_kout = carry_u.count(False) + yu.count(False)
    residuals = kj.outvars[n_kout:]
    # Residuals that are the known body's consts or scanned inputs are passed through.
    kind = []  # ("const", outer atom) | ("x", outer atom) | ("stacked", None)
    for r in residuals:
        if r in kj.invars[:n_kc]:
            kind.append(("const", k_consts[kj.invars.index(r)]))
        elif r in kj.invars[n_kc + n_kk :]:
            kind.append(("x", k_xs[kj.invars.index(r) - n_kc - n_kk]))
        else:
            kind.append(("stacked", None))
    stacked = [r for r, (k, _) in zip(residuals, kind) if k == "stacked"]
    stacked_vars = [Var(r.aval.update(shape=(length,) + r.aval.shape)) for r in stacked]
    known_body = ClosedJaxpr(Jaxpr([], kj.invars, kj.eqns, kj.outvars[:n_kout] + stacked), [])
    k_out_vars = [v for v, u in zip(eqn.outputs, carry_u + yu) if not u]
    known_eqn = Eqn(
        scan_p,
        k_consts + k_init + k_xs,
        Params.make({**p, "jaxpr": known_body, "num_consts": n_kc, "num_carry": n_kk}),
        k_out_vars[:n_kk] + k_out_vars[n_kk:] + stacked_vars,
    )
    # The unknown scan: consts (passed-through residual consts, unknown consts), carry, and
    # xs (stacked residuals, passed-through residual xs, unknown xs).
    uj = unknown.jaxpr
    res_in, rest = uj.invars[:nres], uj.invars[nres:]
    u_nc, u_nk = cu.count(True), carry_u.count(True)
    by_kind = {
        k: [v for v, (kk, _) in zip(res_in, kind) if kk == k] for k in ("const", "x", "stacked")
    }
    outer = {k: [a for kk, a in kind if kk == k] for k in ("const", "x")}
    invars = (
        by_kind["const"]
        + rest[:u_nc]
        + rest[u_nc : u_nc + u_nk]
        + by_kind["stacked"]
        + by_kind["x"]
        + rest[u_nc + u_nk :]
    )
    u_consts = outer["const"] + [a for a, u in zip(consts, cu) if u]
    u_init = [a for a, u in zip(init, carry_u) if u]
    u_xs = stacked_vars + outer["x"] + [a for a, u in zip(xs, xu) if u]
    unknown_eqn = Eqn(
        scan_p,
        u_consts + u_init + u_xs,
        Params.make(
            {
                **p,
                "jaxpr": ClosedJaxpr(Jaxpr([], invars, uj.eqns, uj.outvars), []),
                "num_consts": len(u_consts),
                "num_carry": u_nk,
            }
        ),
        [v for v, u in zip(eqn.outputs, carry_u + yu) if u],
    )
    return [known_eqn], [unknown_eqn], carry_u + yu


partial_eval_rules[scan_p] = _scan_partial_eval

# ---------------------------------------------------------------------------------------------
# Transpose


def _scan_transpose(cts, *args, **p):
    jaxpr, nc, nk = p["jaxpr"], p["num_consts"], p["num_carry"]
    consts, init, xs = _split(args, nc, nk)
    c_lin = [is_undefined(c) for c in consts]
    x_lin = [is_undefined(x) for x in xs]
    res_c = [c for c, lin in zip(consts, c_lin) if not lin]
    res_x = [x for x, lin in zip(xs, x_lin) if not lin]
    lin_c_avals = [jaxpr.in_avals[i] for i in _positions(c_lin)]
    ct_carry = [instantiate(c) for c in cts[:nk]]
    ct_ys = [instantiate(c) for c in cts[nk:]]
    body_avals = jaxpr.in_avals
    n_rc, n_lc, n_rx = len(res_c), len(lin_c_avals), len(res_x)

    def transposed(*a):
        rc, acc = a[:n_rc], a[n_rc : n_rc + n_lc]
        ctc = a[n_rc + n_lc : n_rc + n_lc + nk]
        rx, cty = a[n_rc + n_lc + nk : n_rc + n_lc + nk + n_rx], a[n_rc + n_lc + nk + n_rx :]
        rc_it, rx_it = iter(rc), iter(rx)
        primals = [
            UndefinedPrimal(body_avals[i]) if lin else next(rc_it) for i, lin in enumerate(c_lin)
        ]
        primals += [UndefinedPrimal(a) for a in body_avals[nc : nc + nk]]
        primals += [
            UndefinedPrimal(body_avals[nc + nk + i]) if lin else next(rx_it)
            for i, lin in enumerate(x_lin)
        ]
        cts_in = backward_pass(jaxpr, primals, list(ctc) + list(cty))
        ct_c = [instantiate(cts_in[i]) for i in _positions(c_lin)]
        new_acc = [L.add(s, c) for s, c in zip(acc, ct_c)]
        ct_k = [instantiate(c) for c in cts_in[nc : nc + nk]]
        ct_x = [instantiate(cts_in[nc + nk + i]) for i in _positions(x_lin)]
        return new_acc + ct_k + ct_x, None

    slice_avals = [aval_of(x).update(shape=aval_of(x).shape[1:]) for x in res_x]
    slice_avals += [aval_of(c).update(shape=aval_of(c).shape[1:]) for c in ct_ys]
    in_avals = (
        [aval_of(c) for c in res_c] + lin_c_avals + [aval_of(c) for c in ct_carry] + slice_avals
    )
    body, _ = trace_flat(transposed, in_avals, "scan_transpose", "transpose")
    body = optimize(body)
    zeros = [L.zeros_like_aval(a) for a in lin_c_avals]
    outs = _bind_scan(
        body, res_c, zeros + ct_carry, res_x + ct_ys, {**p, "reverse": not p["reverse"]}
    )
    ct_consts, ct_init, ct_xs = iter(outs[:n_lc]), outs[n_lc : n_lc + nk], iter(outs[n_lc + nk :])
    result = [next(ct_consts) if lin else None for lin in c_lin]
    result += [c if is_undefined(x) else None for c, x in zip(ct_init, init)]
    result += [next(ct_xs) if lin else None for lin in x_lin]
    return result


transpose_rules[scan_p] = _scan_transpose
mark_linear(scan_p)

# ---------------------------------------------------------------------------------------------
# Batching


def _scan_batch(size, args, dims, **p):
    jaxpr, nc, nk = p["jaxpr"], p["num_consts"], p["num_carry"]
    ny = len(jaxpr.out_avals) - nk
    dc, dk, dx = _split(dims, nc, nk)
    cb, xb = [d is not None for d in dc], [d is not None for d in dx]
    carry_b = [d is not None for d in dk]
    while True:
        in_dims = [0 if b else None for b in cb + carry_b + xb]
        out_dims = vmap_jaxpr(jaxpr, in_dims, size)[1]
        widened = [a or d is not None for a, d in zip(carry_b, out_dims[:nk])]
        if widened == carry_b:
            break
        carry_b = widened
    in_dims = [0 if b else None for b in cb + carry_b + xb]
    out_axes = [0 if b else None for b in carry_b] + [0] * ny
    body, _ = vmap_jaxpr(jaxpr, in_dims, size, out_axes)
    consts, init, xs = _split(args, nc, nk)
    consts = [moveaxis(c, d, 0) if d is not None else c for c, d in zip(consts, dc)]
    init = [to_front(c, d, size) if b else c for c, d, b in zip(init, dk, carry_b)]
    xs = [moveaxis(x, d, 1) if d is not None else x for x, d in zip(xs, dx)]
    outs = _bind_scan(body, consts, init, xs, p)
    return outs, [0 if b else None for b in carry_b] + [1] * ny


batch_rules[scan_p] = _scan_batch

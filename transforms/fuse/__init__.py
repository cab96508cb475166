"""Fusion: a rewrite pass that replaces recognised subgraphs of a finished program with MLX's
fused kernels. It runs on the optimised jaxpr just before lowering (``Program.lowered``; off
with ``ad.config.fuse = False``), after every transform, so forward programs and the
derivative programs our transforms produce are rewritten alike; the unrewritten program is
the reference it is tested against (``tests/test_fuse.py``).

Rules (``RULES``, in priority order; each a function ``match(graph, eqn) -> Match | None``
with the root primitives it starts from in ``.roots`` and the primitives a program must hold
for it to be tried in ``.needs``):

========================  ==================================================================
``sdpa``                  ``softmax(scale * q @ k.T [+ mask]) @ v`` -> ``mx.fast.scaled_dot_product_attention``
``cross_entropy``         ``logsumexp(x) - x[targets]`` -> ``mx.fast.cross_entropy``
``layer_norm``            ``(x - mean) * rsqrt(var + eps) [* w] [+ b]`` -> ``mx.fast.layer_norm``
``rms_norm``              ``x * rsqrt(mean(x**2) + eps) [* w]`` -> ``mx.fast.rms_norm``
``rope``                  RoPE's rotation (forward and transposed) -> ``mx.fast.rope``
``log_softmax``           ``z - log(sum(exp(z)))`` -> ``x - mx.logsumexp(x)``
``logsumexp``             ``log(sum(exp(x - c))) + c`` -> ``mx.logsumexp``
``softmax``               ``exp(z) / sum(exp(z))`` (or times ``k / sum``) -> ``mx.softmax``
``softmax_vjp``           the softmax's derivative rewritten to read only the probabilities
``addmm``                 ``alpha * a @ b + beta * c`` -> ``mx.addmm``
========================  ==================================================================

Choosing what to rewrite: every rule is tried at every equation; a match replaces its root
with the fused kernel and leaves the rest of its region to dead-code elimination. Matches are
taken in priority order, skipping one whose root lies in a region already taken (the softmax
inside an attention, the logsumexp inside a cross-entropy). A match whose region's equations
would stay alive after the rewrite (read elsewhere, e.g. a gradient program's residuals) is
declined unless those are cheap (``graph.CHEAP``: layout and simple elementwise equations), so
a rewrite never computes a reduction, a matmul or a transcendental twice; declining one may
let a lower-priority match through, so the choice is repeated until it is stable. Matches
that overlap without conflict are taken together: a gradient program's logsumexp (forward)
and softmax (backward) share ``exp`` and ``sum``, which die only when both are rewritten.

The fused primitives (``autodiff/ops/fused.py``) appear only in lowered programs, never in a
transform's input: they have shape, lowering and interpreter rules and no derivative rules.
"""

from __future__ import annotations

from autodiff.ir import ClosedJaxpr, Jaxpr, Literal
from autodiff.transforms.dce import dce
from autodiff.transforms.fuse.attention import match_sdpa
from autodiff.transforms.fuse.graph import CHEAP, Graph, Match
from autodiff.transforms.fuse.matmul import match_addmm
from autodiff.transforms.fuse.norms import match_layer_norm, match_rms_norm
from autodiff.transforms.fuse.rope import match_rope, match_rope_transposed
from autodiff.transforms.fuse.softmax import (
    match_cross_entropy,
    match_log_softmax,
    match_logsumexp,
    match_softmax,
)
from autodiff.transforms.fuse.softmax_grad import match_softmax_vjp

RULES = [
    match_sdpa,
    match_cross_entropy,
    match_layer_norm,
    match_rms_norm,
    match_rope,
    match_rope_transposed,
    match_log_softmax,
    match_logsumexp,
    match_softmax,
    match_softmax_vjp,
    match_addmm,
]


def rule_name(rule) -> str:
    """The name a rule is switched by (``ad.config.fuse``): its kernel's."""
    name = rule.__name__.removeprefix("match_")
    return {"rope_transposed": "rope", "softmax_vjp": "softmax"}.get(name, name)


NAMES = frozenset(rule_name(r) for r in RULES)

# Rewrites that make programs slower on MLX's CPU backend, which runs these kernels as their
# reference ("fallback") code: left out of the default set there.
SLOWER_ON_CPU = {
    "rope": "the CPU fallback recomputes the cos/sin tables at every call, where the composite "
    "reads them as constants of the program: 2.4x slower measured at (4, 4, 128, 32)",
}


def default_rules(gpu: bool) -> frozenset:
    """The rules ``ad.config.fuse = True`` applies on a GPU, or on the CPU."""
    return NAMES if gpu else NAMES - set(SLOWER_ON_CPU)


def fuse(closed: ClosedJaxpr, rules=None) -> ClosedJaxpr:
    """``closed`` with the subgraphs ``RULES`` recognise replaced by fused kernels; the same
    object when nothing is rewritten. Consts, inputs and outputs are unchanged.

    Args:
        closed: an optimised program.
        rules: the names of the rules to apply (``NAMES``); all by default.
    """
    if rules is not None and not NAMES.issuperset(rules):
        raise ValueError(
            f"[fuse] unknown rule(s) {sorted(set(rules) - NAMES)}; the rules are {sorted(NAMES)}"
        )
    jaxpr = closed.jaxpr
    present = {e.prim for e in jaxpr.eqns}
    rules = [
        r
        for r in RULES
        if (rules is None or rule_name(r) in rules)
        and present.issuperset(r.needs)
        and not present.isdisjoint(r.roots)
    ]
    if not rules:
        return closed
    g = Graph(closed)
    candidates = []
    for rule in rules:
        for e in reversed(jaxpr.eqns):  # outermost first: a sum's whole chain of terms
            if e.prim in rule.roots:
                m = rule(g, e)
                if m is not None:
                    candidates.append(m)
    chosen = choose(jaxpr, candidates)
    if not chosen:
        return closed
    by_root = {m.root: m for m in chosen}
    eqns = []
    for e in jaxpr.eqns:
        m = by_root.get(e)
        eqns.extend(m.build() if m is not None else [e])
    out = dce(Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, jaxpr.outvars))
    return ClosedJaxpr(out, closed.consts)


def choose(jaxpr: Jaxpr, candidates: list[Match]) -> list[Match]:
    """The matches to apply: in priority order, without conflicts, none keeping an expensive
    equation of its region alive."""
    declined: set = set()
    while True:
        chosen: list[Match] = []
        taken: set = set()
        for m in candidates:
            if m in declined or m.root in taken or any(c.root in m.region for c in chosen):
                continue
            chosen.append(m)
            taken |= m.region
        alive = _alive(jaxpr, chosen)
        costly = [
            m
            for m in chosen
            if any(e in alive and e is not m.root and e.prim not in CHEAP for e in m.region)
        ]
        if not costly:
            return chosen
        declined.update(costly)


def _alive(jaxpr: Jaxpr, chosen: list[Match]) -> set:
    """The equations still needed once the chosen roots read only their matches' inputs."""
    by_root = {m.root: m for m in chosen}
    live = {a for a in jaxpr.outvars if type(a) is not Literal}
    alive = set()
    for e in reversed(jaxpr.eqns):
        if any(v in live for v in e.outputs):
            alive.add(e)
            m = by_root.get(e)
            live.update(a for a in (m.inputs if m else e.inputs) if type(a) is not Literal)
    return alive

"""Every primitive is in every rule table or listed as having no such rule (with the reason),
and the rule-test table exercises every primitive."""

import mlx.core as mx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table import ROWS

import autodiff as ad
from autodiff import primitives as P
from autodiff.interpret import impls
from autodiff.lower_mlx import lowerings
from autodiff.transforms.jvp import NO_JVP_RULE, jvp_rules
from autodiff.transforms.transpose import NO_TRANSPOSE_RULE, transpose_rules
from autodiff.transforms.vmap import NO_BATCH_RULE, batch_rules

TABLES = {
    "jvp": (jvp_rules, NO_JVP_RULE),
    "transpose": (transpose_rules, NO_TRANSPOSE_RULE),
    "vmap": (batch_rules, NO_BATCH_RULE),
    "lowering": (lowerings, {}),
    "interpreter": (impls, {}),
}


@pytest.mark.parametrize("table", TABLES)
def test_every_primitive_has_a_rule_or_a_reason(table):
    rules, exempt = TABLES[table]
    for prim in P.PRIMITIVES.values():
        assert (prim in rules) != (prim in exempt), f"{prim.name}: no {table} rule and no reason"
        if prim in exempt:
            assert exempt[prim], f"{prim.name}: empty reason"


def test_transpose_rules_exist_exactly_for_linear_primitives():
    linear = {
        "add",
        "sub",
        "neg",
        "mul",
        "div",
        "select",
        "convert",
        "broadcast_in_dim",
        "reduce_sum",
        "reshape",
        "transpose",
        "squeeze",
        "expand_dims",
        "slice",
        "pad",
        "concatenate",
        "take",
        "take_along_axis",
        "scatter_add",
        "cumsum",
        "dot_general",
    }
    assert {p.name for p in transpose_rules} == linear


@settings(max_examples=1)
@given(st.data())
def test_table_rows_exercise_every_primitive(data):
    seen = set()
    for row in ROWS:
        args = row.draw_args(data.draw)
        closed = ad.make_jaxpr(row.fun)(*args)
        seen |= {e.prim for e in closed.eqns}
        if row.diff:
            g = ad.make_jaxpr(lambda *a: ad.vjp(row.fun, *a)[1](row.fun(*a)))(*args)
            seen |= {e.prim for e in g.eqns}
    assert set(P.PRIMITIVES.values()) - seen == set()
    _ = mx

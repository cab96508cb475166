"""The checklist of autodiff/extend.py, checked for every primitive: bound by its name, a typed
wrapper in autodiff.lax, a rule in every table (or a stated reason), transpose rules exactly
for the linear primitives, and the rule-test table exercising each one."""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table import ROWS

import autodiff as ad
from autodiff import lax
from autodiff.extend import (
    LINEAR,
    NO_BATCH_RULE,
    NO_JVP_RULE,
    PRIMITIVES,
    Primitive,
    batch_rules,
    impls,
    jvp_rules,
    lowerings,
    transpose_rules,
)

TABLES = {
    "jvp": (jvp_rules, NO_JVP_RULE),
    "vmap": (batch_rules, NO_BATCH_RULE),
    "lowering": (lowerings, {}),
    "interpreter": (impls, {}),
}


# Primitives that exist only between two steps of a transform, never in a finished program.
TRANSIENT = {
    "custom_lin": "made by the JVP of custom_vjp_call and transposed away by reverse mode "
    "(the custom_vjp rows exercise it)",
}


def _attr_name(prim: Primitive) -> str:
    return prim.name if hasattr(lax, prim.name) else prim.name + "_"


@pytest.mark.parametrize("table", TABLES)
def test_every_primitive_has_a_rule_or_a_reason(table):
    rules, exempt = TABLES[table]
    for prim in PRIMITIVES.values():
        assert (prim in rules) != (prim in exempt), f"{prim.name}: no {table} rule and no reason"
        if prim in exempt:
            assert exempt[prim], f"{prim.name}: empty reason"


def test_transpose_rules_exist_exactly_for_linear_primitives():
    missing = {p.name for p in LINEAR if p not in transpose_rules}
    extra = {p.name for p in transpose_rules if p not in LINEAR}
    assert not missing, f"linear primitives without a transpose rule: {missing}"
    assert not extra, f"transpose rules for primitives not declared linear: {extra}"


def test_primitives_are_bound_by_name():
    # a module attribute holding a primitive is named after it (keywords get a trailing _),
    # so inserting a definition can never rebind another name
    for mod_name, mod in list(sys.modules.items()):
        if not mod_name.startswith("autodiff"):
            continue
        for attr, value in vars(mod).items():
            if isinstance(value, Primitive) and not attr.startswith("_"):
                assert attr.rstrip("_").removesuffix("_p") == value.name.rstrip("_"), (
                    f"{mod_name}.{attr} holds primitive {value.name!r}"
                )


def test_every_primitive_has_a_typed_wrapper_in_lax():
    for prim in PRIMITIVES.values():
        fn = getattr(lax, _attr_name(prim), None)
        assert callable(fn), f"autodiff.lax has no wrapper for {prim.name!r}"


@settings(max_examples=1)
@given(st.data())
def test_table_rows_exercise_every_primitive(data):
    seen = set()
    for row in ROWS:
        args = row.draw_args(data.draw)
        closed = ad.make_jaxpr(row.fun)(*args)
        seen |= {e.prim for e in closed.eqns}
        if row.diff and "rev" in row.modes:
            g = ad.make_jaxpr(lambda *a: ad.vjp(row.fun, *a)[1](row.fun(*a)))(*args)
            seen |= {e.prim for e in g.eqns}
    missing = {p.name for p in PRIMITIVES.values()} - {p.name for p in seen} - set(TRANSIENT)
    assert not missing, f"no table row exercises {sorted(missing)}"

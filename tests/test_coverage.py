"""The checklist of autodiff/extend.py, checked for every primitive: bound by its name, a typed
wrapper in autodiff.lax, a rule in every table (or a stated reason), transpose rules exactly
for the linear primitives, and the rule-test table exercising each one. And mlx.core's surface:
every function of mlx.core, mx.linalg, mx.fft, mx.fast, mx.random and mx.distributed in
autodiff.numpy or
excluded with a reason, every attribute of mx.array on traced values or excluded with a reason."""

import sys

import mlx.core as mx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table import ROWS

import autodiff as ad
import autodiff.numpy as anp
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
from autodiff.numpy._excluded import EXCLUDED, EXCLUDED_ARRAY_ATTRIBUTES
from autodiff.ops.fused import LOWERING_ONLY as LOWERING_ONLY_REASON
from autodiff.tracing import Tracer

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


# Primitives that only the fusion pass puts in a program, after every transform ran (they are
# never traced, so no table row can exercise them; tests/test_fuse.py does).
LOWERING_ONLY = {p.name: LOWERING_ONLY_REASON for p in PRIMITIVES.values() if p.family == "fused"}


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
    missing -= set(LOWERING_ONLY)
    assert not missing, f"no table row exercises {sorted(missing)}"


# ---------------------------------------------------------------------------------------------
# mlx.core's surface: every public function of mlx.core, mx.linalg, mx.fft, mx.fast and
# mx.random is in autodiff.numpy (anp.linalg, anp.fft, anp.fast, anp.random) or excluded with a
# reason; every public attribute and operator of mx.array is on Tracer or excluded with a reason.

# Owned by the helpers working in parallel on other branches; removed from here as their
# branches are merged (a name both here and present fails, to keep this list honest).
_PENDING_IN_OTHER_BRANCHES: set[str] = set()
_PENDING_ARRAY_ATTRIBUTES: set[str] = set()

_NAMESPACES = {
    "": "mlx.core",
    "linalg.": "linalg",
    "fft.": "fft",
    "fast.": "fast",
    "random.": "random",
    "distributed.": "distributed",
}


def _mx_functions(prefix: str) -> list[str]:
    module = mx if not prefix else getattr(mx, prefix[:-1])
    return [
        prefix + n
        for n in dir(module)
        if not n.startswith("_")
        and callable(getattr(module, n))
        and not isinstance(getattr(module, n), type)
    ]


def _ours(qualified: str):
    *sub, name = qualified.split(".")
    module = getattr(anp, sub[0], None) if sub else anp
    return getattr(module, name, None) if module is not None else None


def coverage_counts() -> dict[str, tuple[int, int, int, int]]:
    """Per namespace: (present, excluded, pending in other branches, total)."""
    counts = {}
    for prefix, label in _NAMESPACES.items():
        names = _mx_functions(prefix)
        present = sum(_ours(n) is not None for n in names)
        excluded = sum(n in EXCLUDED for n in names)
        pending = sum(n in _PENDING_IN_OTHER_BRANCHES for n in names)
        counts[label] = (present, excluded, pending, len(names))
    return counts


@pytest.mark.parametrize("prefix", list(_NAMESPACES))
def test_every_mlx_function_is_present_or_excluded(prefix):
    names = _mx_functions(prefix)
    missing = [
        n
        for n in names
        if _ours(n) is None and n not in EXCLUDED and n not in _PENDING_IN_OTHER_BRANCHES
    ]
    assert not missing, (
        f"mlx.core functions neither in autodiff.numpy nor in autodiff/numpy/_excluded.py: "
        f"{missing}"
    )
    both = [n for n in names if _ours(n) is not None and n in EXCLUDED]
    assert not both, f"present and excluded at once: {both}"
    stale = [n for n in names if _ours(n) is not None and n in _PENDING_IN_OTHER_BRANCHES]
    assert not stale, f"present now: remove from _PENDING_IN_OTHER_BRANCHES: {stale}"


def test_exclusions_name_mlx_functions_and_give_reasons():
    known = {n for prefix in _NAMESPACES for n in _mx_functions(prefix)}
    assert not set(EXCLUDED) - known, f"excluded but not in MLX: {set(EXCLUDED) - known}"
    assert all(isinstance(r, str) and len(r) > 10 for r in EXCLUDED.values())
    assert not set(EXCLUDED) & _PENDING_IN_OTHER_BRANCHES


def test_aliases_are_the_same_objects():
    for prefix in _NAMESPACES:
        module = mx if not prefix else getattr(mx, prefix[:-1])
        by_id: dict[int, list[str]] = {}
        for n in _mx_functions(prefix):
            by_id.setdefault(id(getattr(module, n.removeprefix(prefix))), []).append(n)
        for group in by_id.values():
            ours = {id(_ours(n)) for n in group if _ours(n) is not None}
            assert len(ours) <= 1, f"mlx.core aliases {group} are different objects here"
    for a, b in [("concat", "concatenate"), ("permute_dims", "transpose"), ("pow", "power")]:
        assert getattr(anp, a) is getattr(anp, b)


def _array_attributes() -> list[str]:
    """Public attributes of mx.array, and the special methods it adds to object's."""
    return sorted(
        n
        for n in dir(mx.array)
        if not n.startswith("_") or (n.startswith("__") and n not in dir(object))
    )


def test_every_array_attribute_is_on_tracers_or_excluded():
    missing = [
        n
        for n in _array_attributes()
        if not hasattr(Tracer, n)
        and n not in EXCLUDED_ARRAY_ATTRIBUTES
        and n not in _PENDING_ARRAY_ATTRIBUTES
    ]
    assert not missing, f"mx.array attributes missing on Tracer, with no exclusion: {missing}"
    both = [n for n in EXCLUDED_ARRAY_ATTRIBUTES if hasattr(Tracer, n)]
    assert not both, f"on Tracer and excluded at once: {both}"
    stale = [n for n in _PENDING_ARRAY_ATTRIBUTES if hasattr(Tracer, n)]
    assert not stale, f"present now: remove from _PENDING_ARRAY_ATTRIBUTES: {stale}"
    assert not set(EXCLUDED_ARRAY_ATTRIBUTES) - set(_array_attributes())
    assert all(len(r) > 10 for r in EXCLUDED_ARRAY_ATTRIBUTES.values())


def test_coverage_counts_add_up():
    # `python -c "import sys; sys.path[:0] = ['tests']; import test_coverage as t;
    # print(t.coverage_counts())"` prints them
    for present, excluded, pending, total in coverage_counts().values():
        assert present + excluded + pending == total


def _mlx_parameter_names(fn) -> list[str] | None:
    """The parameter names in the first line of an mlx.core docstring (its signature)."""
    import re

    m = re.match(r"^\w+\((.*)\)", (fn.__doc__ or "").split("\n", 1)[0])
    if m is None:
        return None
    names, depth, part = [], 0, ""
    for ch in m.group(1) + ",":
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            name = re.match(r"\s*\*{0,2}(\w+)", part)
            if name is not None:
                names.append(name.group(1))
            part = ""
        else:
            part += ch
    return names


@pytest.mark.parametrize("prefix", list(_NAMESPACES))
def test_every_function_takes_mlxs_parameter_names(prefix):
    """A call written for MLX with keyword arguments works with ours: each MLX parameter name is
    one of ours (functions that are MLX's own objects, re-exported, are skipped)."""
    import inspect

    wrong = {}
    for name in _mx_functions(prefix):
        theirs, ours = eval("mx." + name), _ours(name)
        if ours is None or ours is theirs or name in EXCLUDED:
            continue
        names = _mlx_parameter_names(theirs)
        assert names is not None, f"no signature line in mx.{name}.__doc__"
        params = inspect.signature(ours).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            continue
        missing = [n for n in names if n not in params]
        if missing:
            wrong[name] = missing
    assert not wrong, f"MLX parameter names missing from autodiff.numpy: {wrong}"

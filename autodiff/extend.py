"""Extending autodiff with a primitive: the checklist, and everything a rule author imports.

A primitive is one checked registration. For a new primitive ``foo`` (in
``autodiff/primitives.py`` for the core set, or in a family module under ``autodiff/ops/``,
which keeps a family's rules together as ``jax/_src/lax/linalg.py`` does):

1. **Shape rule**: ``foo_p = def_primitive("foo", family, rule, multiple_results=False)``;
   the rule maps avals and params to the output avals and raises TypeError/ValueError with a
   message that says what is wrong and how to fix it (``bind`` adds the user's file:line).
2. **Typed wrapper** ``foo(x, ..., param=...)`` that calls ``bind(foo_p, ...)``, in
   ``autodiff/lax.py`` or next to the primitive; rules are written with these wrappers.
3. **User function** in ``autodiff.numpy`` (``anp.linalg``, ``anp.fft``, ``anp.fast``) under
   mlx.core's name, signature, defaults and ``stream=`` keyword (``mirror`` makes it call MLX
   on concrete arrays), aliases bound to the same object, and the ``mx.array`` method on
   :class:`Tracer` where MLX has one.
4. **JVP rule**: ``defjvp`` (elementwise), ``deflinear``, ``defzero``, or
   ``jvp_rules[foo_p] = rule`` (then ``mark_linear(foo_p)`` if linear in an operand).
5. **Transpose rule**, exactly when linear in some operand: ``transpose_rules[foo_p]``.
6. **Batching rule**: ``defelementwise``, ``deffront`` or ``batch_rules[foo_p]``.
7. **Lowering** to mlx.core source: ``lowerings[foo_p]``.
8. **Float64 NumPy implementation**: ``impls[foo_p]`` (the test oracle).
9. **A row** in the table-driven tests (``tests/table.py`` or ``tests/rows/``).

A table that has no rule for a reason says so: ``NO_JVP_RULE[foo_p] = "why"`` (likewise
``NO_BATCH_RULE``). The fused kernels of ``autodiff/ops/fused.py`` are lowering-only: the fusion
pass puts them in finished programs after every transform ran, so they have items 1, 2, 7 and
8 and say so in the other tables (``tests/test_coverage.py`` exempts them from needing a row). ``tests/test_coverage.py`` checks every item for every primitive, and that
every array function of mlx.core is present in ``autodiff.numpy`` or excluded with a reason.

Example (a primitive that is its own family):

    >>> from autodiff.extend import def_primitive, bind, defjvp, defelementwise, lowerings, impls
    >>> cube_p = def_primitive("cube", "cube", lambda x: [x])
    >>> def cube(x): return bind(cube_p, x)
    >>> defjvp(cube_p, lambda t, x: t * 3.0 * x * x)
    >>> defelementwise(cube_p)
    >>> lowerings[cube_p] = lambda args, ins, outs: f"{args[0]} ** 3"
    >>> impls[cube_p] = lambda x: x ** 3
"""

from autodiff.interpret import impls
from autodiff.lower_mlx import lowerings
from autodiff.primitives import PRIMITIVES, Primitive, def_primitive, family
from autodiff.tracing import aval_of, bind
from autodiff.transforms.jvp import (
    LINEAR,
    NO_JVP_RULE,
    Zero,
    add_tangents,
    defjvp,
    deflinear,
    defzero,
    instantiate,
    jvp_rules,
    mark_linear,
)
from autodiff.transforms.transpose import UndefinedPrimal, is_undefined, transpose_rules
from autodiff.transforms.vmap import (
    NO_BATCH_RULE,
    batch_rules,
    defelementwise,
    deffront,
    moveaxis,
    to_front,
)

__all__ = [
    "LINEAR",
    "NO_BATCH_RULE",
    "NO_JVP_RULE",
    "PRIMITIVES",
    "Primitive",
    "UndefinedPrimal",
    "Zero",
    "add_tangents",
    "aval_of",
    "batch_rules",
    "bind",
    "def_primitive",
    "defelementwise",
    "deffront",
    "defjvp",
    "deflinear",
    "defzero",
    "family",
    "impls",
    "instantiate",
    "is_undefined",
    "jvp_rules",
    "lowerings",
    "mark_linear",
    "moveaxis",
    "to_front",
    "transpose_rules",
]

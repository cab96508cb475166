"""``jit``: trace once per input signature, then run the lowered, ``mx.compile``d program."""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence

import mlx.core as mx
import optree

from autodiff import tracing
from autodiff.api_util import fun_name, leaf_aval, leaf_value, substitute
from autodiff.config import config
from autodiff.errors import TransformError
from autodiff.ir import ClosedJaxpr, Jaxpr
from autodiff.jit_state import KEY, Implicit
from autodiff.lower_mlx import Lowered
from autodiff.named_axes import env_key
from autodiff.ops.random import current_key, set_current_key
from autodiff.program import LRUCache, Program, transform_cache
from autodiff.tracing import Tracer, aval_of, trace_flat
from autodiff.transforms import optimize
from autodiff.tree import NAMESPACE, tree_flatten, tree_unflatten

jit_cache = LRUCache()
_all_jitted: weakref.WeakSet = weakref.WeakSet()


class _Entry:
    """One traced signature: its program, and how its implicit inputs and outputs (captured
    state, the PRNG key; ``jit_state.py``) are laid out around the arguments and results."""

    __slots__ = (
        "program",
        "out_tree",
        "per_thread",
        "consts",
        "single",
        "n_state",
        "out_paths",
        "uses_key",
        "plain",
    )

    def __init__(self, program: Program, out_tree, n_state=0, out_paths=(), uses_key=False):
        self.program, self.out_tree = program, out_tree
        self.per_thread = program.per_thread  # .fn: this thread's compiled function
        self.consts = program.closed.consts
        self.single = out_tree.num_nodes == 1 and out_tree.num_leaves == 1
        self.n_state, self.out_paths, self.uses_key = n_state, list(out_paths), uses_key
        self.plain = not n_state and not self.out_paths and not uses_key


def _snapshot(consts: list) -> list:
    """Closed-over arrays as of now, evaluated: the compiled program's constants.

    ``stop_gradient`` gives a new handle on the same buffer (no copy), so a later in-place
    update of the user's array (``c[0] = 5``), which MLX applies copy-on-write, does not
    reach the program, just as with ``mx.compile`` and ``jax.jit``. Evaluating also matters
    for arrays computed eagerly while tracing: they are lazy graphs, and MLX's compiler
    crashes on unevaluated closed-over arrays.
    """
    if not any(isinstance(c, mx.array) for c in consts):
        return consts
    snap = [mx.stop_gradient(c) if isinstance(c, mx.array) else c for c in consts]
    mx.eval([c for c in snap if isinstance(c, mx.array)])
    return snap


_MxArray = mx.array


class _NotDirect(Exception):
    """The output tree differs between input signatures: the direct path cannot serve it."""


def _normalise_static(static_argnums, static_argnames):
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    return nums, names


def _check_static_against_signature(fun, nums, names):
    """Static argument numbers and names that ``fun`` cannot take are an error now, not a
    silently ignored setting at each call (JAX raises too)."""
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):  # builtins and callables without a signature
        return
    kinds = {p.kind for p in params}
    named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    bad = [n for n in names if n not in named]
    if bad and inspect.Parameter.VAR_KEYWORD not in kinds:
        raise TransformError(
            f"[jit] static_argnames={tuple(names)!r} names {bad}, which `{fun_name(fun)}` does "
            f"not take (its parameters: {', '.join(p.name for p in params) or 'none'}). Check "
            "the spelling."
        )
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if inspect.Parameter.VAR_POSITIONAL not in kinds:
        for i in nums:
            if not -len(positional) <= i < len(positional):
                raise TransformError(
                    f"[jit] static_argnums={tuple(nums)!r}, but `{fun_name(fun)}` takes only "
                    f"{len(positional)} positional argument(s)"
                )


class Jitted:
    """The result of :func:`jit`: call it like the function; ``.lower(*args)`` shows the
    program it runs."""

    def __init__(self, fun: Callable, static_argnums, static_argnames, inputs=None, outputs=None):
        self.fun = fun
        self.implicit = Implicit(inputs, outputs)
        self.static_argnums, self.static_argnames = _normalise_static(
            static_argnums, static_argnames
        )
        _check_static_against_signature(fun, self.static_argnums, self.static_argnames)
        # Fast path for the common call: positional array arguments, no static ones. Keyed by
        # (tree, shapes, dtypes) of the mx.array leaves; bounded and cleared with the caches.
        self._fast: dict = {}
        self._fast_ok = not self.static_argnums and not self.static_argnames
        # Fastest path, for calls with mx.array arguments only: one mx.compile'd dispatcher
        # (per thread, see Program), so MLX itself selects the program by input shapes and
        # Python is not involved.
        self.per_thread = threading.local()  # .direct
        self._direct_tree = None
        self._direct_ok = True
        _all_jitted.add(self)
        functools.update_wrapper(self, fun, updated=())

    def _dispatch(self, *arrays):
        """Traced by mx.compile once per input signature: runs our program for it."""
        entry, _ = self._entry(arrays, {})
        if entry.out_tree != self._direct_tree or not entry.plain:
            raise _NotDirect
        return list(entry.program.lowered.fn(*entry.consts, *arrays))

    def _split(self, args, kwargs):
        n = len(args)
        static = set()
        for i in self.static_argnums:
            if not -n <= i < n:
                raise TransformError(
                    f"[jit] static_argnums={self.static_argnums} is out of range for "
                    f"`{fun_name(self.fun)}` called with {n} positional arguments"
                )
            static.add(i % n)
        static_vals = tuple((i, args[i]) for i in sorted(static))
        static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_argnames))
        try:
            hash((static_vals, static_kw))
        except TypeError:
            raise TransformError(
                f"[jit] static arguments of `{fun_name(self.fun)}` must be hashable; got "
                f"{static_vals + static_kw}"
            ) from None
        dyn_nums = tuple(i for i in range(n) if i not in static)
        dyn_kw = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return dyn_nums, static_vals, static_kw, dyn_kw

    def _trace(self, args, kwargs, dyn_nums, dyn_leaves, in_tree, state):
        """Trace to a program ``(key?, *state_in, *leaves) -> (*outs, *state_out, key?)``;
        the key is there only if the function draws random numbers without one."""
        name = fun_name(self.fun)
        static_kw = {k: v for k, v in kwargs.items() if k in self.static_argnames}
        call = self.implicit.wrap(
            substitute(self.fun, args, static_kw, dyn_nums, in_tree), len(state)
        )

        def flat_fun(key, *tracers):
            out, state_out, new_key = call(key, *tracers)
            leaves, out_tree = tree_flatten(out)
            return leaves + state_out + [new_key], out_tree

        avals = (
            [KEY] + [aval_of(s) for s in state] + [leaf_aval(x, name, "jit") for x in dyn_leaves]
        )
        closed, out_tree = trace_flat(flat_fun, avals, name, "jit")
        uses_key, out_paths = self.implicit.uses_key, self.implicit.out_paths
        if not uses_key:  # drop the key input and its pass-through output
            j = closed.jaxpr
            closed = ClosedJaxpr(
                Jaxpr(j.constvars, j.invars[1:], j.eqns, j.outvars[:-1]), closed.consts
            )
        return optimize(closed), out_tree, out_paths, uses_key

    def _entry(self, args, kwargs) -> tuple[_Entry, list, bool]:
        dyn_nums, static_vals, static_kw, dyn_kw = self._split(args, kwargs)
        leaves, in_tree = tree_flatten([*(args[i] for i in dyn_nums), dyn_kw])
        state, state_sig = self.implicit.current() if self.implicit.stateful else ([], ())
        key: Hashable = (
            self.fun,
            in_tree,
            tuple(aval_of(x) for x in leaves),
            static_vals,
            static_kw,
            state_sig,
            env_key(),  # the axis names bound around the call (collectives record their sizes)
        )
        entry = jit_cache.get(key)
        if entry is None:
            closed, out_tree, out_paths, uses_key = self._trace(
                args, kwargs, dyn_nums, leaves, in_tree, state
            )
            closed = ClosedJaxpr(closed.jaxpr, _snapshot(closed.consts))
            program = Program(closed, fun_name(self.fun), eager_compile=True)
            entry = _Entry(program, out_tree, len(state), out_paths, uses_key)
            # A trace that captured values of an enclosing trace is valid only there.
            if not any(type(c) is Tracer for c in closed.consts):
                jit_cache.put(key, entry)
        self.per_thread.state_now = state  # the state this lookup read (see _run)
        return entry, leaves

    def _run(self, entry: _Entry, leaves) -> list:
        """Run ``entry`` on argument leaves with its implicit inputs, and write its implicit
        outputs back: the state into the ``outputs`` trees, the key into ``mx.random.state``
        (or, inside an enclosing trace, into that trace's key)."""
        if entry.plain:
            return entry.program(*leaves)
        # the state read when the entry was looked up: a trace may have added slots since
        # (an optimizer's lazily created state), which hold traced values until written back
        state = self.per_thread.state_now if entry.n_state else []
        key = []
        if entry.uses_key:
            key = [current_key()]
        outs = entry.program(*key, *state, *leaves)
        n_state_out = len(entry.out_paths)
        n_out = len(outs) - n_state_out - (1 if entry.uses_key else 0)
        if entry.uses_key:
            set_current_key(outs[-1])
        self.implicit.write_back(outs[n_out : n_out + n_state_out], entry.out_paths)
        return outs[:n_out]

    def __call__(self, *args, **kwargs):
        if self._fast_ok and not kwargs:
            # Signature: shapes and dtypes of the array leaves (and the tree, unless the
            # arguments are all arrays already), checked without building avals.
            flat = all(type(a) is mx.array for a in args)
            if flat:
                leaves, sig = args, [len(args)]
            else:
                leaves, treedef = optree.tree_flatten(args, none_is_leaf=False, namespace=NAMESPACE)
                sig = [treedef]
            for x in leaves:
                if type(x) is not mx.array:
                    break
                sig.append(x.shape)
                sig.append(x.dtype)
            else:
                sig = tuple(sig)
                entry = self._fast.get(sig)
                if entry is not None and entry.plain:
                    fn = entry.per_thread.__dict__.get("fn")
                    if fn is not None:
                        outs = fn(*entry.consts, *leaves)
                        return outs[0] if entry.single else tree_unflatten(entry.out_tree, outs)
                entry, leaves = self._entry(args, kwargs)
                outs = self._run(entry, leaves)
                if entry.plain and entry.program.compiled() is not None:
                    if flat and self._direct_ok and entry.program.lowered.compilable:
                        if self._direct_tree is None:
                            self._direct_tree, self._direct_single = entry.out_tree, entry.single
                        if "direct" not in self.per_thread.__dict__:
                            self.per_thread.direct = mx.compile(self._dispatch)
                    if len(self._fast) < config.cache_size:
                        self._fast[sig] = entry
                return tree_unflatten(entry.out_tree, outs)
        entry, leaves = self._entry(args, kwargs)
        outs = self._run(entry, [x if type(x) is Tracer else leaf_value(x) for x in leaves])
        return tree_unflatten(entry.out_tree, outs)

    def lower(self, *args, **kwargs) -> Lowered:
        """The MLX program for these arguments; ``.as_text()`` is its Python source."""
        entry, _ = self._entry(args, kwargs)
        return entry.program.lowered

    def trace(self, *args, **kwargs) -> ClosedJaxpr:
        """The optimised jaxpr run for these arguments."""
        return self._entry(args, kwargs)[0].program.closed


def jit(
    fun: Callable,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    inputs=None,
    outputs=None,
) -> Callable:
    """Compile ``fun``: trace it once per input signature, optimise the jaxpr, lower it to MLX
    and ``mx.compile`` it. Later calls with the same tree structure, shapes and dtypes (and
    equal static arguments) skip tracing entirely.

    Arrays the function closes over are constants of the compiled program: their values when
    it was traced are kept (a snapshot, so later in-place updates such as ``c[0] = 5`` are not
    seen), as with ``jax.jit`` and ``mx.compile``. Pass arrays that change as arguments, or as
    captured state. Arguments in ``static_argnums``/``static_argnames`` are Python values
    (ints, strings, tuples...): they must be hashable and each new value retraces.

    Captured state, as ``mx.compile``'s: the arrays in the ``inputs`` trees (e.g.
    ``[model.state, optimizer.state]``) are read at every call, and the arrays in the
    ``outputs`` trees after the function ran are written back after every call, so a step
    that updates a model and an optimizer in place is one compiled program. Random numbers
    drawn without a key use and advance ``mx.random.state`` at every call.

    Composes with every transform: ``jit(grad(f))`` compiles the gradient program,
    ``grad(jit(f))`` differentiates through it.

    Example:
        >>> step = ad.jit(ad.value_and_grad(loss))
        >>> loss_value, grads = step(params, x, y)
        >>> print(step.lower(params, x, y).as_text())
        >>> state = [model.state, optimizer.state]
        >>> @functools.partial(ad.jit, inputs=state, outputs=state)
        ... def train_step(x, y):
        ...     loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
        ...     optimizer.update(model, grads)
        ...     return loss
    """
    j = Jitted(fun, static_argnums, static_argnames, inputs, outputs)

    # A plain function (cheaper to call than an object's __call__) whose first lines are the
    # fastest path: array-only arguments straight into the mx.compile'd dispatcher.
    def jitted(*args, **kwargs):
        direct = j.per_thread.__dict__.get("direct")
        if direct is not None and not kwargs:
            for a in args:
                if type(a) is not _MxArray:
                    break
            else:
                try:
                    outs = direct(*args)
                except _NotDirect:
                    j._direct_ok = False
                    j.per_thread.__dict__.pop("direct", None)
                else:
                    return outs[0] if j._direct_single else tree_unflatten(j._direct_tree, outs)
        return j(*args, **kwargs)

    functools.update_wrapper(jitted, fun, updated=())
    jitted.lower, jitted.trace, jitted.jitted = j.lower, j.trace, j
    return jitted


def clear_caches() -> None:
    """Empty the jit cache, the structural cache of transformed programs and the cache of
    shape-rule results."""
    jit_cache.clear()
    transform_cache.clear()
    tracing.clear_caches()
    for j in list(_all_jitted):
        j._fast.clear()
        j.per_thread = threading.local()
        j._direct_tree, j._direct_ok = None, True


config.on_lowering_change(clear_caches)

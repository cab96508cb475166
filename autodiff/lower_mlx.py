"""Lowering: a jaxpr becomes the source of a straight-line Python function calling mlx.core.

The source is meant to be read (``ad.jit(f).lower(x).as_text()``); it is exec'd once and the
function can be handed to ``mx.compile``. This is the only module of the engine that uses MLX.

Each rule in ``lowerings`` maps a primitive's operand expressions and params to one expression.
"""

from __future__ import annotations

import keyword
import re
import threading
from collections.abc import Callable

import mlx.core as mx

from autodiff import primitives as P
from autodiff.dtypes import DTYPES, is_complex, is_float, is_int
from autodiff.ir import ClosedJaxpr, Jaxpr, Literal, Var
from autodiff.pretty import _names

MX_DTYPES = {name: getattr(mx, info.mlx) for name, info in DTYPES.items()}

lowerings: dict[P.Primitive, Callable] = {}
# Functions the emitted source may call besides ``mx`` (a lowering that needs several MLX calls
# or a Python loop adds one here, and emits ``name(...)``).
helpers: dict[str, Callable] = {}

_MX_NAMES = {
    "neg": "negative",
    "abs": "abs",
    "sub": "subtract",
    "mul": "multiply",
    "div": "divide",
    "pow": "power",
    "max": "maximum",
    "min": "minimum",
    "rem": "remainder",
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
}


def _dt(dtype: str) -> str:
    return "mx." + DTYPES[dtype].mlx


def _simple(mx_name):
    return lambda args, ins, outs, **_: f"mx.{mx_name}({', '.join(args)})"


for _p in P.PRIMITIVES.values():
    if _p.family in ("unary", "binary", "compare"):
        lowerings[_p] = _simple(_MX_NAMES.get(_p.name, _p.name))


def _div(args, ins, outs):
    return f"mx.{'floor_divide' if is_int(outs[0].dtype) else 'divide'}({args[0]}, {args[1]})"


lowerings[P.div] = _div
lowerings[P.select] = _simple("where")
lowerings[P.convert] = lambda a, ins, outs, new_dtype: f"{a[0]}.astype({_dt(new_dtype)})"


def _broadcast_in_dim(args, ins, outs, shape, broadcast_dimensions):
    (x,), (xa,) = args, ins
    if xa.ndim == 0:
        return f"mx.broadcast_to({x}, {shape})"
    n = len(shape)
    if broadcast_dimensions != tuple(range(n - xa.ndim, n)):
        it = iter(xa.shape)
        inter = tuple(next(it) if i in broadcast_dimensions else 1 for i in range(n))
        x = f"mx.reshape({x}, {inter})"
    return f"mx.broadcast_to({x}, {shape})"


lowerings[P.broadcast_in_dim] = _broadcast_in_dim
lowerings[P.reshape] = lambda a, ins, outs, new_sizes: f"mx.reshape({a[0]}, {new_sizes})"
lowerings[P.transpose] = lambda a, ins, outs, permutation: f"mx.transpose({a[0]}, {permutation})"
lowerings[P.squeeze] = lambda a, ins, outs, dimensions: f"mx.squeeze({a[0]}, {dimensions})"
lowerings[P.expand_dims] = lambda a, ins, outs, dimensions: f"mx.expand_dims({a[0]}, {dimensions})"


def _slice(args, ins, outs, start_indices, limit_indices, strides):
    idx = ", ".join(
        f"{s}:{e}" + (f":{st}" if st != 1 else "")
        for s, e, st in zip(start_indices, limit_indices, strides)
    )
    return f"{args[0]}[{idx}]"


lowerings[P.slice_] = _slice


def _pad(args, ins, outs, padding_config):
    if all(i == 0 for _, _, i in padding_config):
        widths = [(lo, hi) for lo, hi, _ in padding_config]
        return f"mx.pad({args[0]}, {widths}, constant_values={args[1]})"
    return f"_pad_interior({args[0]}, {args[1]}, {padding_config})"


def _pad_interior(x, value, config):
    """mx.pad has no interior padding: interleave along a new axis, then trim."""
    for axis, (_, _, interior) in enumerate(config):
        if interior and x.shape[axis] > 1:
            n = x.shape[axis]
            y = mx.expand_dims(x, axis + 1)
            widths = [(0, 0)] * y.ndim
            widths[axis + 1] = (0, interior)
            y = mx.pad(y, widths, constant_values=value)
            y = mx.reshape(y, x.shape[:axis] + (n * (interior + 1),) + x.shape[axis + 1 :])
            x = y[(slice(None),) * axis + (slice(0, n + (n - 1) * interior),)]
    return mx.pad(x, [(lo, hi) for lo, hi, _ in config], constant_values=value)


lowerings[P.pad] = _pad
helpers["_pad_interior"] = _pad_interior
lowerings[P.concatenate] = lambda a, ins, outs, dimension: (
    f"mx.concatenate([{', '.join(a)}], axis={dimension})"
)


def _iota(args, ins, outs, dtype, shape, dimension):
    r = f"mx.arange({shape[dimension]}, dtype={_dt(dtype)})"
    if len(shape) == 1:
        return r
    inter = tuple(shape[dimension] if i == dimension else 1 for i in range(len(shape)))
    return f"mx.broadcast_to(mx.reshape({r}, {inter}), {shape})"


lowerings[P.iota] = _iota
lowerings[P.take] = lambda a, ins, outs, axis: f"mx.take({a[0]}, {a[1]}, axis={axis})"
lowerings[P.take_along_axis] = lambda a, ins, outs, axis: (
    f"mx.take_along_axis({a[0]}, {a[1]}, axis={axis})"
)
lowerings[P.scatter_add] = lambda a, ins, outs, axis: f"{a[0]}.at[{':, ' * axis}{a[1]}].add({a[2]})"
for _p, _name in zip(P.family("reduce"), ("sum", "max", "min", "prod")):
    lowerings[_p] = (lambda n: lambda a, ins, outs, axes: f"mx.{n}({a[0]}, axis={axes})")(_name)
lowerings[P.argmax] = lambda a, ins, outs, axis: f"mx.argmax({a[0]}, axis={axis}).astype(mx.int32)"
lowerings[P.argmin] = lambda a, ins, outs, axis: f"mx.argmin({a[0]}, axis={axis}).astype(mx.int32)"
lowerings[P.cumsum] = lambda a, ins, outs, axis, reverse: (
    f"mx.cumsum({a[0]}, axis={axis}, reverse={reverse})"
)


def matmul_operands(args, ins, dimension_numbers) -> tuple[str, str, tuple]:
    """A dot_general's operands brought to ``(batch.., M, K)`` and ``(batch.., K, N)``, with
    transposes and reshapes emitted only where the layout needs them; and the shape
    ``batch + (M, N)`` of their product (``mx.addmm`` shares this with ``mx.matmul``)."""
    (xc, yc), (xb, yb) = dimension_numbers
    (x, y), (xa, ya) = args, ins
    x_free = tuple(i for i in range(xa.ndim) if i not in xc + xb)
    y_free = tuple(i for i in range(ya.ndim) if i not in yc + yb)
    batch = tuple(xa.shape[d] for d in xb)

    def size(a, dims):
        n = 1
        for d in dims:
            n *= a.shape[d]
        return n

    def arrange(v, a, perm, shape):
        if perm != tuple(range(a.ndim)):
            v = f"mx.transpose({v}, {perm})"
        if shape != tuple(a.shape[p] for p in perm):
            v = f"mx.reshape({v}, {shape})"
        return v

    m, k, n = size(xa, x_free), size(xa, xc), size(ya, y_free)
    x2 = arrange(x, xa, xb + x_free + xc, batch + (m, k))
    y2 = arrange(y, ya, yb + yc + y_free, batch + (k, n))
    return x2, y2, batch + (m, n)


def _dot_general(args, ins, outs, dimension_numbers):
    """mx.matmul on operands brought to (batch.., M, K) @ (batch.., K, N)."""
    if ins[0].ndim == 0 or ins[1].ndim == 0:
        # a scalar operand (maybe a literal, emitted as a Python number) scales the other
        return f"mx.multiply({args[0]}, {args[1]})"
    x2, y2, shape = matmul_operands(args, ins, dimension_numbers)
    out = f"mx.matmul({x2}, {y2})"
    return out if outs[0].shape == shape else f"mx.reshape({out}, {outs[0].shape})"


lowerings[P.dot_general] = _dot_general


# ---------------------------------------------------------------------------------------------


class Lowered:
    """A jaxpr lowered to MLX: ``fn(*consts, *args) -> tuple of mx.array``.

    ``compilable`` is False for a Python driver of control flow (``lower_control``), whose
    straight-line segments are compiled separately; ``parts`` names the sub-programs the
    source calls, so ``as_text`` can show them too.
    """

    __slots__ = ("source", "fn", "n_consts", "compilable", "parts")

    def __init__(self, source: str, fn, n_consts: int, compilable=True, parts=()):
        self.source, self.fn, self.n_consts = source, fn, n_consts
        self.compilable, self.parts = compilable, dict(parts)

    def as_text(self) -> str:
        """The Python source, followed by that of the sub-programs it calls."""
        text = self.source
        for name, part in self.parts.items():
            for k, p in enumerate(part if type(part) is tuple else (part,)):
                low = getattr(p, "lowered", p)  # a Program, or a Lowered
                if isinstance(low, Lowered):
                    label = f"{name}[{k}]" if type(part) is tuple else name
                    text += f"\n# {label}:\n{low.as_text()}"
        return text


_local = threading.local()


def ref(obj, hint: str = "f") -> str:
    """Bind ``obj`` to a fresh name in the source being emitted, and return the name: how a
    lowering rule calls a sub-program (a branch, a loop body) or another Python object."""
    refs = _local.refs
    name = f"_{hint}{len(refs)}"
    refs[name] = obj
    return name


def _float_src(v: float) -> str:
    return repr(v) if v == v and abs(v) != float("inf") else f"float('{v}')"


def _literal_src(lit: Literal, standalone: bool) -> str:
    v, dtype = lit.val, lit.aval.dtype
    if is_float(dtype):
        text = _float_src(float(v))
    elif is_complex(dtype):
        v = complex(v)
        text = f"complex({_float_src(v.real)}, {_float_src(v.imag)})"
    else:
        text = repr(bool(v)) if dtype == "bool" else repr(int(v))
    return f"mx.array({text}, dtype={_dt(dtype)})" if standalone else text


def lower_jaxpr(jaxpr: Jaxpr, name: str = "lowered", compilable: bool = True) -> Lowered:
    """Emit and exec the MLX source of ``jaxpr``; its constvars come first in the signature."""
    outer = getattr(_local, "refs", None)
    _local.refs = {}
    try:
        return _lower(jaxpr, name, compilable)
    finally:
        _local.refs = outer


def _lower(jaxpr: Jaxpr, name: str, compilable: bool) -> Lowered:
    name = re.sub(r"\W", "_", name)
    if not name.isidentifier() or keyword.iskeyword(name):
        name = "lowered"
    names: dict[Var, str] = {}
    gen = (n for n in _names() if not keyword.iskeyword(n) and n != "mx" and n not in helpers)

    def decl(v: Var) -> str:
        names[v] = next(gen)
        return names[v]

    params = [decl(v) for v in jaxpr.constvars + jaxpr.invars]
    lines = [f"def {name}({', '.join(params)}):"]
    for eqn in jaxpr.eqns:
        # A literal is a bare Python scalar (weak: it takes an array operand's dtype) when an
        # operand of its dtype is an array, else a typed mx.array (select(p, 2**32 - 1, 0) on
        # uint32 would otherwise be int32).
        args = [names[a] if type(a) is Var else None for a in eqn.inputs]
        if None in args:
            arrays = {a.aval.dtype for a in eqn.inputs if type(a) is Var}
            args = [
                _literal_src(a, a.aval.dtype not in arrays) if n is None else n
                for a, n in zip(eqn.inputs, args)
            ]
        rule = lowerings.get(eqn.prim)
        if rule is None:
            raise NotImplementedError(f"no MLX lowering for primitive '{eqn.prim.name}'")
        expr = rule(args, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outputs], **eqn.params)
        lhs = ", ".join(decl(v) for v in eqn.outputs)
        if eqn.prim.multiple_results and len(eqn.outputs) == 1:
            lhs += ","
        lines.append(f"    {lhs} = {expr}")
    outs = []
    for a in jaxpr.outvars:
        if type(a) is Literal:
            outs.append(_literal_src(a, True))
        else:
            outs.append(names[a])
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    source = "\n".join(lines) + "\n"
    refs = _local.refs
    namespace = {"mx": mx, **helpers, **refs}
    exec(compile(source, f"<autodiff:{name}>", "exec"), namespace)
    return Lowered(source, namespace[name], len(jaxpr.constvars), compilable, refs)


def lower_mlx(closed: ClosedJaxpr, name: str = "lowered") -> Lowered:
    """Lower a closed jaxpr; call the result with ``(*closed.consts, *args)``."""
    return lower_jaxpr(closed.jaxpr, name)

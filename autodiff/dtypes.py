"""dtypes: the one table of the dtypes autodiff knows, their names, kinds and promotion.

The IR names dtypes by plain strings ("float32"), so it stays independent of MLX and NumPy;
this module maps those names to and from ``mx.Dtype``, NumPy dtypes and Python types, and
holds the promotion lattice (JAX's, with Python scalars weakly typed). Nothing here imports
MLX: ``autodiff.lower_mlx`` builds its ``mx.Dtype`` table from :data:`DTYPES`.
"""

from __future__ import annotations

from typing import NamedTuple


class DTypeInfo(NamedTuple):
    short: str  # as printed in jaxprs: f32[3]
    kind: str  # "b" bool, "i" signed int, "u" unsigned int, "f" float, "c" complex
    bits: int
    mlx: str  # the attribute of mlx.core


DTYPES: dict[str, DTypeInfo] = {
    "bool": DTypeInfo("bool", "b", 8, "bool_"),
    "int8": DTypeInfo("i8", "i", 8, "int8"),
    "int16": DTypeInfo("i16", "i", 16, "int16"),
    "int32": DTypeInfo("i32", "i", 32, "int32"),
    "int64": DTypeInfo("i64", "i", 64, "int64"),
    "uint8": DTypeInfo("u8", "u", 8, "uint8"),
    "uint16": DTypeInfo("u16", "u", 16, "uint16"),
    "uint32": DTypeInfo("u32", "u", 32, "uint32"),
    "uint64": DTypeInfo("u64", "u", 64, "uint64"),
    "float16": DTypeInfo("f16", "f", 16, "float16"),
    "bfloat16": DTypeInfo("bf16", "f", 16, "bfloat16"),
    "float32": DTypeInfo("f32", "f", 32, "float32"),
    "float64": DTypeInfo("f64", "f", 64, "float64"),
    "complex64": DTypeInfo("c64", "c", 64, "complex64"),
}


def is_float(dtype: str) -> bool:
    """Real floating point (the dtypes that carry tangents, with complex)."""
    return DTYPES[dtype].kind == "f"


def is_complex(dtype: str) -> bool:
    return DTYPES[dtype].kind == "c"


def is_inexact(dtype: str) -> bool:
    """Float or complex: the dtypes that are differentiated."""
    return DTYPES[dtype].kind in "fc"


def is_int(dtype: str) -> bool:
    return DTYPES[dtype].kind in "iu"


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


def real_dtype(dtype: str) -> str:
    """The real dtype of a complex one (complex64 -> float32); others unchanged."""
    return "float32" if dtype == "complex64" else dtype


def complex_dtype(dtype: str) -> str:
    return "complex64" if DTYPES[dtype].kind in "fc" else dtype


_PY_TYPES = {float: "float32", int: "int32", bool: "bool", complex: "complex64"}
_KNOWN: dict = dict(_PY_TYPES)  # dtype_name's answers for Python types and mx.Dtypes
_ALIASES = {"bool_": "bool", "bool8": "bool", "float": "float32", "int": "int32"}


def dtype_name(d) -> str:
    """Normalise an ``mx.Dtype``, NumPy dtype, Python type or name to the IR's dtype name.

    Raises:
        TypeError: for a dtype autodiff does not support, naming it.
    """
    name = _KNOWN.get(d)
    if name is not None:
        return name
    if isinstance(d, str) and d in DTYPES:
        return d
    name = _resolve(d)
    if type(d).__name__ == "Dtype":  # mx.Dtype: hashable and few, remembered
        _KNOWN[d] = name
    return name


def _resolve(d) -> str:
    name = str(getattr(d, "name", None) or d).rsplit(".", 1)[-1]
    name = _ALIASES.get(name, name)
    if name not in DTYPES and "numpy" in type(d).__module__ + str(type(d)):
        name = str(d)
    if name not in DTYPES:
        raise TypeError(
            f"unsupported dtype {d!r}: autodiff supports {', '.join(DTYPES)}. Convert the "
            "array with .astype(...) first."
        )
    return name


_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def join(a: str, b: str) -> str:
    """JAX-style promotion of two strongly typed dtypes."""
    if a == b:
        return a
    ia, ib = DTYPES[a], DTYPES[b]
    if _KIND_RANK[ia.kind] != _KIND_RANK[ib.kind]:
        hi, lo = (a, b) if _KIND_RANK[ia.kind] > _KIND_RANK[ib.kind] else (b, a)
        if DTYPES[hi].kind == "c":
            return "complex64"
        return hi
    if ia.kind == "f" and {a, b} == {"float16", "bfloat16"}:
        return "float32"
    if ia.kind == ib.kind:
        return a if ia.bits >= ib.bits else b
    # signed with unsigned: a signed type wide enough for both; none holds uint64, so a
    # signed type with uint64 gives float32 (as MLX and JAX do)
    (s, sbits), ubits = ((a, ia.bits), ib.bits) if ia.kind == "i" else ((b, ib.bits), ia.bits)
    if sbits > ubits:
        return s
    return {8: "int16", 16: "int32", 32: "int64"}.get(ubits, "float32")


def weak_result(strong: str | None, weak: set) -> str:
    """The dtype of an operation on arrays of dtype ``strong`` (None: no arrays) and Python
    scalars of the types in ``weak`` (weakly typed: they never widen an array's dtype)."""
    if strong is None:
        for t in (complex, float, int):
            if t in weak:
                return _PY_TYPES[t]
        return "bool"
    if complex in weak and not is_complex(strong):
        return "complex64"
    if float in weak and not is_inexact(strong):
        return "float32"
    if int in weak and strong == "bool":
        return "int32"
    return strong

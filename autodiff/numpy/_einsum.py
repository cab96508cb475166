"""``einsum`` with MLX's semantics, built from the shape primitives, ``reduce_sum`` and
``dot_general``, so every derivative and batching rule comes from theirs.

The subscripts are parsed as ``mx.einsum`` parses them: explicit (``"ij,jk->ik"``) or implicit
(``"ij,jk"``: the labels seen once, sorted, after any ellipsis), letters of either case, at most
one ``...`` per operand (its axes right-aligned across operands, so they broadcast), size-1
axes broadcast against a label's other sizes, and a label repeated within an operand takes its
diagonal. Then, as in NumPy's and MLX's einsum: each operand's repeated labels collapse to
their diagonal, labels found in one operand only (and not in the output) are summed, and pairs
of operands are contracted with ``dot_general`` (shared labels needed later are batch axes),
greedily choosing the pair with the smallest result, until one is left; its labels not in the
output are summed and the rest transposed into the output's order.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax
from autodiff.numpy._core import astype, mirror, result_type
from autodiff.tracing import aval_of


def _parse(subscripts: str) -> tuple[list[str], str]:
    s = subscripts.replace(" ", "")
    if "->" in s:
        lhs, rhs = s.split("->", 1)
        return lhs.split(","), rhs
    counts: dict[str, int] = {}
    for c in s.replace(",", "").replace(".", ""):
        counts[c] = counts.get(c, 0) + 1
    once = "".join(sorted(c for c, n in counts.items() if n == 1))
    return s.split(","), ("..." if "..." in s else "") + once


def _labels(sub: str, ndim: int | None, where: str) -> tuple[list, int]:
    """The labels of one subscript: its letters, and ``("...", k)`` for the ellipsis axis
    ``k`` places from its end (so ellipses align on the right). ``ndim`` None: the output,
    whose ellipsis length is given later. Returns the labels and the ellipsis length."""
    before, after, has_ellipsis, i = [], [], False, 0
    while i < len(sub):
        c = sub[i]
        if c.isalpha() and c.isascii():
            (after if has_ellipsis else before).append(c)
            i += 1
            continue
        if sub[i : i + 3] != "...":
            raise ValueError(f"[einsum] Subscripts must be letters, but got '{c}'.")
        if has_ellipsis:
            raise ValueError(
                f"[einsum] Only one ellipsis per subscript is allowed but found more in '{sub}'."
            )
        has_ellipsis, i = True, i + 3
    if not has_ellipsis:
        return before, 0
    n = ndim - len(before) - len(after) if ndim is not None else None
    if n is not None and n < 0:
        raise ValueError(
            f"[einsum] {where} has insufficient dimensions for subscript '{sub}'. The ellipsis "
            f"requires at least {len(before) + len(after)} dimensions but it has {ndim}."
        )
    return before + ["ELLIPSIS"] + after, n


def _expand(labels: list, n: int) -> list:
    if "ELLIPSIS" not in labels:
        return labels
    k = labels.index("ELLIPSIS")
    return labels[:k] + [("...", j) for j in range(n - 1, -1, -1)] + labels[k + 1 :]


def _diagonal(x, labels: list):
    """Collapse each label repeated in ``labels`` to its diagonal (moved to the end): the
    repeated axes are merged into one of size n**k, whose diagonal is every (1+n+..+n**(k-1))-th
    element."""
    for label in dict.fromkeys(labels):
        axes = [i for i, m in enumerate(labels) if m == label]
        if len(axes) == 1:
            continue
        shape = aval_of(x).shape
        rest = [i for i in range(len(shape)) if i not in axes]
        n, k = shape[axes[0]], len(axes)
        x = lax.transpose(x, rest + axes)
        x = lax.reshape(x, tuple(shape[i] for i in rest) + (n**k,))
        x = lax.slice_in_dim(x, 0, n**k, sum(n**i for i in range(k)), len(rest))
        labels = [labels[i] for i in rest] + [label]
    return x, labels


def _sum_out(x, labels: list, keep: set):
    axes = [i for i, m in enumerate(labels) if m not in keep]
    return lax.reduce_sum(x, axes), [m for m in labels if m in keep]


def _contract(a, la: list, b, lb: list, keep: set, sizes: dict):
    a, la = _sum_out(a, la, keep | set(lb))
    b, lb = _sum_out(b, lb, keep | set(la))
    shared = [m for m in la if m in lb]
    batch = [m for m in shared if m in keep]
    contract = [m for m in shared if m not in keep]
    labels = batch + [m for m in la if m not in shared] + [m for m in lb if m not in shared]
    if not contract:  # nothing summed: an elementwise product of broadcast operands
        shape = tuple(sizes[m] for m in labels)
        a = _arrange(a, la, labels, shape)
        return lax.mul(a, _arrange(b, lb, labels, shape)), labels
    dims = (
        (tuple(la.index(m) for m in contract), tuple(lb.index(m) for m in contract)),
        (tuple(la.index(m) for m in batch), tuple(lb.index(m) for m in batch)),
    )
    return lax.dot_general(a, b, dims), labels


def _arrange(x, labels: list, target: list, shape: tuple):
    """``x`` (with ``labels``, a subset of ``target``) transposed and broadcast to ``shape``."""
    order = sorted(range(len(labels)), key=lambda i: target.index(labels[i]))
    x = lax.transpose(x, order)
    return lax.broadcast_in_dim(x, shape, sorted(target.index(m) for m in labels))


def _result_size(la, lb, keep, sizes) -> int:
    n = 1
    for m in set(la) | set(lb):
        if m in keep:
            n *= sizes[m]
    return n


@mirror(mx.einsum)
def einsum(subscripts: str, *operands):
    """Einstein summation over ``operands`` as described by ``subscripts``, as ``mx.einsum``:
    repeated labels within an operand take diagonals, ``...`` stands for broadcast axes, and
    any number of operands is contracted pairwise with ``dot_general``. Differentiable to any
    order in every operand.

    Example:
        >>> ad.grad(lambda a: anp.einsum("ij,jk,kk->i", a, b, c).sum())(a)
    """
    if not operands:
        raise ValueError("[einsum] At least one operand is required.")
    inputs, output = _parse(subscripts)
    if len(inputs) != len(operands):
        raise ValueError(
            f"[einsum] Number of operands, {len(operands)}, does not match number of input "
            f"subscripts, {len(inputs)}"
        )
    dtype = result_type(*operands)
    operands = [astype(x, dtype) for x in operands]
    terms, max_ellipsis = [], 0
    for i, (sub, x) in enumerate(zip(inputs, operands)):
        labels, n = _labels(
            sub, len(aval_of(x).shape), f"Operand {i} with shape {aval_of(x).shape}"
        )
        max_ellipsis = max(max_ellipsis, n)
        terms.append((x, _expand(labels, n)))
    out_labels, _ = _labels(output, None, "the output")
    out_labels = _expand(out_labels, max_ellipsis)
    if len(set(out_labels)) != len(out_labels):
        raise ValueError("[einsum] Repeat indices not allowed in output.")
    sizes: dict = {}
    for i, (x, labels) in enumerate(terms):
        shape = aval_of(x).shape
        if len(labels) != len(shape):
            raise ValueError(
                f"[einsum] Invalid number of subscripts {len(labels)} for input {i} with "
                f"{len(shape)} dimensions."
            )
        local: dict = {}
        for m, d in zip(labels, shape):
            if local.setdefault(m, d) != d:
                raise ValueError(
                    "[einsum] Dimensions of repeated subscripts do not have the same size "
                    f"({local[m]} != {d})."
                )
            if sizes.get(m, 1) not in (1, d) and d != 1:
                raise ValueError(
                    f"[einsum] Cannot broadcast dimension {labels.index(m)} of input {i} with "
                    f"shape {shape} to size {sizes[m]}."
                )
            sizes[m] = max(sizes.get(m, 1), d)
    missing = [m for m in out_labels if m not in sizes]
    if missing:
        raise ValueError(f"[einsum] Output subscript '{missing[0]}' does not appear in any input.")
    # Diagonals, then labels of one operand only summed, then size-1 axes broadcast.
    out_set = set(out_labels)
    prepared = []
    for i, (x, labels) in enumerate(terms):
        x, labels = _diagonal(x, labels)
        others = out_set.union(*(set(lb) for j, (_, lb) in enumerate(terms) if j != i))
        x, labels = _sum_out(x, labels, others)
        full = tuple(sizes[m] for m in labels)
        if aval_of(x).shape != full:
            x = lax.broadcast_in_dim(x, full, range(len(full)))
        prepared.append((x, labels))
    while len(prepared) > 1:
        best = None
        for i in range(len(prepared)):
            for j in range(i + 1, len(prepared)):
                keep = out_set.union(
                    *(set(lb) for k, (_, lb) in enumerate(prepared) if k not in (i, j))
                )
                size = _result_size(prepared[i][1], prepared[j][1], keep, sizes)
                if best is None or size < best[0]:
                    best = (size, i, j, keep)
        _, i, j, keep = best
        (a, la), (b, lb) = prepared[i], prepared[j]
        merged = _contract(a, la, b, lb, keep, sizes)
        prepared = [t for k, t in enumerate(prepared) if k not in (i, j)] + [merged]
    x, labels = _sum_out(*prepared[0], out_set)
    return lax.transpose(x, [labels.index(m) for m in out_labels])

"""Jacobians and Hessians from ``vmap`` over ``jvp`` and ``vjp``: ``jacfwd``, ``jacrev``,
``hessian``, with JAX's output layout."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import mlx.core as mx

from autodiff.api_util import check_argnums, check_float_inputs, check_output_dtype, substitute
from autodiff.batching import vmap
from autodiff.forward import jvp
from autodiff.lower_mlx import MX_DTYPES
from autodiff.reverse import vjp
from autodiff.tracing import aval_of
from autodiff.tree import tree_flatten, tree_map, tree_unflatten


def _std_basis(leaves) -> list:
    """Rows of the identity over all leaves' elements, split per leaf: (N, *leaf.shape)."""
    sizes = [aval_of(x).size for x in leaves]
    n = sum(sizes)
    eye = mx.eye(n)
    out, start = [], 0
    for x, s in zip(leaves, sizes):
        a = aval_of(x)
        out.append(eye[:, start : start + s].reshape((n,) + a.shape).astype(MX_DTYPES[a.dtype]))
        start += s
    return out


def jacfwd(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Jacobian by forward mode (one ``jvp`` per input element, vectorised by ``vmap``).

    Each output leaf gets shape ``out.shape + in.shape``, in the output's tree, each holding the
    input's tree (a tuple of them for tuple ``argnums``), as in ``jax.jacfwd``. Inputs must be
    real, or, with ``holomorphic=True``, complex (with complex outputs: the complex
    derivative of a holomorphic ``fun``).

    Example:
        >>> J = ad.jacfwd(lambda x: anp.sin(x) * x)(mx.arange(3.0))  # 3 x 3 diagonal
    """

    @functools.wraps(fun, updated=())
    def jacfwd_f(*args, **kwargs):
        leaves, in_tree, f_leaves = _of_leaves(fun, args, kwargs, argnums, "jacfwd", holomorphic)

        def push(*basis):
            out = jvp(f_leaves, leaves, list(basis), has_aux=has_aux)
            return (out[1], out[2]) if has_aux else out[1]

        basis = _std_basis(leaves)
        jac = vmap(push, out_axes=-1)(*basis)
        if has_aux:
            jac, aux = jac
            aux = _first(aux)
        out_leaves, out_tree = tree_flatten(jac)
        if holomorphic:
            for o in out_leaves:  # (out.shape..., N)
                a = aval_of(o)
                check_output_dtype(a.update(shape=a.shape[:-1]), "jacfwd", fun, True, False)
        per_out = [_split_last(o, leaves) for o in out_leaves]
        result = tree_unflatten(out_tree, [_by_argnums(p, in_tree, argnums) for p in per_out])
        return (result, aux) if has_aux else result

    return jacfwd_f


def _of_leaves(fun, args, kwargs, argnums, transform, holomorphic):
    """The differentiated arguments' leaves, their tree, and ``fun`` as a function of them."""
    nums = check_argnums(argnums, len(args), transform, fun)
    leaves, in_tree = tree_flatten([args[i] for i in nums])
    check_float_inputs(
        [aval_of(x) for x in leaves],
        transform,
        fun,
        holomorphic=holomorphic,
        allow_complex=transform != "jacfwd",
    )
    return leaves, in_tree, substitute(fun, args, kwargs, nums, in_tree)


def _first(aux):
    """vmap broadcast aux along the basis axis (out_axes=-1); keep one copy."""
    return tree_map(lambda a: a[..., 0], aux)


def _split_last(o, in_leaves):
    """(out.shape..., N) -> one (out.shape + in.shape) block per input leaf."""
    shape = aval_of(o).shape[:-1]
    res, start = [], 0
    for x in in_leaves:
        a = aval_of(x)
        block = o[..., start : start + a.size]
        res.append(block.reshape(shape + a.shape))
        start += a.size
    return res


def _by_argnums(blocks, in_tree, argnums):
    trees = tree_unflatten(in_tree, blocks)
    return trees[0] if isinstance(argnums, int) else tuple(trees)


def jacrev(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Jacobian by reverse mode (one ``vjp`` per output element, vectorised by ``vmap``).

    Same output layout as :func:`jacfwd`; cheaper when outputs are fewer than inputs. Outputs
    must be real (complex inputs then give JAX's conjugate-convention gradients), or, with
    ``holomorphic=True``, complex, of complex inputs.

    Example:
        >>> J = ad.jacrev(lambda x: anp.sin(x) * x)(mx.arange(3.0))
    """

    @functools.wraps(fun, updated=())
    def jacrev_f(*args, **kwargs):
        leaves, in_tree, f_leaves = _of_leaves(fun, args, kwargs, argnums, "jacrev", holomorphic)

        res = vjp(f_leaves, *leaves, has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        out_leaves, out_tree = tree_flatten(out)
        for o in out_leaves:
            check_output_dtype(aval_of(o), "jacrev", fun, holomorphic, scalar=False)
        basis = _std_basis(out_leaves)
        # one cotangent per output element: per input leaf, shape (M, *in.shape)
        cts = vmap(lambda *b: vjp_fn(tree_unflatten(out_tree, list(b))))(*basis)
        m_blocks = []
        for ct, x in zip(cts, leaves):
            # (M, *in.shape) -> per output leaf (out.shape + in.shape)
            blocks, start = [], 0
            for o in out_leaves:
                oa = aval_of(o)
                blocks.append(ct[start : start + oa.size].reshape(oa.shape + aval_of(x).shape))
                start += oa.size
            m_blocks.append(blocks)
        per_out = [[m_blocks[j][i] for j in range(len(leaves))] for i in range(len(out_leaves))]
        result = tree_unflatten(out_tree, [_by_argnums(p, in_tree, argnums) for p in per_out])
        return (result, res[2]) if has_aux else result

    return jacrev_f


def hessian(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(fun))``, shape ``in.shape * 2``.

    Example:
        >>> H = ad.hessian(lambda x: anp.sum(x ** 3))(mx.array([1.0, 2.0]))  # diag(6x)
    """
    return jacfwd(jacrev(fun, argnums, has_aux, holomorphic), argnums, has_aux, holomorphic)

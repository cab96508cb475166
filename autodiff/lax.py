"""Typed wrappers over :func:`bind`, one per primitive (the ``jax.lax`` layer).

Operands are tracers, literals or concrete arrays; a Python scalar next to an array becomes a
literal of that array's dtype. Shapes must already agree: broadcasting and dtype promotion are
``autodiff.numpy``'s job. Transform rules are written with these functions, so their output is
IR again. As in ``jax.lax``, wrappers that would be identities return the operand unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from autodiff import primitives as P
from autodiff.ir import ShapedArray
from autodiff.tracing import aval_of, bind, literal

_SCALARS = (bool, int, float, complex)


def _lit(x, like):
    return literal(x, aval_of(like).dtype) if type(x) in _SCALARS else x


def _unary(prim):
    def op(x):
        return bind(prim, x)

    op.__name__ = prim.name
    return op


def _binary(prim):
    def op(x, y):
        if type(x) in _SCALARS:
            x = _lit(x, y)
        elif type(y) in _SCALARS:
            y = _lit(y, x)
        return bind(prim, x, y)

    op.__name__ = prim.name
    return op


sqrt = _unary(P.sqrt)
rsqrt = _unary(P.rsqrt)
exp = _unary(P.exp)
expm1 = _unary(P.expm1)
log = _unary(P.log)
log1p = _unary(P.log1p)
log2 = _unary(P.log2)
log10 = _unary(P.log10)
sin = _unary(P.sin)
cos = _unary(P.cos)
tan = _unary(P.tan)
arcsin = _unary(P.arcsin)
arccos = _unary(P.arccos)
arctan = _unary(P.arctan)
sinh = _unary(P.sinh)
cosh = _unary(P.cosh)
tanh = _unary(P.tanh)
arcsinh = _unary(P.arcsinh)
arccosh = _unary(P.arccosh)
arctanh = _unary(P.arctanh)
sigmoid = _unary(P.sigmoid)
erf = _unary(P.erf)
erfinv = _unary(P.erfinv)
floor = _unary(P.floor)
ceil = _unary(P.ceil)
round_ = _unary(P.round_)
neg = _unary(P.neg)
abs_ = _unary(P.abs_)
sign = _unary(P.sign)
square = _unary(P.square)
reciprocal = _unary(P.reciprocal)
logical_not = _unary(P.logical_not)
stop_gradient = _unary(P.stop_gradient)
add = _binary(P.add)
mul = _binary(P.mul)
max_ = _binary(P.max_)
min_ = _binary(P.min_)
sub = _binary(P.sub)
div = _binary(P.div)
pow_ = _binary(P.pow_)
rem = _binary(P.rem)
arctan2 = _binary(P.arctan2)
eq = _binary(P.eq)
ne = _binary(P.ne)
lt = _binary(P.lt)
le = _binary(P.le)
gt = _binary(P.gt)
ge = _binary(P.ge)
logical_and = _binary(P.logical_and)
logical_or = _binary(P.logical_or)


def select(pred, on_true, on_false):
    if type(on_true) in _SCALARS:
        on_true = _lit(on_true, on_false)
    if type(on_false) in _SCALARS:
        on_false = _lit(on_false, on_true)
    return bind(P.select, pred, on_true, on_false)


def convert(x, dtype: str):
    if type(x) in _SCALARS:
        return literal(x, dtype)
    if aval_of(x).dtype == dtype:
        return x
    return bind(P.convert, x, new_dtype=dtype)


def broadcast_in_dim(x, shape: Sequence[int], broadcast_dimensions: Sequence[int]):
    shape, dims = tuple(shape), tuple(broadcast_dimensions)
    if aval_of(x).shape == shape and dims == tuple(range(len(shape))):
        return x
    return bind(P.broadcast_in_dim, x, shape=shape, broadcast_dimensions=dims)


def broadcast_to(x, shape: Sequence[int]):
    """NumPy-style broadcast of ``x`` (trailing axes aligned) to ``shape``."""
    nd = len(aval_of(x).shape)
    return broadcast_in_dim(x, shape, range(len(shape) - nd, len(shape)))


def full(shape: Sequence[int], value, dtype: str):
    """A filled array; rank 0 gives a literal, so no equation is emitted."""
    lit = literal(value, dtype)
    return (
        lit
        if not shape
        else bind(P.broadcast_in_dim, lit, shape=tuple(shape), broadcast_dimensions=())
    )


def zeros_like_aval(aval: ShapedArray):
    return full(aval.shape, 0, aval.dtype)


def reshape(x, new_sizes: Sequence[int]):
    new_sizes = tuple(new_sizes)
    if aval_of(x).shape == new_sizes:
        return x
    return bind(P.reshape, x, new_sizes=new_sizes)


def transpose(x, permutation: Sequence[int]):
    permutation = tuple(permutation)
    if permutation == tuple(range(len(permutation))):
        return x
    return bind(P.transpose, x, permutation=permutation)


def squeeze(x, dimensions: Sequence[int]):
    dimensions = tuple(sorted(dimensions))
    return bind(P.squeeze, x, dimensions=dimensions) if dimensions else x


def expand_dims(x, dimensions: Sequence[int]):
    dimensions = tuple(sorted(dimensions))
    return bind(P.expand_dims, x, dimensions=dimensions) if dimensions else x


def slice_(x, start_indices, limit_indices, strides=None):
    shape = aval_of(x).shape
    start, limit = tuple(start_indices), tuple(limit_indices)
    strides = tuple(strides) if strides is not None else (1,) * len(shape)
    if start == (0,) * len(shape) and limit == shape and strides == (1,) * len(shape):
        return x
    return bind(P.slice_, x, start_indices=start, limit_indices=limit, strides=strides)


def slice_in_dim(x, start: int, limit: int, stride: int = 1, axis: int = 0):
    shape = aval_of(x).shape
    starts, limits, strides = [0] * len(shape), list(shape), [1] * len(shape)
    starts[axis], limits[axis], strides[axis] = start, limit, stride
    return slice_(x, starts, limits, strides)


def pad(x, padding_value, padding_config):
    config = tuple(tuple(c) for c in padding_config)
    if all(c == (0, 0, 0) for c in config):
        return x
    return bind(P.pad, x, _lit(padding_value, x), padding_config=config)


def concatenate(xs: Sequence, dimension: int):
    if len(xs) == 1:
        return xs[0]
    return bind(P.concatenate, *xs, dimension=dimension)


def iota(dtype: str, shape: Sequence[int], dimension: int):
    """``out[..., i, ...] = i`` along ``dimension`` (``jax.lax.broadcasted_iota``)."""
    return bind(P.iota, dtype=dtype, shape=tuple(shape), dimension=dimension)


def take(x, indices, axis: int):
    return bind(P.take, x, indices, axis=axis)


def take_along_axis(x, indices, axis: int):
    return bind(P.take_along_axis, x, indices, axis=axis)


def scatter_add(x, indices, updates, axis: int):
    return bind(P.scatter_add, x, indices, updates, axis=axis)


def _reducer(prim):
    def op(x, axes: Sequence[int]):
        axes = tuple(sorted(axes))
        return bind(prim, x, axes=axes) if axes else x

    op.__name__ = prim.name
    return op


reduce_sum = _reducer(P.reduce_sum)
reduce_max = _reducer(P.reduce_max)
reduce_min = _reducer(P.reduce_min)
reduce_prod = _reducer(P.reduce_prod)


def argmax(x, axis: int):
    return bind(P.argmax, x, axis=axis)


def argmin(x, axis: int):
    return bind(P.argmin, x, axis=axis)


def cumsum(x, axis: int, reverse: bool = False):
    return bind(P.cumsum, x, axis=axis, reverse=reverse)


def dot_general(x, y, dimension_numbers):
    (xc, yc), (xb, yb) = dimension_numbers
    dn = ((tuple(xc), tuple(yc)), (tuple(xb), tuple(yb)))
    return bind(P.dot_general, x, y, dimension_numbers=dn)


# The typed wrappers of the primitive families in autodiff/ops (imported last: those modules
# write their rules with the wrappers above).
from autodiff.control.cond import cond, switch  # noqa: E402, F401
from autodiff.control.custom import custom_jvp_call, custom_lin, custom_vjp_call  # noqa: E402, F401
from autodiff.control.loops import fori_loop, while_, while_loop  # noqa: E402, F401
from autodiff.control.remat import checkpoint as remat  # noqa: E402, F401
from autodiff.control.remat import checkpoint_name as name  # noqa: E402, F401
from autodiff.control.scan import scan  # noqa: E402, F401
from autodiff.ops.bitcast import from_fp8, to_fp8, view  # noqa: E402, F401
from autodiff.ops.bitwise import (  # noqa: E402, F401
    bitwise_and,
    bitwise_invert,
    bitwise_or,
    bitwise_xor,
    left_shift,
    right_shift,
)
from autodiff.ops.collectives import (  # noqa: E402, F401
    all_gather,
    axis_index,
    pmax,
    pmean,
    pmin,
    psum,
    psum_scatter,
)
from autodiff.ops.complex import conj, imag, real  # noqa: E402, F401
from autodiff.ops.conv import conv_general  # noqa: E402, F401
from autodiff.ops.cumulative import cummax, cummin, cumprod, logcumsumexp  # noqa: E402, F401
from autodiff.ops.fft import fft  # noqa: E402, F401
from autodiff.ops.fused import (  # noqa: E402, F401
    fused_addmm,
    fused_cross_entropy,
    fused_layer_norm,
    fused_logsumexp,
    fused_rms_norm,
    fused_rope,
    fused_sdpa,
    fused_softmax,
)
from autodiff.ops.gather_mm import gather_mm, gather_qmm  # noqa: E402, F401
from autodiff.ops.hadamard import hadamard_transform  # noqa: E402, F401
from autodiff.ops.linalg import cholesky, inv, pinv, solve, tri_inv  # noqa: E402, F401
from autodiff.ops.lu import det, lu, slogdet  # noqa: E402, F401
from autodiff.ops.masked_mm import block_masked_mm, segmented_mm  # noqa: E402, F401
from autodiff.ops.partition import argpartition, partition, topk  # noqa: E402, F401
from autodiff.ops.qqmm import qqmm  # noqa: E402, F401
from autodiff.ops.quantized import dequantize, quantize  # noqa: E402, F401
from autodiff.ops.quantized_matmul import quantized_matmul  # noqa: E402, F401
from autodiff.ops.random import (  # noqa: E402, F401
    random_bernoulli,
    random_permutation,
    random_split,  # noqa: E402, F401
    random_uniform,
)
from autodiff.ops.scatter import scatter, scatter_max, scatter_min, scatter_mul  # noqa: E402, F401
from autodiff.ops.searchsorted import searchsorted  # noqa: E402, F401
from autodiff.ops.slicing import dynamic_slice, dynamic_update_slice, rev  # noqa: E402, F401
from autodiff.ops.sort import sort  # noqa: E402, F401
from autodiff.ops.spectral import eig, eigh, qr, svd  # noqa: E402, F401

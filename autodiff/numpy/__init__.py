"""``autodiff.numpy``: mlx.core's array functions, traceable by autodiff's transforms.

Every function mirrors the mlx.core function of the same name and signature. Called on concrete
``mx.array``s outside a trace it simply calls mlx, so one function object runs under
``mx.grad`` and ``ad.grad`` alike; called on traced values it records primitives, with NumPy
broadcasting and dtype promotion made explicit in the IR.

Example:
    >>> import autodiff as ad, autodiff.numpy as anp, mlx.core as mx
    >>> f = lambda x: anp.sum(anp.tanh(x) ** 2)
    >>> ad.grad(f)(mx.array([0.5, -1.0]))
"""

import math as _math

import mlx.core as _mx

from autodiff.numpy import (
    _methods,  # noqa: F401  (installs the mx.array surface on tracers)
    fft,  # noqa: F401  (anp.fft, like mx.fft)
    linalg,  # noqa: F401  (anp.linalg, mirroring mx.linalg)
)
from autodiff.numpy._bits import (
    bitwise_and,
    bitwise_invert,
    bitwise_left_shift,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
    from_fp8,
    left_shift,
    right_shift,
    to_fp8,
    view,
)
from autodiff.numpy._compare import (
    allclose,
    array_equal,
    isclose,
    isneginf,
    isposinf,
    logical_xor,
    nan_to_num,
)
from autodiff.numpy._complex import (
    angle,
    conj,
    conjugate,
    imag,
    real,
)
from autodiff.numpy._conv import (
    conv1d,
    conv2d,
    conv3d,
    conv_general,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    convolve,
)
from autodiff.numpy._creation import (
    arange,
    array,
    asarray,
    bartlett,
    blackman,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    hamming,
    hanning,
    identity,
    linspace,
    ones,
    ones_like,
    tri,
    zeros,
    zeros_like,
)
from autodiff.numpy._cumulative import (
    cummax,
    cummin,
    cumprod,
    cumsum,
    cumulative_prod,
    cumulative_sum,
    logcumsumexp,
)
from autodiff.numpy._dtypes import (
    can_cast,
    finfo,
    iinfo,
    isdtype,
    issubdtype,
    result_type,
)
from autodiff.numpy._einsum import (
    einsum,
)
from autodiff.numpy._elementwise import (
    abs,
    acos,
    acosh,
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    ceil,
    clip,
    cos,
    cosh,
    degrees,
    divide,
    divmod,
    equal,
    erf,
    erfinv,
    exp,
    expm1,
    floor,
    floor_divide,
    greater,
    greater_equal,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    positive,
    pow,
    power,
    radians,
    reciprocal,
    relu,
    remainder,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sinh,
    softplus,
    sqrt,
    square,
    stop_gradient,
    subtract,
    tan,
    tanh,
    trunc,
    where,
)
from autodiff.numpy._indexing import (
    take,
    take_along_axis,
)
from autodiff.numpy._layout import (
    atleast_2d,
    atleast_3d,
    broadcast_arrays,
    contiguous,
    depends,
    diff,
    matrix_transpose,
    meshgrid,
    unflatten,
    unstack,
)
from autodiff.numpy._linalg import (
    addmm,
    inner,
    kron,
    matmul,
    outer,
    tensordot,
    vecdot,
)
from autodiff.numpy._products import (
    block_masked_mm,
    hadamard_transform,
    segmented_mm,
)
from autodiff.numpy._put import (
    put_along_axis,
)
from autodiff.numpy._quantized import (
    dequantize,
    gather_mm,
    gather_qmm,
    qqmm,
    quantize,
    quantized_matmul,
)
from autodiff.numpy._rearrange import (
    as_strided,
    diag,
    diagonal,
    flip,
    roll,
    trace,
)
from autodiff.numpy._reductions import (
    all,
    any,
    argmax,
    argmin,
    count_nonzero,
    logsumexp,
    max,
    mean,
    min,
    minmax,
    prod,
    softmax,
    std,
    sum,
    var,
)
from autodiff.numpy._shape import (
    astype,
    atleast_1d,
    broadcast_to,
    concat,
    concatenate,
    expand_dims,
    flatten,
    moveaxis,
    pad,
    permute_dims,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    tile,
    transpose,
    tril,
    triu,
)
from autodiff.numpy._slicing import (
    slice,
    slice_update,
)
from autodiff.numpy._sorting import (
    argpartition,
    argsort,
    median,
    partition,
    searchsorted,
    sort,
    topk,
    unique,
)

broadcast_shapes = _mx.broadcast_shapes  # shapes only: mlx.core's own

bool_, int8, int16, int32, int64 = _mx.bool_, _mx.int8, _mx.int16, _mx.int32, _mx.int64
uint8, uint16, uint32, uint64 = _mx.uint8, _mx.uint16, _mx.uint32, _mx.uint64
float16, bfloat16, float32, float64 = _mx.float16, _mx.bfloat16, _mx.float32, _mx.float64
complex64 = _mx.complex64
generic, number, inexact, floating, complexfloating = (
    _mx.generic,
    _mx.number,
    _mx.inexact,
    _mx.floating,
    _mx.complexfloating,
)
integer, signedinteger, unsignedinteger = _mx.integer, _mx.signedinteger, _mx.unsignedinteger
pi, e, inf, nan, newaxis = _math.pi, _math.e, float("inf"), float("nan"), None
matrix_norm = linalg.norm  # mlx.core's alias of mx.linalg.norm
euler_gamma = _mx.euler_gamma

# anp.fast: mx.fast's operations as composites, anp.random: mx.random's functions with MLX's
# values, anp.distributed: mx.distributed's collectives, traceable (public submodules, like
# mx.fast, mx.random and mx.distributed)
from autodiff.numpy import distributed, fast, random  # noqa: E402, F401

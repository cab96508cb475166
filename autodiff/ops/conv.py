"""Convolution: ``conv_general``, the analogue of ``jax.lax.conv_general_dilated`` in MLX's
channels-last layout, from which every convolution of ``autodiff.numpy`` is built (conv1d,
conv2d, conv3d, conv_general, the transposed convolutions and convolve).

``conv_general(x, w, stride, padding, kernel_dilation, input_dilation, groups, flip)``: the
input ``x (N, *S, C)`` is dilated by ``input_dilation`` (zeros between elements) and padded by
``padding[i] = (lo, hi) >= 0``; the kernel ``w (O, *K, C // groups)`` is dilated by
``kernel_dilation`` and, with ``flip``, reversed spatially; the output ``(N, *S', O)`` is their
cross-correlation at ``stride``, output channel block ``g`` of ``groups`` reading input channel
block ``g``. Exactly ``mx.conv_general`` with non-negative padding.

Rules. The primitive is bilinear, so the JVP is the sum of two convolutions and each operand has
a transpose, again a convolution: for the input, the cotangent convolved with the kernel (channel
axes swapped per group, ``flip`` toggled) with stride and input dilation exchanged; for the
kernel, the input and the cotangent with the batch as the contracted feature axis, one feature
group per group. Their paddings can be negative, which crops the input
(``conv_layout.crop_negative_padding``). Batching folds the batch into N (batched input), into
each group's output channels (batched kernel) or into the groups (both), with no loops.
"""

from __future__ import annotations

import itertools

import mlx.core as mx
import numpy as np

from autodiff import lax as L
from autodiff.dtypes import is_float
from autodiff.extend import (
    Zero,
    add_tangents,
    batch_rules,
    bind,
    def_primitive,
    impls,
    is_undefined,
    jvp_rules,
    lowerings,
    mark_linear,
    moveaxis,
    transpose_rules,
)
from autodiff.ir import ShapedArray
from autodiff.lower_mlx import _pad_interior, helpers
from autodiff.ops import conv_layout as C
from autodiff.tracing import aval_of


def _conv_rule(x, w, *, stride, padding, kernel_dilation, input_dilation, groups, flip):
    nd = x.ndim - 2
    if not 1 <= nd <= 3 or w.ndim != x.ndim:
        raise TypeError(
            f"expects an input (N, *spatial, C) and a kernel (O, *spatial, C/groups) with 1 to 3 "
            f"spatial axes, got {x.str_short()} and {w.str_short()}"
        )
    if x.dtype != w.dtype or not is_float(x.dtype):
        raise TypeError(
            f"expects operands of one float dtype, got {x.str_short()}, {w.str_short()}"
        )
    params = (stride, padding, kernel_dilation, input_dilation)
    if any(len(p) != nd for p in params):
        raise ValueError(f"stride, padding and dilations need {nd} entries each, got {params}")
    if min(stride + kernel_dilation + input_dilation + (groups,)) < 1:
        raise ValueError(f"strides, dilations and groups must be positive, got {params}, {groups}")
    if min(sum(padding, ())) < 0:
        raise ValueError(f"padding must be non-negative (crop the input instead), got {padding}")
    n, c, o = x.shape[0], x.shape[-1], w.shape[0]
    if c != groups * w.shape[-1] or o % groups:
        raise TypeError(
            f"with groups={groups}, the input's {c} channels must be groups * the kernel's last "
            f"axis ({w.shape[-1]}) and the kernel's {o} output channels a multiple of groups"
        )
    out = [C.out_size(*a) for a in zip(x.shape[1:-1], w.shape[1:-1], stride, *zip(*padding),
                                       kernel_dilation, input_dilation)]  # fmt: skip
    if min(out) < 1:
        raise ValueError(
            f"the dilated kernel {w.shape[1:-1]} (dilation {kernel_dilation}) is larger than the "
            f"padded input {x.shape[1:-1]} (padding {padding}, dilation {input_dilation})"
        )
    return [ShapedArray((n, *out, o), x.dtype)]


conv_general_p = def_primitive("conv_general", "conv", _conv_rule)


def conv_general(
    x,
    w,
    stride,
    padding,
    kernel_dilation=None,
    input_dilation=None,
    groups: int = 1,
    flip: bool = False,
):
    """The general convolution in MLX's layout (``jax.lax.conv_general_dilated`` with
    ``flip``), differentiable in both operands to any order.

    Args:
        x: input ``(N, *spatial, C)``, 1 to 3 spatial axes.
        w: kernel ``(O, *kernel, C // groups)``, of ``x``'s float dtype.
        stride: one window stride per spatial axis.
        padding: one ``(lo, hi)`` per spatial axis; negative entries crop the dilated input,
            as in ``jax.lax`` (``mx.conv_general`` instead crops the undilated input:
            ``anp.conv_general`` follows MLX).
        kernel_dilation, input_dilation: per spatial axis (default 1).
        groups: channel groups; output block ``g`` reads input block ``g``.
        flip: reverse the kernel spatially (convolution rather than cross-correlation).
    """
    shape = aval_of(x).shape
    nd = len(shape) - 2
    kd = tuple(kernel_dilation or (1,) * nd)
    idl = tuple(input_dilation or (1,) * nd)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if min(sum(padding, ())) < 0:
        starts, limits, cropped = C.crop_negative_padding(shape[1:-1], padding, idl)
        if any(s >= e for s, e in zip(starts, limits)):  # nothing of x is left: zeros
            ws = aval_of(w).shape
            out = [C.out_size(n, k, s, lo, hi, d, a) for n, k, s, (lo, hi), d, a in
                   zip(shape[1:-1], ws[1:-1], stride, padding, kd, idl)]  # fmt: skip
            return L.full((shape[0], *out, ws[0]), 0.0, aval_of(x).dtype)
        padding = cropped
        x = L.slice_(x, (0, *starts, 0), (shape[0], *limits, shape[-1]))
    return bind(
        conv_general_p,
        x,
        w,
        stride=tuple(stride),
        padding=padding,
        kernel_dilation=kd,
        input_dilation=idl,
        groups=groups,
        flip=bool(flip),
    )


def _conv_jvp(primals, tangents, **params):
    (x, w), (tx, tw) = primals, tangents
    out = bind(conv_general_p, x, w, **params)
    t = Zero(aval_of(out)) if type(tx) is Zero else bind(conv_general_p, tx, w, **params)
    if type(tw) is not Zero:
        t = add_tangents(t, bind(conv_general_p, x, tw, **params))
    return out, t


jvp_rules[conv_general_p] = _conv_jvp
mark_linear(conv_general_p)


def _conv_t(ct, x, w, *, stride, padding, kernel_dilation, input_dilation, groups, flip):
    if is_undefined(x) and is_undefined(w):
        raise TypeError("conv_general of two linear values is not linear")
    xs, ws, cs = aval_of(x).shape, aval_of(w).shape, aval_of(ct).shape
    nd = len(xs) - 2
    sizes = list(zip(xs[1:-1], ws[1:-1], cs[1:-1], stride, [lo for lo, _ in padding],
                     kernel_dilation, input_dilation))  # fmt: skip
    if is_undefined(x):
        pads = [C.input_cotangent_padding(*a) for a in sizes]
        wt = C.kernel_for_input_cotangent(w, groups)
        ct_x = conv_general(ct, wt, input_dilation, pads, kernel_dilation, stride, groups, not flip)
        return [ct_x, None]
    pads = [C.kernel_cotangent_padding(*a) for a in sizes]
    xt = C.input_for_kernel_cotangent(x, groups)
    ctt = L.transpose(ct, C.spatial_perm(nd, nd + 1, 0))  # (O, *S', N)
    r = conv_general(xt, ctt, kernel_dilation, pads, stride, input_dilation, groups)
    if flip:
        r = C.rev(r, range(1, nd + 1))
    return [None, L.transpose(r, C.spatial_perm(nd, nd + 1, 0))]


transpose_rules[conv_general_p] = _conv_t


def _conv_batch(size, args, dims, **params):
    (x, w), (dx, dw) = args, dims
    groups = params["groups"]
    if dw is None:  # the batch joins N (next to it, so no transpose when it is axis 0 or 1)
        d = dx if dx in (0, 1) else 0
        x0 = moveaxis(x, dx, d)
        xs = aval_of(x0).shape
        y = bind(conv_general_p, L.reshape(x0, (xs[0] * xs[1], *xs[2:])), w, **params)
        return L.reshape(y, (*xs[:2], *aval_of(y).shape[1:])), d
    if dx is None:  # the batch joins each group's block of output channels
        w0 = C.kernel_batch_into_outputs(moveaxis(w, dw, 0), groups)
        y = bind(conv_general_p, x, w0, **params)
        return C.outputs_to_batch(y, groups, size), len(aval_of(x).shape) - 1
    # both: each example's channels are groups of their own
    nd = len(aval_of(x).shape) - 3
    x0 = moveaxis(x, dx, nd + 1)  # (N, *S, B, C)
    xs = aval_of(x0).shape
    w0 = moveaxis(w, dw, 0)
    ws = aval_of(w0).shape
    params = dict(params, groups=groups * size)
    y = bind(
        conv_general_p,
        L.reshape(x0, (*xs[:-2], size * xs[-1])),
        L.reshape(w0, (size * ws[1], *ws[2:])),
        **params,
    )
    ys = aval_of(y).shape
    return L.reshape(y, (*ys[:-1], size, ws[1])), nd + 1


batch_rules[conv_general_p] = _conv_batch


def _unsupported(dtype, nd, kernel_dilation, input_dilation, groups, flip):
    """What MLX's kernels lack here: ``(explicit dilation and flip, one conv per group)``.
    MLX handles groups only in 1-D and 2-D, and its CPU float64 kernel only the plain case."""
    f64 = dtype == mx.float64
    explicit = f64 and (flip or max(kernel_dilation + input_dilation) > 1)
    return explicit, groups > 1 and (nd == 3 or f64)


def _conv_mlx(x, w, stride, lo, hi, kernel_dilation, input_dilation, groups, flip):
    """mx.conv_general, with what MLX lacks done by hand (see :func:`_unsupported`)."""
    nd = x.ndim - 2
    explicit, split = _unsupported(x.dtype, nd, kernel_dilation, input_dilation, groups, flip)
    if explicit:
        if flip:
            w = w[(slice(None),) + (slice(None, None, -1),) * nd]
        w = _pad_interior(w, 0.0, [(0, 0, 0), *((0, 0, d - 1) for d in kernel_dilation), (0, 0, 0)])
        x = _pad_interior(x, 0.0, [(0, 0, 0), *((0, 0, d - 1) for d in input_dilation), (0, 0, 0)])
        kernel_dilation, input_dilation, flip = [1] * nd, [1] * nd, False
    if split:
        xs, ws = mx.split(x, groups, axis=-1), mx.split(w, groups, axis=0)
        args = (stride, lo, hi, kernel_dilation, input_dilation, 1, flip)
        return mx.concatenate([_conv_mlx(a, b, *args) for a, b in zip(xs, ws)], axis=-1)
    return mx.conv_general(
        x, w, stride, (lo, hi), kernel_dilation, input_dilation, groups=groups, flip=flip
    )


helpers["_conv_general"] = _conv_mlx


def _lower_conv(args, ins, outs, stride, padding, kernel_dilation, input_dilation, groups, flip):
    lo, hi = [list(p) for p in zip(*padding)]
    kd, idl = list(kernel_dilation), list(input_dilation)
    mx_dtype = getattr(mx, ins[0].dtype)
    if not any(_unsupported(mx_dtype, ins[0].ndim - 2, kd, idl, groups, flip)):
        return (
            f"mx.conv_general({args[0]}, {args[1]}, stride={list(stride)}, padding=({lo}, {hi}), "
            f"kernel_dilation={kd}, input_dilation={idl}, groups={groups}, flip={flip})"
        )
    return (
        f"_conv_general({args[0]}, {args[1]}, {list(stride)}, {lo}, {hi}, {kd}, {idl}, "
        f"{groups}, {flip})"
    )


lowerings[conv_general_p] = _lower_conv


def _conv_np(x, w, stride, padding, kernel_dilation, input_dilation, groups, flip):
    """Float64 reference: dilate and pad the input, then one product per kernel offset."""
    nd = x.ndim - 2
    xd = np.zeros((x.shape[0], *map(C.dilate, x.shape[1:-1], input_dilation), x.shape[-1]))
    xd[(slice(None), *(slice(None, None, a) for a in input_dilation))] = x
    xp = np.pad(xd, [(0, 0), *padding, (0, 0)])
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * nd]
    ks, (o, cg) = w.shape[1:-1], (w.shape[0], w.shape[-1])
    out = [C.out_size(p, k, s, 0, 0, d, 1) for p, k, s, d in
           zip(xp.shape[1:-1], ks, stride, kernel_dilation)]  # fmt: skip
    xg = xp.reshape(*xp.shape[:-1], groups, cg)
    wg = w.reshape(groups, o // groups, *ks, cg)
    y = np.zeros((x.shape[0], *out, groups, o // groups))
    for j in itertools.product(*map(range, ks)):
        window = tuple(
            slice(i * d, i * d + (n - 1) * s + 1, s)
            for i, d, n, s in zip(j, kernel_dilation, out, stride)
        )
        y += np.einsum(
            "...gc,goc->...go", xg[(slice(None), *window)], wg[(slice(None), slice(None), *j)]
        )
    return y.reshape(*y.shape[:-2], o)


impls[conv_general_p] = _conv_np

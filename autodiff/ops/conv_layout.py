"""Shape arithmetic and layout rearrangements for the convolution family
(``autodiff/ops/conv.py``): output sizes, the paddings of the two transposed convolutions,
negative padding as a crop of the input, and the channel and group reshuffles that the
transpose and batching rules share.

MLX's layout throughout: input ``(N, *spatial, C)``, kernel ``(O, *spatial, C // groups)``,
output ``(N, *spatial, O)``. ``nd`` is the number of spatial axes. Functions that move data
are written with ``autodiff.lax`` on traced values, so they are IR again.
"""

from __future__ import annotations

import mlx.core as mx

from autodiff import lax as L
from autodiff.tracing import aval_of


def dilate(n: int, d: int) -> int:
    """The length of ``n`` elements with ``d - 1`` zeros between neighbours."""
    return 0 if n == 0 else (n - 1) * d + 1


def out_size(n, k, stride, lo, hi, kernel_dilation, input_dilation) -> int:
    """Output length along one spatial axis (``<= 0`` if the kernel does not fit)."""
    span = dilate(n, input_dilation) + lo + hi - dilate(k, kernel_dilation)
    return span // stride + 1 if span >= 0 else 0


def input_cotangent_padding(n, k, m, stride, lo, kernel_dilation, input_dilation):
    """Padding of the cotangent (``m`` long, dilated by ``stride``) so that convolving it with
    the flipped kernel at stride ``input_dilation`` gives back ``n`` elements (JAX's
    ``_conv_general_vjp_lhs_padding``). Negative where the padding exceeded the kernel."""
    ke = dilate(k, kernel_dilation)
    before = ke - lo - 1
    after = dilate(n, input_dilation) + ke - 1 - dilate(m, stride) - before
    return before, after


def kernel_cotangent_padding(n, k, m, stride, lo, kernel_dilation, input_dilation):
    """Padding of the input for the kernel's cotangent: the forward low padding, and a high
    padding that makes the output ``k`` long (negative where the stride skipped input)."""
    return lo, dilate(m, stride) - dilate(n, input_dilation) + dilate(k, kernel_dilation) - lo - 1


def crop_negative_padding(spatial, padding, input_dilation):
    """Negative padding crops the dilated input. Returns ``(starts, limits, padding)``: slicing
    the undilated input to ``[starts, limits)`` and padding it (non-negatively) gives the same
    padded, dilated sequence, so the convolution's output is unchanged."""
    starts, limits, pads = [], [], []
    for n, (lo, hi), a in zip(spatial, padding, input_dilation):
        q = -(lo // a) if lo < 0 else 0  # first element kept: ceil(-lo / a)
        top = (n - 1) * a + min(hi, 0)  # last dilated position kept
        r = top // a if hi < 0 else n - 1  # last element kept
        starts.append(q)
        limits.append(max(q, r + 1))
        pads.append((q * a + lo if lo < 0 else lo, top - r * a if hi < 0 else hi))
    return starts, limits, tuple(pads)


def spatial_perm(nd: int, first: int, last: int) -> list[int]:
    """A permutation ``[first, 1..nd, last]`` of the ``nd + 2`` axes."""
    return [first, *range(1, nd + 1), last]


def kernel_for_input_cotangent(w, groups: int):
    """``(G*Og, *K, Cg) -> (G*Cg, *K, Og)``: each group's kernel with its channel axes swapped."""
    shape = aval_of(w).shape
    nd = len(shape) - 2
    if groups == 1:
        return L.transpose(w, spatial_perm(nd, nd + 1, 0))
    og, k, cg = shape[0] // groups, shape[1:-1], shape[-1]
    w = L.reshape(w, (groups, og, *k, cg))
    w = L.transpose(w, [0, nd + 2, *range(2, nd + 2), 1])
    return L.reshape(w, (groups * cg, *k, og))


def input_for_kernel_cotangent(x, groups: int):
    """``(N, *S, G*Cg) -> (Cg, *S, G*N)``: channels become the batch, the batch the features
    (one block of N per group)."""
    shape = aval_of(x).shape
    nd = len(shape) - 2
    if groups == 1:
        return L.transpose(x, spatial_perm(nd, nd + 1, 0))
    n, s, cg = shape[0], shape[1:-1], shape[-1] // groups
    x = L.reshape(x, (n, *s, groups, cg))
    x = L.transpose(x, [nd + 2, *range(1, nd + 1), nd + 1, 0])
    return L.reshape(x, (cg, *s, groups * n))


def kernel_batch_into_outputs(w0, groups: int):
    """A batched kernel ``(B, G*Og, *K, Cg) -> (G*B*Og, *K, Cg)``: the batch goes inside each
    group's block of output channels, so ``groups`` still pairs them with the input's groups."""
    shape = aval_of(w0).shape
    b, o, k, cg = shape[0], shape[1], shape[2:-1], shape[-1]
    nd = len(k)
    if groups > 1:
        w0 = L.reshape(w0, (b, groups, o // groups, *k, cg))
        w0 = L.transpose(w0, [1, 0, *range(2, nd + 4)])
    return L.reshape(w0, (b * o, *k, cg))


def outputs_to_batch(y, groups: int, b: int):
    """Undo :func:`kernel_batch_into_outputs` on the output: ``(N, *S, G*B*Og) ->
    (N, *S, B, G*Og)`` (batch axis at ``nd + 1``)."""
    shape = aval_of(y).shape
    lead, o = shape[:-1], shape[-1] // b
    if groups > 1:
        y = L.reshape(y, (*lead, groups, b, o // groups))
        nl = len(lead)
        y = L.transpose(y, [*range(nl), nl + 1, nl, nl + 2])
    return L.reshape(y, (*lead, b, o))


def rev(x, axes):
    """``x`` reversed along ``axes`` (a gather with constant indices)."""
    shape = aval_of(x).shape
    for a in axes:
        if shape[a] > 1:
            x = L.take(x, mx.arange(shape[a] - 1, -1, -1, dtype=mx.int32), a)
    return x

"""Short-time Fourier transforms for ``anp.fft``: ``stft`` is a gather of the frames (the
centre padding folded into the gather's indices), the window, and a transform per frame;
``istft`` the inverse transform per frame, the window, and an overlap-add scatter divided by
the overlap-added squared window, as ``mx.fft.stft``/``mx.fft.istft`` compute them."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from autodiff import lax
from autodiff.dtypes import is_complex
from autodiff.numpy._complex import real
from autodiff.numpy._core import astype, mirror, promote, result_type
from autodiff.numpy.fft import fft, ifft, irfft, rfft
from autodiff.tracing import aval_of


def _window(window, win_length, n_fft, name):
    """The window, zero-padded (centred) to ``n_fft``; None for the rectangular window of
    length ``n_fft`` (nothing to multiply by)."""
    if window is None:
        if win_length > n_fft:
            raise ValueError(f"[{name}] window length must not exceed n_fft.")
        if win_length == n_fft:
            return None
        window = lax.full((win_length,), 1.0, "float32")
    elif len(aval_of(window).shape) != 1:
        raise ValueError(f"[{name}] window must be a one-dimensional array.")
    w = aval_of(window).shape[0]
    if w > n_fft:
        raise ValueError(f"[{name}] window length must not exceed n_fft.")
    left = (n_fft - w) // 2
    return lax.pad(window, 0.0, [(left, n_fft - w - left, 0)]) if w < n_fft else window


def _frame_index(n_frames, n_fft, hop):
    return np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]


def _index(idx: np.ndarray):
    return mx.array(idx.astype(np.int32))


_PAD_MODES = ("reflect", "constant", "edge")


def _padded_source(length: int, pad: int, mode: str) -> np.ndarray:
    """For reflect/edge padding by ``pad`` on both sides: the source of each padded index."""
    i = np.arange(-pad, length + pad)
    if mode == "edge" or length == 1:
        return np.clip(i, 0, length - 1)
    period = 2 * (length - 1)
    m = np.mod(i, period)
    return np.where(m < length, m, period - m)


@mirror(mx.fft.stft)
def stft(
    x,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window=None,
    center: bool = True,
    pad_mode: str = "reflect",
    norm: str = "backward",
    onesided: bool | None = None,
):
    """The short-time Fourier transform, as ``mx.fft.stft``: frames of ``n_fft`` samples every
    ``hop_length`` along the last axis (padded by ``n_fft // 2`` on both sides with
    ``pad_mode`` when ``center``), times ``window``, transformed; the result is
    ``(..., n_freq, n_frames)``, complex.

    Example:
        >>> spec = lambda x: anp.sum(anp.abs(anp.fft.stft(x, n_fft=8)) ** 2)
        >>> ad.grad(spec)(mx.random.normal((32,)))
    """
    name = "stft"
    shape = aval_of(x).shape
    if len(shape) < 1:
        raise ValueError(f"[{name}] Input must have at least one dimension.")
    hop = n_fft // 4 if hop_length is None else hop_length
    if hop <= 0:
        raise ValueError(f"[{name}] hop_length must be positive.")
    win = _window(window, n_fft if win_length is None else win_length, n_fft, name)
    length, pad = shape[-1], n_fft // 2 if center else 0
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"Invalid padding mode ({pad_mode}) passed to pad")
    if length + 2 * pad < n_fft:
        raise ValueError(f"[{name}] Input is too short for the given n_fft.")
    n_frames = 1 + (length + 2 * pad - n_fft) // hop
    frames = _frame_index(n_frames, n_fft, hop)
    if pad and pad_mode == "constant":
        x = lax.pad(x, 0.0, [(0, 0, 0)] * (len(shape) - 1) + [(pad, pad, 0)])
    elif pad:  # reflect/edge: a gather of the unpadded signal
        frames = _padded_source(length, pad, pad_mode)[frames]
    frames = lax.take(x, _index(frames), len(shape) - 1)  # (..., n_frames, n_fft)
    if win is not None:
        frames = lax.mul(*promote(frames, win))
    complex_in = is_complex(aval_of(frames).dtype)
    if onesided is None:
        onesided = not complex_in
    if onesided and not complex_in:
        spec = rfft(frames, norm=norm)
    else:
        spec = fft(frames, norm=norm)
        if onesided:
            spec = lax.slice_in_dim(spec, 0, n_fft // 2 + 1, 1, len(aval_of(spec).shape) - 1)
    nd = len(aval_of(spec).shape)
    return lax.transpose(spec, list(range(nd - 2)) + [nd - 1, nd - 2])


@mirror(mx.fft.istft)
def istft(
    stft_matrix,
    n_fft: int | None = None,
    hop_length: int | None = None,
    win_length: int | None = None,
    window=None,
    center: bool = True,
    norm: str = "backward",
    onesided: bool | None = None,
    length: int | None = None,
):
    """The inverse of :func:`stft`, as ``mx.fft.istft``: the inverse transform of each frame,
    times ``window``, overlap-added and divided by the overlap-added squared window (at least
    1e-8); trimmed by ``n_fft // 2`` at both ends when ``center``, and to ``length`` if given
    (zero-padded if short). The result is real.
    """
    name = "istft"
    shape = aval_of(stft_matrix).shape
    if len(shape) < 2:
        raise ValueError(f"[{name}] Input must have at least two dimensions (freq, frames).")
    n_freq, n_frames = shape[-2:]
    onesided = True if onesided is None else onesided
    if n_fft is None:
        n_fft = 2 * (n_freq - 1) if onesided else n_freq
    hop = n_fft // 4 if hop_length is None else hop_length
    if hop <= 0:
        raise ValueError(f"[{name}] hop_length must be positive.")
    win = _window(window, n_fft if win_length is None else win_length, n_fft, name)
    nd = len(shape)
    spec = lax.transpose(stft_matrix, list(range(nd - 2)) + [nd - 1, nd - 2])
    if onesided:
        frames = irfft(spec, n=n_fft, norm=norm)
    else:
        frames = real(ifft(spec, n=n_fft, norm=norm))
    if win is None:
        dtype = aval_of(frames).dtype
        sq = lax.full((n_frames * n_fft,), 1.0, dtype)
    else:
        dtype = result_type(frames, win)
        frames, win = astype(frames, dtype), astype(win, dtype)
        frames = lax.mul(frames, lax.broadcast_to(win, aval_of(frames).shape))
        sq = lax.reshape(lax.broadcast_to(lax.square(win), (n_frames, n_fft)), (n_frames * n_fft,))
    total = n_fft + hop * (n_frames - 1)
    idx = _index(_frame_index(n_frames, n_fft, hop).reshape(-1))
    lead = aval_of(frames).shape[:-2]
    flat = lax.reshape(frames, lead + (n_frames * n_fft,))
    y = lax.scatter_add(lax.full(lead + (total,), 0.0, dtype), idx, flat, len(lead))
    env = lax.scatter_add(lax.full((total,), 0.0, dtype), idx, sq, 0)
    y = lax.div(y, lax.broadcast_to(lax.max_(env, 1e-8), aval_of(y).shape))
    start = n_fft // 2 if center else 0
    if length is None:
        end = total - n_fft // 2 if center else total
    else:
        end = min(start + length, total)
    y = lax.slice_in_dim(y, start, max(start, end), 1, len(lead))
    if length is not None and aval_of(y).shape[-1] < length:
        got = aval_of(y).shape[-1]
        y = lax.pad(y, 0.0, [(0, 0, 0)] * len(lead) + [(0, length - got, 0)])
    return y

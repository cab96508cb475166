"""Rows for autodiff/ops/fft.py and anp.fft: every function of mx.fft, with ``n``/``s``
padding and truncation, axes in any order, the three norms, real and complex inputs.

``mx.vmap`` of ``mx.fft.stft`` fails ("Not implemented for AsStrided"), so its rows skip the
comparison with mx.vmap (ours batches it, checked against the loop). ``mx.jvp`` of ``irfft``
with an odd ``n`` is wrong (it returns the even length ``2 * (m - 1)``: shape and values), so
rows with odd irfft lengths skip the comparison with mx.jvp (their VJPs agree).
"""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, S2, A, C, Row, arrays_s

import autodiff.numpy as anp

F = anp.fft
_HALF = st.tuples(st.integers(1, 3), st.integers(2, 4))  # irfft's default n needs m >= 2
_SIGNAL = st.tuples(st.integers(4, 9))
_SIGNALS = st.tuples(st.integers(1, 2), st.integers(5, 9))
_SPEC = st.tuples(st.sampled_from([3, 5]), st.integers(1, 4))  # (n_freq, n_frames)


def _c(shape):
    return arrays_s(shape, dtype=mx.complex64, low=-2.0, high=2.0)


def _window(n):
    return lambda s: arrays_s((n,), low=0.5, high=1.5)


ROWS = [
    Row("fft", lambda z: F.fft(z) * 2.0 + F.fft(z, axis=0), (C(),), shapes=S1),
    Row("fft_n", lambda z: (F.fft(z, n=3, axis=0), F.fft(z, n=5)), (C(),), shapes=S1),
    Row("fft_real_input", lambda x: F.fft(x, n=4, norm="ortho"), (A(),), shapes=S1),
    Row("ifft", lambda z: (F.ifft(z), F.ifft(z, n=2, axis=0, norm="forward")), (C(),), shapes=S1),
    Row("fft2", lambda z: (F.fft2(z), F.fft2(z, s=(2, 3), axes=(-1, 0))), (C(),), shapes=S2),
    Row("ifft2", lambda z: F.ifft2(z, s=(3, 2), norm="ortho"), (C(),), shapes=S2),
    Row("fftn", lambda z: F.fftn(z) + F.fftn(z, axes=[0]) * 1j, (C(),), shapes=S1),
    Row(
        "fftn_s_axes",
        lambda z: F.fftn(z, s=(4, 2), axes=(1, 0), norm="forward"),
        (C(),),
        shapes=S2,
    ),
    Row("ifftn", lambda z: F.ifftn(z, norm="ortho") - F.ifftn(z, axes=[-1]), (C(),), shapes=S1),
    Row("rfft", lambda x: F.rfft(x) * (1 + 1j), (A(),), shapes=S1),
    Row(
        "rfft_n_axis",
        lambda x: (F.rfft(x, n=5, axis=0), F.rfft(x, n=2, axis=0, norm="ortho")),
        (A(),),
        shapes=S1,
    ),
    Row("rfft_complex_input", lambda z: F.rfft(z, n=4), (C(),), shapes=S1),
    Row("irfft", lambda z: F.irfft(z) * 2.0, (C(),), shapes=_HALF),
    Row(
        "irfft_n",
        lambda z: (F.irfft(z, n=5), F.irfft(z, n=2, axis=0, norm="forward")),
        (C(),),
        shapes=_HALF,
        mx_jvp=False,  # odd n
    ),
    Row("irfft_real_input", lambda x: F.irfft(x, n=4, norm="ortho"), (A(),), shapes=S1),
    Row("rfft2", lambda x: (F.rfft2(x), F.rfft2(x, s=(3, 2), axes=(1, 0))), (A(),), shapes=S2),
    Row("irfft2", lambda z: F.irfft2(z, s=(2, 3)), (C(),), shapes=S2, mx_jvp=False),  # odd n
    Row("irfft2_even", lambda z: F.irfft2(z, s=(3, 4), axes=(0, -1)), (C(),), shapes=S2),
    Row("rfftn", lambda x: F.rfftn(x, norm="ortho"), (A(),), shapes=S1),
    Row("irfftn", lambda z: F.irfftn(z) * 1.5, (C(),), shapes=_HALF),
    Row(
        "irfftn_s_axes",
        lambda z: F.irfftn(z, s=(3, 4), axes=(-1, 0), norm="forward"),
        (C(),),
        shapes=S2,
    ),
    Row(
        "fftshift",
        lambda z: F.fftshift(z) + F.ifftshift(z) * 2.0 + F.fftshift(z, axes=0) * 1j,
        (C(),),
        shapes=S1,
    ),
    Row(
        "fftshift_axes",
        lambda x: F.fftshift(x, axes=[-1, 0]) + F.ifftshift(x, axes=-1),
        (A(),),
        shapes=S2,
    ),
    Row(
        "fftfreq",
        lambda x: x * F.fftfreq(x.shape[-1], d=0.5) + F.rfftfreq(2 * x.shape[-1] - 1),
        (A(),),
        shapes=S1,
    ),
    # short-time transforms
    Row("stft", lambda x: F.stft(x, n_fft=4), (A(),), shapes=_SIGNALS, mx_vmap=False),
    Row(
        "stft_modes",
        lambda x: (
            F.stft(x, n_fft=4, hop_length=3, pad_mode="constant")
            + F.stft(x, n_fft=4, hop_length=3, pad_mode="edge") * 1j
        ),
        (A(),),
        shapes=_SIGNAL,
        mx_vmap=False,
    ),
    Row(
        "stft_window",
        lambda x, w: F.stft(x, n_fft=5, hop_length=2, window=w, center=False, norm="ortho"),
        (A(), _window(3)),
        shapes=_SIGNALS,
        diff=(0, 1),
        mx_vmap=False,
    ),
    Row(
        "stft_twosided_complex",
        lambda x, z: F.stft(x, n_fft=4, onesided=False) + F.stft(z, n_fft=4, win_length=3),
        (A(), C()),
        shapes=_SIGNAL,
        diff=(0, 1),
        mx_vmap=False,
    ),
    Row("istft", lambda s: F.istft(s), (C(),), shapes=_SPEC),
    Row(
        "istft_options",
        lambda s: (
            F.istft(s, hop_length=1, center=False, length=5)
            + F.istft(s, n_fft=6, hop_length=2, norm="ortho", length=5)
        ),
        (C(),),
        shapes=_SPEC,
    ),
    Row(
        "istft_odd",
        lambda s: F.istft(s, n_fft=5, hop_length=2, norm="forward"),
        (C(),),
        shapes=_SPEC,
        mx_jvp=False,  # odd n
    ),
    Row(
        "istft_window",
        lambda s, w: F.istft(s, n_fft=4, window=w, onesided=False, length=7),
        (lambda s: _c((4, s[0])), _window(4)),
        shapes=st.tuples(st.integers(1, 4)),
        diff=(0, 1),
    ),
]

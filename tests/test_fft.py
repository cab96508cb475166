"""anp.fft: gradients through every kind of transform against JAX's, the short-time transforms
(perfect reconstruction, its gradient, windows), MLX's argument checks, the mx.fft spelling
under transforms, and the lowered program calling MLX's kernels."""

import mlx.core as mx
import numpy as np
import pytest
from oracles import optional_jax, requires_jax

import autodiff as ad
import autodiff.numpy as anp
from autodiff.testing import check_grads

jax, jnp = optional_jax(jax_platforms="cpu")

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 8)).astype(np.float32)
Z = (rng.standard_normal((3, 5)) + 1j * rng.standard_normal((3, 5))).astype(np.complex64)
W = np.arange(1.0, 16.0, dtype=np.float32).reshape(3, 5)

# real-valued functions of one argument, written once for a namespace m
CASES = {
    "fft": (lambda m, z: m.sum(m.abs(m.fft.fft(z, axis=0)) ** 2 * W), Z),
    "fft_n_ortho": (lambda m, z: m.sum(m.real(m.fft.fft(z, n=7, norm="ortho")) ** 2), Z),
    "ifft_forward": (lambda m, z: m.sum(m.imag(m.fft.ifft(z, n=4, norm="forward")) * 0.5), Z),
    "fft2": (lambda m, z: m.sum(m.abs(m.fft.fft2(z, s=(4, 3))) ** 3), Z),
    "ifft2": (lambda m, z: m.sum(m.real(m.fft.ifft2(z) * W)), Z),
    "fftn": (lambda m, z: m.sum(m.abs(m.fft.fftn(z, s=(2, 7), axes=(1, 0))) ** 2), Z),
    "ifftn": (lambda m, z: m.sum(m.real(m.fft.ifftn(z, axes=(0,))) * W), Z),
    "rfft": (lambda m, x: m.sum(m.abs(m.fft.rfft(x)) ** 2 * m.arange(5)), X),
    "rfft_odd_n": (lambda m, x: m.sum(m.imag(m.fft.rfft(x, n=7, axis=0)) * 1.3), X),
    "rfft2": (lambda m, x: m.sum(m.abs(m.fft.rfft2(x, s=(2, 5))) ** 2), X),
    "rfftn": (lambda m, x: m.sum(m.real(m.fft.rfftn(x, norm="ortho")) ** 3), X),
    "irfft": (lambda m, z: m.sum(m.fft.irfft(z) * m.arange(8)), Z),
    "irfft_odd_n": (lambda m, z: m.sum(m.fft.irfft(z, n=9) ** 2), Z),
    "irfft_short_n": (lambda m, z: m.sum(m.fft.irfft(z, n=4, axis=0) ** 2), Z),
    "irfft2": (lambda m, z: m.sum(m.fft.irfft2(z, s=(3, 5)) ** 2), Z),
    "irfftn": (lambda m, z: m.sum(m.fft.irfftn(z, s=(4, 6), axes=(0, 1)) * m.arange(6)), Z),
    "shifts": (
        lambda m, z: m.sum(m.real(m.fft.fftshift(z) * W) + m.imag(m.fft.ifftshift(z, axes=1))),
        Z,
    ),
}


@requires_jax
@pytest.mark.parametrize("name", CASES)
def test_gradients_match_jax(name):
    f, arg = CASES[name]
    ours = ad.grad(lambda a: f(anp, a))(mx.array(arg))
    theirs = jax.grad(lambda a: f(jnp, a))(jnp.asarray(arg))
    scale = max(1.0, float(np.abs(np.asarray(theirs)).max()))
    np.testing.assert_allclose(np.array(ours), np.asarray(theirs), rtol=2e-5, atol=2e-6 * scale)


def test_irfft_ignores_the_imaginary_part_of_dc_and_nyquist_as_jax():
    # its transpose (the gradient) is therefore real at those bins
    z = mx.array(Z[0])
    g = ad.grad(lambda z: anp.sum(anp.fft.irfft(z) * mx.arange(8.0)))(z)
    assert float(mx.abs(mx.imag(g[0]))) == 0 and float(mx.abs(mx.imag(g[-1]))) == 0


def test_stft_istft_reconstruct_and_differentiate():
    x = mx.array(rng.standard_normal((2, 30)).astype(np.float32))
    win = mx.array(np.hanning(10).astype(np.float32) + 0.05)

    def roundtrip(x, **kw):
        return anp.fft.istft(anp.fft.stft(x, **kw), length=30, **kw)

    for kw in (
        dict(n_fft=8),
        dict(n_fft=10, hop_length=3, window=win),
        dict(n_fft=6, center=False),
    ):
        y = roundtrip(x, **kw)
        tail = 30 if kw.get("center", True) else 24  # frames that cover the signal
        np.testing.assert_allclose(np.array(y)[:, :tail], np.array(x)[:, :tail], atol=1e-5)
        # reconstruction is the identity, so the gradient of sum(y * x0) is x0
        g = ad.grad(lambda x: anp.sum(roundtrip(x, **kw) * x0), argnums=0)
        x0 = mx.array(rng.standard_normal((2, 30)).astype(np.float32))
        np.testing.assert_allclose(np.array(g(x))[:, :tail], np.array(x0)[:, :tail], atol=1e-5)


def test_stft_gradient_in_the_window_and_second_order():
    x = mx.array(rng.standard_normal(12).astype(np.float32))
    w = mx.array([0.5, 1.0, 1.5, 1.0])
    f = lambda x, w: anp.fft.stft(x, n_fft=6, hop_length=2, window=w, pad_mode="edge")
    check_grads(f, (x, w), order=2)
    spec = lambda x, w: anp.sum(anp.abs(f(x, w)) ** 2)
    for i in (0, 1):
        ours = ad.grad(spec, argnums=i)(x, w)
        np.testing.assert_allclose(np.array(ours), np.array(mx.grad(spec, argnums=i)(x, w)), 1e-4)


def test_mx_spelling_is_routed_under_transforms():
    def f(x):
        s = mx.fft.stft(x, n_fft=4)
        y = mx.fft.istft(s * 2.0, n_fft=4, length=x.shape[-1])
        return (
            mx.sum(mx.abs(mx.fft.rfft(x)))
            + mx.sum(y * y)
            + mx.sum(mx.fft.fftshift(mx.fft.fftfreq(4)) * x[:4])
        )

    x = mx.array(rng.standard_normal(9).astype(np.float32))
    np.testing.assert_allclose(
        np.array(ad.grad(f)(x)), np.array(mx.grad(f)(x)), rtol=1e-5, atol=1e-5
    )
    assert "mx.fft.rfftn" in ad.jit(f).lower(x).as_text()


def test_concrete_inputs_call_mlx():
    x = mx.array(X)
    for f in (anp.fft.rfft, anp.fft.fft2, anp.fft.fftshift, lambda a: anp.fft.stft(a, n_fft=4)):
        name = getattr(f, "__name__", "stft")
        mx_f = getattr(mx.fft, name) if name != "<lambda>" else lambda a: mx.fft.stft(a, n_fft=4)
        assert mx.array_equal(f(x), mx_f(x))
    assert anp.fft.fftfreq is mx.fft.fftfreq


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: anp.fft.fft(x, norm="bad"), r"\[fft\] Invalid norm"),
        (lambda x: anp.fft.fftn(x, s=(2, 2)), r"`axes` should not be `None` if `s`"),
        (lambda x: anp.fft.fft2(x, axes=(0, 0)), r"Duplicated axis"),
        (lambda x: anp.fft.rfft(x, n=0), r"Invalid FFT output size"),
        (lambda x: anp.fft.fft2(x, s=(3,)), r"Shape and axes have different sizes"),
        (lambda x: anp.fft.stft(x, n_fft=1), r"hop_length must be positive"),
        (lambda x: anp.fft.stft(x, n_fft=16, center=False), r"too short"),
        (lambda x: anp.fft.stft(x, n_fft=4, window=mx.ones(5)), r"must not exceed n_fft"),
        (lambda x: anp.fft.stft(x, n_fft=4, pad_mode="wrap"), r"Invalid padding mode"),
        (lambda x: anp.fft.istft(x[0], n_fft=4), r"at least two dimensions"),
    ],
)
def test_argument_errors_match_mlx(call, message):
    x = mx.array(X)
    with pytest.raises(ValueError, match=message):
        call(x)  # MLX's own message
    with pytest.raises(ValueError, match=message):
        ad.grad(lambda x: anp.sum(anp.abs(call(x))))(x)  # ours, while tracing


def test_axis_out_of_range_is_a_clear_error():
    # MLX raises IndexError("SmallVector out of range.") here; we name the axis
    with pytest.raises(ValueError, match=r"\[fft\] Invalid axis 2 for an array with 2 dim"):
        ad.grad(lambda x: anp.sum(anp.abs(anp.fft.fft(x, axis=2))))(mx.array(X))


def test_fftn_of_no_axes_is_the_input():
    x = mx.array(X)
    assert ad.jit(lambda x: anp.fft.fftn(x, axes=[]))(x).dtype == mx.fft.fftn(x, axes=[]).dtype


def test_vmap_over_the_transformed_axis():
    xs = mx.array(rng.standard_normal((4, 3, 6)).astype(np.float32))
    f = lambda x: anp.fft.irfft(anp.fft.rfft(x, axis=0) * 2.0, n=3, axis=0)
    for axis in (0, 1, 2):
        got = ad.vmap(f, in_axes=axis)(xs)
        expected = mx.stack([f(xs[(slice(None),) * axis + (i,)]) for i in range(xs.shape[axis])])
        np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-5)

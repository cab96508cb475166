"""Rows for complex numbers: autodiff/ops/complex.py (real, imag, conj) and the complex64
support of the core primitives (arithmetic, holomorphic functions, abs, reductions, matmul,
select, convert, promotion of Python complex scalars).

Arguments are drawn away from poles and branch cuts, so finite differences apply. MLX lacks
the second derivative of complex ``abs`` (its second-order result is wrong), hence
mx_order=1 where abs is differentiated twice.
"""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import S1, S2, A, C, Row, arrays_s

import autodiff.numpy as anp

_SQUARE = st.tuples(st.integers(1, 3), st.integers(1, 3))


def _c_arrays(shape):
    return arrays_s(shape, dtype=mx.complex64, low=-2.0, high=2.0)


ROWS = [
    Row("complex_parts", lambda z: anp.real(z) * anp.imag(z) + anp.conj(z) * 2.0, (C(),)),
    Row(
        "complex_methods",
        lambda z: z.real + z.imag * z.conj() + anp.conjugate(z) * 1j,
        (C(),),
    ),
    Row("complex_parts_of_real", lambda x: anp.real(x) + anp.imag(x) + anp.conj(x), (A(),)),
    Row(
        "complex_arith",
        lambda a, b: a * b - a / b + (-a) + b * b,
        (C(), C(away=(0j,))),
        diff=(0, 1),
    ),
    Row(
        "complex_scalars",
        lambda z: (z + 1j) * (2 - 0.5j) - 3 + z * 2 + 1.5 / (z + 3.0),
        (C(),),
    ),
    Row(
        "complex_promote",
        lambda x, z: x * z + x.astype(mx.complex64) * 1j + (x + 0.5j),
        (A(), C()),
        diff=(0, 1),
    ),
    Row("complex_abs", lambda z: anp.abs(z) * anp.abs(z * z), (C(away=(0j,)),), mx_order=1),
    Row(
        "complex_abs_of_real",
        lambda x: anp.abs(x * (1 + 2j)) + anp.abs(x.astype(mx.complex64) + 1j),
        (A(away=(0.0,)),),
        mx_order=1,
    ),
    Row("complex_angle", lambda z: anp.angle(z) * anp.abs(z), (C(0.2, 2.0),), mx_order=1),
    Row(
        "complex_exp_sin_cos",
        lambda z: anp.exp(z) * anp.sin(z) - anp.cos(z) + anp.tan(z * 0.3),
        (C(-1.5, 1.5),),
    ),
    Row(
        "complex_hyperbolic",
        lambda z: anp.sinh(z) + anp.cosh(z) * anp.tanh(z * 0.5),
        (C(-1.5, 1.5),),
    ),
    # principal branches: the square keeps away from the cuts on the negative real axis
    Row(
        "complex_sqrt_log",
        lambda z: anp.sqrt(z) + anp.log(z) * anp.rsqrt(z) + anp.log2(z) - anp.log10(z),
        (C(0.2, 2.0),),
        interp_rtol=5e-4,
    ),
    Row("complex_log1p", lambda z: anp.log1p(z), (C(0.2, 2.0),)),
    # inverse functions: cuts on the real axis beyond +-1 (arcsin, arccos, arctanh) or on the
    # imaginary axis beyond +-i (arctan, arcsinh), outside the drawn square
    Row(
        "complex_inverse_trig",
        lambda z: anp.arcsin(z) + anp.arccos(z) * anp.arctan(z) + anp.arcsinh(z) - anp.arctanh(z),
        (C(-0.8, 0.8),),
    ),
    Row(
        "complex_square_reciprocal",
        lambda z: anp.square(z) + anp.reciprocal(z),
        (C(away=(0j,)),),
    ),
    # MLX's VJP of power does not follow either convention for complex operands (it is
    # neither JAX's gradient nor the conjugate of it); ours matches jax.grad
    Row(
        "complex_power",
        lambda z, w: z**2 + anp.power(z, w) + anp.power(z, 0.5 + 1j),
        (C(0.2, 2.0), C(-1.0, 1.0)),
        diff=(0, 1),
        mx_grad=False,
    ),
    Row(
        "complex_reductions",
        lambda z: anp.sum(z, axis=0) * anp.mean(z) + anp.prod(z, axis=-1)[..., None],
        (C(-1.5, 1.5),),
        shapes=S2,
        mx_order=1,  # MLX: "JVP is not implemented for cumulative prod", as for real prod
    ),
    Row(
        "complex_var_std",
        lambda z: anp.var(z, axis=0) + anp.std(z, axis=-1, keepdims=True, ddof=0),
        (C(),),
        shapes=st.tuples(st.integers(2, 3), st.integers(2, 3)),
    ),
    Row("complex_cumsum", lambda z: anp.cumsum(z, axis=-1) * z, (C(),), shapes=S1),
    Row(
        "complex_matmul",
        lambda a, b: a @ b,
        (lambda s: _c_arrays((s[0], 3)), lambda s: _c_arrays((3, s[1]))),
        shapes=_SQUARE,
        diff=(0, 1),
    ),
    Row(
        "complex_where",
        lambda c, a, b: anp.where(c > 0, a, b * 2.0) + anp.where(c < 0, 1j, a),
        (A(away=(0.0,)), C(), C()),
        diff=(1, 2),
    ),
    # complex -> float keeps the real part (as MLX and NumPy); float -> complex adds 0j
    Row("complex_astype", lambda z: (z.astype(mx.float32) * z).astype(mx.complex64), (C(),)),
    Row(
        "complex_astype_int",
        lambda z: z.astype(mx.int32) + z.astype(mx.int32).astype(mx.complex64) * 1j,
        (C(),),
        diff=None,
    ),
    Row(
        "complex_shape_ops",
        lambda z: anp.concatenate([z, z * 1j], axis=-1)[..., ::2] + anp.transpose(z)[..., :1].T,
        (C(),),
        shapes=S2,
    ),
]

"""Rows for ``anp.fast`` (autodiff/numpy/fast.py): mx.fast's operations as composites, compared
with mx.fast itself, with finite differences to second order, and with mx.grad/mx.jvp (MLX
differentiates them through its reference path)."""

import mlx.core as mx
from hypothesis import strategies as st
from rowlib import Row, arrays_s

import autodiff.numpy as anp

F = anp.fast
_BT = st.tuples(st.integers(1, 2), st.integers(1, 3))  # (batch, sequence)


def _a(*tail):
    return lambda s: arrays_s(s + tail)


def _v(n):
    return lambda s: arrays_s((n,))


def _sdpa(**kw):
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.35, **kw)


def _qkv(nq=2, nkv=2, tk=3):
    """q (B, nq, T, 4), k and v (B, nkv, tk, 4 / 3) for a drawn (B, T)."""
    return (
        lambda s: arrays_s((s[0], nq, s[1], 4)),
        lambda s: arrays_s((s[0], nkv, tk, 4)),
        lambda s: arrays_s((s[0], nkv, tk, 3)),
    )


ROWS = [
    Row("rms_norm", lambda x, w: F.rms_norm(x, w, 1e-5), (_a(6), _v(6)), shapes=_BT, diff=(0, 1)),
    Row("rms_norm_no_weight", lambda x: F.rms_norm(x, None, 1e-3), (_a(5),), shapes=_BT),
    Row(
        "layer_norm",
        lambda x, w, b: F.layer_norm(x, w, b, 1e-5),
        (_a(6), _v(6), _v(6)),
        shapes=_BT,
        diff=(0, 1, 2),
    ),
    Row(
        "layer_norm_partial",
        lambda x, b: F.layer_norm(x, None, None, 1e-5) * F.layer_norm(x, None, b, 1e-4),
        (_a(5), _v(5)),
        shapes=_BT,
        diff=(0, 1),
    ),
    Row(
        "rope",
        lambda x: (
            F.rope(x, 6, traditional=False, base=10000.0, scale=0.5, offset=3)
            * F.rope(x, 8, traditional=True, base=500.0, scale=1.0, offset=0)
        ),
        (lambda s: arrays_s((s[0], 2, s[1], 8)),),
        shapes=_BT,
    ),
    Row(
        "rope_offsets",
        lambda x, o: F.rope(x, 4, traditional=True, base=100.0, scale=1.0, offset=o),
        (
            lambda s: arrays_s((s[0], s[1], 6)),
            lambda s: arrays_s((s[0],), dtype=mx.int32, low=0, high=5),
        ),
        shapes=_BT,
        mx_vmap=False,
    ),
    # MLX has no derivative in freqs
    Row(
        "rope_freqs",
        lambda x, f: F.rope(x, 4, traditional=False, base=None, scale=1.0, offset=2, freqs=f),
        (lambda s: arrays_s((s[0], 1, s[1], 4)), lambda s: arrays_s((2,), low=0.5, high=3.0)),
        shapes=_BT,
        diff=(0, 1),
        mx_grad=False,
    ),
    Row("sdpa", _sdpa(), _qkv(), shapes=_BT, diff=(0, 1, 2)),
    Row("sdpa_causal_gqa", _sdpa(mask="causal"), _qkv(nq=4, nkv=2), shapes=_BT, diff=(0, 1, 2)),
    Row(
        "sdpa_bool_mask",
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, scale=0.5, mask=m > -2.0),
        _qkv() + (lambda s: arrays_s((s[1], 3), away_from=(-2.0,)),),
        shapes=_BT,
        diff=(0, 1, 2),
    ),
    Row(
        "sdpa_additive_mask_sinks",
        lambda q, k, v, m, s: F.scaled_dot_product_attention(q, k, v, scale=0.5, mask=m, sinks=s),
        _qkv(nq=4, nkv=2) + (lambda s: arrays_s((1, 4, 1, 3)), _v(4)),
        shapes=_BT,
        diff=(0, 1, 2, 3, 4),
    ),
    Row(
        "cross_entropy",
        lambda x, t: F.cross_entropy(x, t),
        (_a(5), lambda s: arrays_s(s, dtype=mx.int32, low=0, high=4)),
        shapes=_BT,
    ),
    Row(
        "gated_delta_update",
        lambda q, k, v, g, b: F.gated_delta_update(q, k, v, g, b),
        (
            _a(1, 4),
            lambda s: arrays_s(s + (1, 4), low=-0.5, high=0.5),
            _a(2, 3),
            lambda s: arrays_s(s + (2,), low=0.5, high=1.0),
            lambda s: arrays_s(s + (2,), low=0.0, high=1.0),
        ),
        shapes=_BT,
        diff=(0, 1, 2, 3, 4),
        mx_vmap=False,
    ),
    Row(
        "gated_delta_update_state_mask",
        lambda q, g, s0: F.gated_delta_update(
            q,
            q * 0.5,
            q[..., :3],
            g,
            g[..., 0] * 0.5,
            s0,
            mx.array([[True, False, True]])[:, : q.shape[1]],
        ),
        (
            _a(1, 4),
            lambda s: arrays_s(s + (1, 4), low=0.5, high=1.0),
            lambda s: arrays_s((s[0], 1, 3, 4)),
        ),
        shapes=st.tuples(st.just(1), st.integers(1, 3)),
        diff=(0, 1, 2),
        mx_vmap=False,
    ),
]

"""The table of ``mlx.nn`` layers and ``mlx.nn.losses`` that tests/test_nn_layers.py runs:
one case per layer class (some with variants, ``"Class[variant]"``), built small.

A case says how to build the module and its inputs; the tests check, for each, that the
forward pass under autodiff (``ad.jit`` with captured state, ``ad.value_and_grad``) equals
MLX's, and that gradients with respect to the inputs and the trainable parameters equal
``mx.grad``'s and ``mlx.nn.value_and_grad``'s (or float64 finite differences where MLX lacks
the rule). The classes not covered are in ``EXCLUDED`` (name -> reason) or ``PENDING``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import mlx.nn.losses as losses


def layer_classes() -> list[str]:
    """Every layer class of the installed mlx.nn (computed, so a new release shows new ones)."""
    return sorted(
        n
        for n in dir(nn)
        if isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module)
    )


def loss_functions() -> list[str]:
    """Every loss of the installed mlx.nn.losses."""
    return sorted(
        n
        for n, f in vars(losses).items()
        if not n.startswith("_") and inspect.isfunction(f) and f.__module__ == losses.__name__
    )


@dataclass
class Case:
    """One module (or loss) under test.

    ``make`` builds the module (seeded by the test, so two calls give equal modules);
    ``inputs`` makes the positional arguments of its call; ``diff`` are the positions of the
    float inputs differentiated; ``call`` calls the module (default ``m(*inputs)``).
    ``mx_grad=False`` where MLX lacks the derivative (then float64 finite differences through
    our interpreter are the oracle), ``grad=False`` where nothing is differentiable.
    ``needs="linalg"`` (say) skips the case until ``autodiff.numpy.linalg`` exists, which
    another branch adds.
    """

    name: str
    make: Callable[[], object]
    inputs: Callable[[], tuple]
    diff: tuple[int, ...] = (0,)
    call: Callable | None = None
    mx_grad: bool = True
    grad: bool = True
    train: bool = True
    atol: float = 2e-5
    rtol: float = 2e-4
    needs: str | None = None  # an autodiff.numpy submodule another branch adds (else skipped)
    random: bool = False  # draws from the global PRNG (the tests seed before each call)
    note: str = ""
    kwargs: dict = field(default_factory=dict)

    @property
    def cls(self) -> str:
        return self.name.split("[")[0]


def N(*shape, scale=1.0):
    return lambda: mx.random.normal(shape) * scale


def _ins(*makers):
    return lambda: tuple(m() for m in makers)


def _ids(n, shape):
    return lambda: mx.random.randint(0, n, shape)


def _act(name, *args, **kwargs):
    """An activation layer on a (3, 8) input."""
    return Case(name, lambda: getattr(nn, name.split("[")[0])(*args, **kwargs), _ins(N(3, 8)))


def _mask(n):
    return lambda: nn.MultiHeadAttention.create_additive_causal_mask(n)


D, H, L = 8, 2, 5  # model width, heads, sequence length of the attention cases


class _LoRA(nn.Module):
    """A low-rank trainable update of a frozen (here quantized) linear layer: QLoRA."""

    def __init__(self, linear, rank=4):
        super().__init__()
        self.linear = linear
        self.a = mx.random.normal((64, rank)) * 0.1
        self.b = mx.random.normal((rank, 8)) * 0.1

    def __call__(self, x):
        return self.linear(x) + (x @ self.a) @ self.b


LAYERS: list[Case] = [
    # activations
    _act("CELU"),
    _act("ELU"),
    _act("GELU"),
    _act("GELU[precise]", approx="precise"),
    _act("GELU[tanh]", approx="tanh"),
    _act("GELU[fast]", approx="fast"),
    _act("GLU"),
    _act("HardShrink"),
    _act("HardTanh"),
    _act("Hardswish"),
    _act("LeakyReLU"),
    _act("LogSigmoid"),
    _act("LogSoftmax"),
    _act("Mish"),
    _act("PReLU"),
    _act("PReLU[channels]", 8),
    _act("ReLU"),
    _act("ReLU2"),
    _act("ReLU6"),
    _act("SELU"),
    _act("SiLU"),
    _act("Sigmoid"),
    _act("Softmax"),
    _act("Softmin"),
    _act("Softplus"),
    _act("Softshrink"),
    _act("Softsign"),
    _act("Step"),
    _act("Tanh"),
    _act("Identity"),
    # dropout: masks drawn from the global PRNG, MLX's draws from the same seed
    Case("Dropout", lambda: nn.Dropout(0.5), _ins(N(4, 6)), random=True),
    Case("Dropout[eval]", lambda: nn.Dropout(0.5), _ins(N(4, 6)), train=False),
    Case("Dropout2d", lambda: nn.Dropout2d(0.3), _ins(N(2, 3, 3, 4)), random=True),
    Case("Dropout3d", lambda: nn.Dropout3d(0.3), _ins(N(2, 2, 3, 3, 4)), random=True),
    # linear, containers
    Case("Linear", lambda: nn.Linear(4, 3), _ins(N(2, 4))),
    Case("Linear[no bias]", lambda: nn.Linear(4, 3, bias=False), _ins(N(2, 5, 4))),
    Case("Bilinear", lambda: nn.Bilinear(3, 4, 5), _ins(N(2, 3), N(2, 4)), diff=(0, 1)),
    Case(
        "Sequential",
        lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
        _ins(N(3, 4)),
    ),
    Case("Embedding", lambda: nn.Embedding(10, 4), _ins(_ids(10, (2, 5))), diff=()),
    Case(
        "Embedding[as_linear]",
        lambda: nn.Embedding(10, 4),
        _ins(N(2, 4)),
        call=lambda m, x: m.as_linear(x),
    ),
    # convolutions (channels last)
    Case("Conv1d", lambda: nn.Conv1d(3, 4, 3), _ins(N(2, 8, 3))),
    Case(
        "Conv1d[stride, padding, dilation, groups]",
        lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
        _ins(N(2, 9, 4)),
    ),
    Case("Conv2d", lambda: nn.Conv2d(3, 4, 3), _ins(N(2, 6, 6, 3))),
    Case(
        "Conv2d[stride, padding]",
        lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, bias=False),
        _ins(N(2, 7, 6, 3)),
    ),
    Case("Conv3d", lambda: nn.Conv3d(2, 3, 2), _ins(N(1, 4, 4, 4, 2))),
    Case("ConvTranspose1d", lambda: nn.ConvTranspose1d(3, 4, 3, stride=2), _ins(N(2, 5, 3))),
    Case(
        "ConvTranspose2d",
        lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1),
        _ins(N(2, 4, 4, 3)),
    ),
    Case("ConvTranspose3d", lambda: nn.ConvTranspose3d(2, 3, 2), _ins(N(1, 3, 3, 3, 2))),
    # pooling
    Case("MaxPool1d", lambda: nn.MaxPool1d(2), _ins(N(2, 8, 3))),
    Case("MaxPool2d", lambda: nn.MaxPool2d(2), _ins(N(2, 6, 6, 3))),
    Case(
        "MaxPool2d[padding]",
        lambda: nn.MaxPool2d(3, stride=2, padding=1),
        _ins(N(2, 7, 7, 3)),
    ),
    Case("MaxPool3d", lambda: nn.MaxPool3d(2), _ins(N(1, 4, 4, 4, 2))),
    Case("AvgPool1d", lambda: nn.AvgPool1d(3, stride=2), _ins(N(2, 9, 3))),
    Case("AvgPool2d", lambda: nn.AvgPool2d(2), _ins(N(2, 6, 6, 3))),
    Case(
        "AvgPool2d[padding]",
        lambda: nn.AvgPool2d(3, stride=2, padding=1),
        _ins(N(2, 7, 7, 3)),
    ),
    Case("AvgPool3d", lambda: nn.AvgPool3d(2), _ins(N(1, 4, 4, 4, 2))),
    Case("Upsample", lambda: nn.Upsample(2), _ins(N(2, 3, 4, 2))),
    Case("Upsample[linear]", lambda: nn.Upsample(2, mode="linear"), _ins(N(2, 3, 4, 2))),
    Case(
        "Upsample[linear, align_corners]",
        lambda: nn.Upsample((2, 1.5), mode="linear", align_corners=True),
        _ins(N(2, 3, 4, 2)),
    ),
    Case("Upsample[cubic]", lambda: nn.Upsample(2, mode="cubic"), _ins(N(2, 3, 4, 2))),
    Case("Upsample[1d]", lambda: nn.Upsample(3), _ins(N(2, 4, 2))),
    # normalisation
    Case("LayerNorm", lambda: nn.LayerNorm(4), _ins(N(3, 4))),
    Case("LayerNorm[no affine]", lambda: nn.LayerNorm(4, affine=False), _ins(N(3, 4))),
    Case("RMSNorm", lambda: nn.RMSNorm(4), _ins(N(3, 4))),
    Case("GroupNorm", lambda: nn.GroupNorm(2, 4), _ins(N(2, 3, 3, 4))),
    Case(
        "GroupNorm[pytorch_compatible]",
        lambda: nn.GroupNorm(2, 4, pytorch_compatible=True),
        _ins(N(2, 3, 3, 4)),
    ),
    Case("InstanceNorm", lambda: nn.InstanceNorm(4, affine=True), _ins(N(2, 3, 3, 4))),
    Case("BatchNorm", lambda: nn.BatchNorm(4), _ins(N(6, 4))),
    Case("BatchNorm[4d]", lambda: nn.BatchNorm(3), _ins(N(2, 3, 3, 3))),
    Case(
        "BatchNorm[after Linear]",  # running statistics that depend on the parameters
        lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4)),
        _ins(N(6, 3)),
    ),
    Case("BatchNorm[eval]", lambda: nn.BatchNorm(4), _ins(N(6, 4)), train=False),
    Case(
        "BatchNorm[no running stats]",
        lambda: nn.BatchNorm(4, track_running_stats=False, affine=False),
        _ins(N(6, 4)),
    ),
    # recurrent
    Case("RNN", lambda: nn.RNN(3, 4), _ins(N(2, 5, 3))),
    Case("GRU", lambda: nn.GRU(3, 4), _ins(N(2, 5, 3))),
    Case("LSTM", lambda: nn.LSTM(3, 4), _ins(N(2, 5, 3))),
    # positional encodings
    Case("RoPE", lambda: nn.RoPE(4), _ins(N(2, 2, L, 6))),
    Case("RoPE[traditional]", lambda: nn.RoPE(6, traditional=True), _ins(N(2, L, 6))),
    Case(
        "RoPE[offset]",
        lambda: nn.RoPE(6, base=100.0, scale=0.5),
        _ins(N(2, L, 6)),
        call=lambda m, x: m(x, offset=3),
    ),
    Case("SinusoidalPositionalEncoding", lambda: nn.SinusoidalPositionalEncoding(8), _ins(N(5))),
    Case(
        "SinusoidalPositionalEncoding[cos_first, full_turns]",
        lambda: nn.SinusoidalPositionalEncoding(8, cos_first=True, full_turns=True),
        _ins(N(5)),
    ),
    Case("ALiBi", lambda: nn.ALiBi(), _ins(N(2, H, L, L))),
    # attention and transformers
    Case(
        "MultiHeadAttention",
        lambda: nn.MultiHeadAttention(D, H),
        _ins(N(2, L, D), N(2, L + 1, D), N(2, L + 1, D)),
        diff=(0, 1, 2),
    ),
    Case(
        "MultiHeadAttention[mask, bias]",
        lambda: nn.MultiHeadAttention(D, H, bias=True),
        _ins(N(2, L, D), N(2, L, D), N(2, L, D), _mask(L)),
        diff=(0, 1, 2),
    ),
    Case(
        "TransformerEncoderLayer",
        lambda: nn.TransformerEncoderLayer(D, H, mlp_dims=16),
        _ins(N(2, L, D), _mask(L)),
    ),
    Case(
        "TransformerEncoderLayer[post-norm]",
        lambda: nn.TransformerEncoderLayer(D, H, mlp_dims=16, norm_first=False),
        _ins(N(2, L, D), _mask(L)),
    ),
    Case(
        "TransformerDecoderLayer",
        lambda: nn.TransformerDecoderLayer(D, H, mlp_dims=16),
        _ins(N(2, L, D), N(2, L + 1, D), _mask(L), lambda: None),
        diff=(0, 1),
    ),
    Case(
        "TransformerEncoder",
        lambda: nn.TransformerEncoder(2, D, H, mlp_dims=16),
        _ins(N(2, L, D), _mask(L)),
    ),
    Case(
        "TransformerEncoder[checkpoint]",
        lambda: nn.TransformerEncoder(2, D, H, mlp_dims=16, checkpoint=True),
        _ins(N(2, L, D), _mask(L)),
    ),
    Case(
        "TransformerDecoder",
        lambda: nn.TransformerDecoder(2, D, H, mlp_dims=16),
        _ins(N(2, L, D), N(2, L, D), _mask(L), lambda: None),
        diff=(0, 1),
    ),
    Case(
        "Transformer",
        lambda: nn.Transformer(D, H, 1, 1, mlp_dims=16),
        _ins(N(2, L, D), N(2, L, D), lambda: None, _mask(L), lambda: None),
        diff=(0, 1),
    ),
    # quantized layers: derivatives with respect to the activations (the weights are frozen)
    Case("QuantizedLinear", lambda: nn.QuantizedLinear(64, 8), _ins(N(2, 64))),
    Case(
        "QuantizedLinear[bits=8, group_size=32, no bias]",
        lambda: nn.QuantizedLinear(64, 8, bias=False, group_size=32, bits=8),
        _ins(N(2, 3, 64)),
    ),
    Case(
        "QuantizedLinear[mxfp4]",
        lambda: nn.QuantizedLinear(64, 8, mode="mxfp4"),
        _ins(N(2, 64)),
    ),
    Case(
        "QuantizedLinear[LoRA]",  # gradients of the adapters through the quantized matmul
        lambda: _LoRA(nn.QuantizedLinear(64, 8)),
        _ins(N(2, 64)),
    ),
    Case(
        "QuantizedEmbedding", lambda: nn.QuantizedEmbedding(10, 64), _ins(_ids(10, (2, 3))), diff=()
    ),
    Case(
        "QuantizedEmbedding[as_linear]",
        lambda: nn.QuantizedEmbedding(10, 64),
        _ins(N(2, 64)),
        call=lambda m, x: m.as_linear(x),
    ),
    Case(
        "QQLinear",
        lambda: nn.QQLinear(64, 8),
        _ins(N(1, 64)),
        grad=False,
        train=False,
        note="MLX's CPU kernel runs only quantized weights (eval mode) and one row of "
        "input; qqmm quantizes its input on the fly, so it is piecewise constant and MLX's "
        "vjp raises NYI",
    ),
    # distributed layers, in the single-process group (size 1)
    Case("AllToShardedLinear", lambda: nn.AllToShardedLinear(4, 3), _ins(N(2, 4))),
    Case(
        "ShardedToAllLinear",
        lambda: nn.ShardedToAllLinear(4, 3),
        _ins(N(2, 4)),
        needs="distributed",
        note="calls mx.distributed.all_sum on its output",
    ),
    Case(
        "QuantizedAllToShardedLinear",
        lambda: nn.QuantizedAllToShardedLinear(64, 8),
        _ins(N(2, 64)),
    ),
    Case(
        "QuantizedShardedToAllLinear",
        lambda: nn.QuantizedShardedToAllLinear(64, 8),
        _ins(N(2, 64)),
        needs="distributed",
        note="calls mx.distributed.all_sum on its output",
    ),
]

# Layer classes with no case, and why.
EXCLUDED: dict[str, str] = {
    "Module": "the abstract base class: exercised through every other case (update, "
    "trainable_parameters, freeze, state)",
    "FullyShardedModule": "gathers its shards through an mx.custom_function (MLX's own, "
    "created when the module is built, whose rule functions autodiff cannot tell apart) "
    "around mx.distributed.all_gather; with one process, nn.fully_shard returns the module "
    "unchanged, so single-process code never builds one",
}

# Layers waiting for another branch, and why (none now: the dropout layers, which waited for
# mx.random's routing, have their cases).
PENDING: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# losses: each case's module is the loss function itself


def _loss(name, fn, *makers, diff=(0,), needs=None, **kw):
    return Case(name, lambda: fn, _ins(*makers), diff=diff, needs=needs, kwargs=kw)


def _probs(*shape):
    return lambda: mx.softmax(mx.random.normal(shape), axis=-1)


def _signs(*shape):
    return lambda: mx.where(mx.random.normal(shape) > 0, 1.0, -1.0)


def _unit(*shape):
    return lambda: mx.random.uniform(0.05, 0.95, shape)


LOSSES: list[Case] = [
    _loss("binary_cross_entropy", losses.binary_cross_entropy, N(6), _unit(6), diff=(0, 1)),
    _loss(
        "binary_cross_entropy[probs, weights, sum]",
        losses.binary_cross_entropy,
        _unit(6),
        _unit(6),
        _unit(6),
        diff=(0, 1, 2),
        with_logits=False,
        reduction="sum",
    ),
    _loss(
        "cosine_similarity_loss",
        losses.cosine_similarity_loss,
        N(3, 4),
        N(3, 4),
        diff=(0, 1),
        needs="linalg",  # mx.linalg.norm
    ),
    _loss("cross_entropy", losses.cross_entropy, N(3, 5), _ids(5, (3,))),
    _loss(
        "cross_entropy[probs, smoothing, weights, mean]",
        losses.cross_entropy,
        N(3, 5),
        _probs(3, 5),
        _unit(3),
        diff=(0, 1, 2),
        label_smoothing=0.1,
        reduction="mean",
    ),
    _loss(
        "cross_entropy[ids, smoothing, axis 0]",
        losses.cross_entropy,
        N(5, 3),
        _ids(5, (3,)),
        axis=0,
        label_smoothing=0.2,
    ),
    _loss(
        "gaussian_nll_loss",
        losses.gaussian_nll_loss,
        N(4, 3),
        N(4, 3),
        _unit(4, 3),
        diff=(0, 1, 2),
    ),
    _loss(
        "gaussian_nll_loss[full]",
        losses.gaussian_nll_loss,
        N(4, 3),
        N(4, 3),
        _unit(4, 3),
        diff=(0, 1, 2),
        full=True,
        reduction="sum",
    ),
    _loss("hinge_loss", losses.hinge_loss, N(6), _signs(6)),
    _loss("huber_loss", losses.huber_loss, N(8, scale=2.0), N(8), diff=(0, 1), delta=0.7),
    _loss("kl_div_loss", losses.kl_div_loss, N(3, 5), N(3, 5), diff=(0, 1)),
    _loss("l1_loss", losses.l1_loss, N(6), N(6), diff=(0, 1)),
    _loss("log_cosh_loss", losses.log_cosh_loss, N(6), N(6), diff=(0, 1)),
    _loss(
        "margin_ranking_loss",
        losses.margin_ranking_loss,
        N(6),
        N(6),
        _signs(6),
        diff=(0, 1),
        margin=0.1,
    ),
    _loss("mse_loss", losses.mse_loss, N(3, 4), N(3, 4), diff=(0, 1)),
    _loss("mse_loss[none]", losses.mse_loss, N(3, 4), N(3, 4), diff=(0, 1), reduction="none"),
    _loss("nll_loss", losses.nll_loss, N(3, 5), _ids(5, (3,)), reduction="mean"),
    _loss("smooth_l1_loss", losses.smooth_l1_loss, N(8, scale=2.0), N(8), diff=(0, 1), beta=0.5),
    _loss(
        "triplet_loss",
        losses.triplet_loss,
        N(3, 4),
        N(3, 4),
        N(3, 4),
        diff=(0, 1, 2),
    ),
    _loss(
        "triplet_loss[p=1, mean]",
        losses.triplet_loss,
        N(3, 4),
        N(3, 4),
        N(3, 4),
        diff=(0, 1, 2),
        p=1,
        reduction="mean",
    ),
]

EXCLUDED_LOSSES: dict[str, str] = {}

"""Train a small Llama-style language model on a text that ships with the repo, with a
compiled training step, then fine-tune it on a second text with LoRA, its base frozen.

This is MLX code: the model is built from ``mlx.nn`` layers (``nn.Embedding``, ``nn.RMSNorm``,
``nn.RoPE``, attention through ``mx.fast.scaled_dot_product_attention``, a SwiGLU MLP,
``nn.Dropout``), trained with ``mlx.optimizers.AdamW`` and a step compiled as mlx-examples do
(``partial(mx.compile, inputs=state, outputs=state)``). The only change that makes autodiff
differentiate and compile it is the two imports below; with ``import mlx.core as mx`` and
``import mlx.nn as nn`` it is MLX's own script again.

Run:  python examples/train_transformer.py [--fast]
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from pathlib import Path

import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

import autodiff.mlx as mx
import autodiff.mlx.nn as nn

DATA = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------------------------------------
# the model


class Attention(nn.Module):
    def __init__(self, dims: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.scale = (dims // n_heads) ** -0.5
        self.q_proj = nn.Linear(dims, dims, bias=False)
        self.k_proj = nn.Linear(dims, dims, bias=False)
        self.v_proj = nn.Linear(dims, dims, bias=False)
        self.o_proj = nn.Linear(dims, dims, bias=False)
        self.rope = nn.RoPE(dims // n_heads, traditional=True)

    def __call__(self, x, mask=None):
        B, L, D = x.shape

        def heads(t):
            return t.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        q, k = self.rope(q), self.rope(k)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, D))


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dims: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dims, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dims, bias=False)
        self.w3 = nn.Linear(dims, hidden, bias=False)

    def __call__(self, x):
        return self.w2(nn.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dims: int, n_heads: int, hidden: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.RMSNorm(dims)
        self.attention = Attention(dims, n_heads)
        self.ffn_norm = nn.RMSNorm(dims)
        self.feed_forward = FeedForward(dims, hidden)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x, mask=None):
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.dropout(self.feed_forward(self.ffn_norm(x)))


class Llama(nn.Module):
    """A decoder-only transformer in the Llama layout (pre-norm RMSNorm, RoPE, SwiGLU)."""

    def __init__(
        self,
        vocab: int,
        dims: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dims)
        self.layers = [Block(dims, n_heads, hidden or 2 * dims, dropout) for _ in range(n_layers)]
        self.norm = nn.RMSNorm(dims)
        self.output = nn.Linear(dims, vocab, bias=False)

    def __call__(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, mask="causal")
        return self.output(self.norm(h))


def loss_fn(model, x, y):
    """Mean next-token cross-entropy."""
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


# ---------------------------------------------------------------------------------------------
# LoRA


class LoRALinear(nn.Module):
    """``linear(x) + scale * (x @ A) @ B``: a low-rank update of a (frozen) linear layer. ``B``
    starts at zero, so the wrapped model computes what the base model does."""

    def __init__(self, linear: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        out_dims, in_dims = linear.weight.shape
        self.linear = linear
        self.scale = alpha / rank
        bound = 1.0 / math.sqrt(in_dims)
        self.lora_a = mx.random.uniform(-bound, bound, (in_dims, rank))
        self.lora_b = mx.zeros((rank, out_dims))

    def __call__(self, x):
        return self.linear(x) + self.scale * ((x @ self.lora_a) @ self.lora_b)


def add_lora(model: Llama, rank: int = 8) -> None:
    """Freeze the whole model, then wrap the query and value projections and the MLP's down
    projection of every block with LoRA adapters: their ``lora_a``/``lora_b`` are the only
    trainable parameters."""
    model.freeze()
    for layer in model.layers:
        layer.attention.q_proj = LoRALinear(layer.attention.q_proj, rank)
        layer.attention.v_proj = LoRALinear(layer.attention.v_proj, rank)
        layer.feed_forward.w2 = LoRALinear(layer.feed_forward.w2, rank)


# ---------------------------------------------------------------------------------------------
# data and training


class Corpus:
    """Character-level tokens of the texts in examples/data."""

    def __init__(self, *names: str):
        self.texts = {n: (DATA / f"{n}.txt").read_text() for n in names}
        self.chars = sorted(set("".join(self.texts.values())))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, name: str) -> np.ndarray:
        return np.array([self.index[c] for c in self.texts[name]], dtype=np.int32)

    def decode(self, tokens) -> str:
        return "".join(self.chars[int(t)] for t in tokens)


def batches(tokens: np.ndarray, batch: int, seq: int, seed: int):
    """Endless random windows: ``(x, y)`` with ``y`` the next characters."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(seq + 1)
    while True:
        starts = rng.integers(0, len(tokens) - seq - 1, batch)
        w = tokens[starts[:, None] + offsets]
        yield mx.array(w[:, :-1]), mx.array(w[:, 1:])


def make_step(model, optimizer):
    """The mlx-examples training step: value and gradient of the loss with respect to the
    trainable parameters, an optimizer update, compiled with the model's, the optimizer's and
    the PRNG's state captured (dropout draws a new mask at every step)."""
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    return step, state


def train(model, data, steps: int, lr: float, what: str, every: int) -> list[float]:
    optimizer = optim.AdamW(learning_rate=lr, weight_decay=0.01)
    step, state = make_step(model, optimizer)
    losses, t0 = [], time.perf_counter()
    for i in range(1, steps + 1):
        x, y = next(data)
        loss = step(x, y)
        mx.eval(state)
        losses.append(loss.item())
        if i % every == 0 or i == 1 or i == steps:
            recent = np.mean(losses[-every:])
            print(
                f"  {what} step {i:4d}/{steps}: loss {recent:.3f}  ({time.perf_counter() - t0:.1f}s)"
            )
    return losses


def evaluate(model, tokens: np.ndarray, seq: int) -> float:
    """Mean loss over consecutive windows of ``tokens`` (eval mode, plain MLX)."""
    model.eval()
    n = (len(tokens) - 1) // seq
    x = mx.array(tokens[: n * seq].reshape(n, seq))
    y = mx.array(tokens[1 : n * seq + 1].reshape(n, seq))
    loss = loss_fn(model, x, y).item()
    model.train()
    return loss


def generate(model, corpus: Corpus, prompt: str, n: int, window: int) -> str:
    """Greedy decoding, eagerly in MLX, seeing the last ``window`` characters (the length the
    model was trained on)."""
    model.eval()
    tokens = [corpus.index[c] for c in prompt]
    for _ in range(n):
        logits = model(mx.array(tokens[-window:])[None])
        tokens.append(int(mx.argmax(logits[0, -1])))
    model.train()
    return corpus.decode(tokens)


def main(fast: bool = False, seed: int = 0) -> dict:
    corpus = Corpus("lighthouse", "recipes")
    base_text, new_text = corpus.encode("lighthouse"), corpus.encode("recipes")
    if fast:
        dims, n_layers, seq, batch, steps, lora_steps = 48, 2, 32, 16, 100, 60
    else:
        # (a few minutes here: MLX's Linux CPU build multiplies with a reference BLAS)
        dims, n_layers, seq, batch, steps, lora_steps = 64, 3, 48, 16, 600, 200
    mx.random.seed(seed)
    model = Llama(len(corpus.chars), dims=dims, n_layers=n_layers, n_heads=4, dropout=0.1)
    mx.eval(model.parameters())
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    print(f"Llama-style model: {n_params} parameters, vocabulary of {len(corpus.chars)} chars")

    # 1. Pretraining on the lighthouse story, with the compiled step.
    print(f"pretraining on lighthouse.txt ({len(base_text)} characters):")
    losses = train(
        model, batches(base_text, batch, seq, seed), steps, 3e-3, "pretrain", max(1, steps // 5)
    )
    print("  sample:", repr(generate(model, corpus, "The keeper ", 60 if fast else 200, seq)))
    new_before = evaluate(model, new_text, seq)

    # 2. LoRA fine-tuning on the recipes, base frozen.
    base = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    add_lora(model, rank=8)
    n_trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    print(
        f"LoRA fine-tuning on recipes.txt ({len(new_text)} characters): {n_trainable} trainable "
        f"parameters of {n_params + n_trainable}, the base frozen"
    )
    lora_losses = train(
        model,
        batches(new_text, batch, seq, seed + 1),
        lora_steps,
        1e-2,
        "LoRA",
        max(1, lora_steps // 4),
    )
    new_after = evaluate(model, new_text, seq)
    after = {k.replace(".linear.", "."): np.array(v) for k, v in tree_flatten(model.parameters())}
    base_unchanged = all(np.array_equal(v, after[k]) for k, v in base.items())
    print(f"  recipes.txt loss: {new_before:.3f} before LoRA, {new_after:.3f} after")
    print(f"  base weights unchanged by LoRA fine-tuning: {base_unchanged}")
    print("  sample:", repr(generate(model, corpus, "Take ", 60 if fast else 200, seq)))
    return {
        "losses": losses,
        "lora_losses": lora_losses,
        "new_text_loss_before": new_before,
        "new_text_loss_after": new_after,
        "base_unchanged": base_unchanged,
        "trainable": n_trainable,
        "parameters": n_params,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a small model, a few steps")
    main(parser.parse_args().fast)

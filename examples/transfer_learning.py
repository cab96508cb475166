"""Transfer learning with ``mlx.nn``: pretrain a network to recognise digits (task A), freeze
its body with ``model.body.freeze()``, and train only a new head for a second task on other
images, odd versus even (task B), from a handful of labelled examples.

autodiff differentiates the model as a pytree of its *trainable* parameters, so after
``freeze()`` the gradient holds the head alone, ``optimizer.update(model, grads)`` moves only
the head, and the frozen body provably does not change (the example checks it).

Run:  pip install -e '.[examples]' && python examples/transfer_learning.py
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten
from sklearn.datasets import load_digits

import autodiff as ad


class Net(nn.Module):
    """A feature extractor (the body) and a linear classifier on top (the head)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, n_classes)

    def __call__(self, x):
        return self.head(self.body(x))


def loss_fn(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model, x, y) -> float:
    return float(mx.mean(mx.argmax(model(x), axis=-1) == y))


def train(model, data, steps, lr, what):
    """Adam on the model's trainable parameters (whatever is frozen stays put)."""
    opt = optim.Adam(learning_rate=lr)
    step = ad.jit(ad.value_and_grad(loss_fn))
    for i in range(1, steps + 1):
        value, grads = step(model, *data)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        if i % (steps // 3) == 0 or i == steps:
            print(f"  {what}: step {i}/{steps}, loss {float(value):.4f}")
    return model


def split_tasks(seed, n_labelled=20):
    """Task A: 10-class labels on 60% of the images. Task B: odd/even on the other images,
    ``n_labelled`` of them labelled for training, the rest for testing."""
    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    a, rest = order[: int(0.6 * len(x))], order[int(0.6 * len(x)) :]
    few, test = rest[:n_labelled], rest[n_labelled:]
    parity = y % 2
    return (
        (mx.array(x[a]), mx.array(y[a])),
        (mx.array(x[few]), mx.array(parity[few])),
        (mx.array(x[test]), mx.array(parity[test])),
    )


def main(fast: bool = False, seed: int = 0) -> dict:
    (xa, ya), (xb, yb), (xb_test, yb_test) = split_tasks(seed)
    mx.random.seed(seed)
    pre_steps, ft_steps = (150, 150) if fast else (600, 400)

    # 1. Pretrain body and head on task A (10-class digits): everything is trainable.
    model = train(Net(10), (xa, ya), pre_steps, 3e-3, "pretraining on task A")
    print(
        f"task A, pretraining on {xa.shape[0]} digits: training accuracy {accuracy(model, xa, ya):.3f}"
    )

    # 2. A new head for task B (odd/even, 20 labelled examples), the pretrained body frozen:
    #    the gradient now holds the head's parameters only.
    model.head = nn.Linear(64, 2)
    model.body.freeze()
    body_before = {k: np.array(v) for k, v in tree_flatten(model.body.parameters())}
    train(model, (xb, yb), ft_steps, 1e-2, "training a new head on task B, body frozen")
    unchanged = all(
        np.array_equal(body_before[k], np.array(v))
        for k, v in tree_flatten(model.body.parameters())
    )
    transfer_acc = accuracy(model, xb_test, yb_test)

    # 3. Baselines on the same 20 examples: a head on a random (untrained) frozen body, and the
    #    whole network trained from scratch.
    random_body = Net(2)
    random_body.body.freeze()
    train(random_body, (xb, yb), ft_steps, 1e-2, "baseline: head on a random frozen body")
    scratch = train(Net(2), (xb, yb), ft_steps, 3e-3, "baseline: whole network from scratch")
    rand_acc = accuracy(random_body, xb_test, yb_test)
    scratch_acc = accuracy(scratch, xb_test, yb_test)

    print(f"frozen body unchanged by training the head: {unchanged}")
    print(
        f"task B, odd vs even: test accuracy on {xb_test.shape[0]} images, from {xb.shape[0]} labelled examples:"
    )
    print(f"  pretrained frozen body + new head: {transfer_acc:.3f}")
    print(f"  random frozen body + new head:     {rand_acc:.3f}")
    print(f"  whole network from scratch:        {scratch_acc:.3f}")
    better = transfer_acc > max(rand_acc, scratch_acc)
    print(
        "the pretrained body "
        + ("beats both baselines" if better else "does NOT beat both baselines here")
    )
    return {
        "frozen_unchanged": unchanged,
        "transfer": transfer_acc,
        "random_features": rand_acc,
        "scratch": scratch_acc,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    main(parser.parse_args().fast)

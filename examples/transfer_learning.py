"""Transfer learning: pretrain a network to recognise digits (task A), freeze its feature layers,
and fine-tune only a new head for a second task on other images, odd versus even (task B), from
a handful of labelled examples. Gradients are taken with respect to the head alone
(``argnums``), so the frozen layers provably do not change.

Run:  pip install -e '.[examples]' && python examples/transfer_learning.py
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from sklearn.datasets import load_digits

import autodiff as ad
import autodiff.numpy as anp


def dense(rng, m, n):
    return {
        "w": mx.array(rng.standard_normal((m, n)).astype(np.float32) * np.sqrt(2.0 / m)),
        "b": mx.zeros(n),
    }


def features(feat, x):
    for layer in feat["layers"]:
        x = anp.maximum(x @ layer["w"] + layer["b"], 0.0)
    return x


def loss_fn(head, feat, x, y):
    """Cross-entropy of the head on top of the feature extractor; differentiate either."""
    logits = features(feat, x) @ head["w"] + head["b"]
    logp = logits - anp.logsumexp(logits, axis=-1, keepdims=True)
    return -anp.mean(anp.take_along_axis(logp, y[:, None], axis=-1))


def accuracy(head, feat, x, y) -> float:
    return float(mx.mean(mx.argmax(features(feat, x) @ head["w"] + head["b"], axis=-1) == y))


def network_loss(params, x, y):
    """The whole network's loss: features and head both differentiated."""
    return loss_fn(params["head"], params["feat"], x, y)


def new_features(rng):
    return {"layers": [dense(rng, 64, 128), dense(rng, 128, 64)]}


def train(params, loss, data, steps, lr, what):
    """Adam on ``loss``'s first argument only; the arguments in ``data`` are held fixed."""
    opt = optim.Adam(learning_rate=lr)
    step = ad.jit(ad.value_and_grad(loss, argnums=0))
    for i in range(1, steps + 1):
        value, grads = step(params, *data)
        params = opt.apply_gradients(grads, params)
        mx.eval(params, opt.state)
        if i % (steps // 3) == 0 or i == steps:
            print(f"  {what}: step {i}/{steps}, loss {float(value):.4f}")
    return params


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
    rng = np.random.default_rng(seed)
    pre_steps, ft_steps = (150, 150) if fast else (600, 400)

    # 1. Pretrain features and head on task A (10-class digits): both are differentiated.
    both = {"feat": new_features(rng), "head": dense(rng, 64, 10)}
    both = train(both, network_loss, (xa, ya), pre_steps, 3e-3, "pretraining on task A")
    feat = both["feat"]
    acc_a = accuracy(both["head"], feat, xa, ya)
    print(f"task A, pretraining on {xa.shape[0]} digits: training accuracy {acc_a:.3f}")

    # 2. Fine-tune a fresh head on task B (odd/even, 20 labelled examples): the head is the
    #    differentiated argument (argnums=0); the features are passed along, frozen.
    frozen_before = [np.array(v) for v in ad.tree_leaves(feat)]
    head_b = train(
        dense(rng, 64, 2),
        loss_fn,
        (feat, xb, yb),
        ft_steps,
        1e-2,
        "fine-tuning the head on task B, features frozen",
    )
    unchanged = all(
        np.array_equal(a, np.array(b)) for a, b in zip(frozen_before, ad.tree_leaves(feat))
    )
    transfer_acc = accuracy(head_b, feat, xb_test, yb_test)

    # 3. Baselines on the same 20 examples: a head on random (untrained) frozen features, and
    #    the whole network trained from scratch.
    rand_feat = new_features(rng)
    head_rand = train(
        dense(rng, 64, 2),
        loss_fn,
        (rand_feat, xb, yb),
        ft_steps,
        1e-2,
        "baseline: head on random frozen features",
    )
    scratch = {"head": dense(rng, 64, 2), "feat": new_features(rng)}
    scratch = train(
        scratch, network_loss, (xb, yb), ft_steps, 3e-3, "baseline: whole network from scratch"
    )
    rand_acc = accuracy(head_rand, rand_feat, xb_test, yb_test)
    scratch_acc = accuracy(scratch["head"], scratch["feat"], xb_test, yb_test)

    print(f"frozen feature layers unchanged by fine-tuning: {unchanged}")
    print(
        f"task B, odd vs even: test accuracy on {xb_test.shape[0]} images, from {xb.shape[0]} labelled examples:"
    )
    print(f"  pretrained frozen features + new head: {transfer_acc:.3f}")
    print(f"  random frozen features + new head:     {rand_acc:.3f}")
    print(f"  whole network from scratch:            {scratch_acc:.3f}")
    better = transfer_acc > max(rand_acc, scratch_acc)
    print(
        "fine-tuning the pretrained features "
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

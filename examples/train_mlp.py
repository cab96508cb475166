"""Train an ``mlx.nn`` MLP classifier on scikit-learn's handwritten digits with
``ad.value_and_grad`` and ``mlx.optimizers.Adam``; report test accuracy and save the loss curve.

The model is an ordinary ``mlx.nn.Module``. autodiff treats it as a pytree of its trainable
parameters: ``ad.value_and_grad(loss_fn)(model, x, y)`` returns the gradient in the layout of
``model.trainable_parameters()``, which ``optimizer.update(model, grads)`` takes, and the step
is compiled with ``ad.jit``.

Run:  pip install -e '.[examples]' && python examples/train_mlp.py
"""

from __future__ import annotations

import argparse
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from sklearn.datasets import load_digits

import autodiff as ad


def load_data(seed: int = 0):
    """Digits (8x8 images, 10 classes), scaled to [0, 1], split 80/20."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    tr, te = order[:split], order[split:]
    return mx.array(x[tr]), mx.array(y[tr]), mx.array(x[te]), mx.array(y[te])


def make_model(sizes=(64, 128, 128, 10)) -> nn.Module:
    """Dense layers with ReLU between them."""
    layers = []
    for m, n in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(m, n), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


def loss_fn(model, x, y):
    """Mean cross-entropy; labels are integer class ids."""
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model, x, y) -> float:
    return float(mx.mean(mx.argmax(model(x), axis=-1) == y))


def main(fast: bool = False, plot_path: str | None = "mlp_loss.png", seed: int = 0) -> dict:
    x_tr, y_tr, x_te, y_te = load_data(seed)
    mx.random.seed(seed)
    model = make_model()
    opt = optim.Adam(learning_rate=3e-3)
    step = ad.jit(ad.value_and_grad(loss_fn))
    epochs, batch = (4 if fast else 30), 64
    rng = np.random.default_rng(seed)
    curve = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = mx.array(rng.permutation(x_tr.shape[0]))
        losses = []
        for i in range(0, x_tr.shape[0] - batch + 1, batch):
            idx = order[i : i + batch]
            loss, grads = step(model, x_tr[idx], y_tr[idx])
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            losses.append(float(loss))
        curve.extend(losses)
        print(
            f"epoch {epoch:2d}/{epochs}  loss {np.mean(losses):.4f}  test accuracy {accuracy(model, x_te, y_te):.3f}  ({time.perf_counter() - t0:.1f}s)"
        )
    acc = accuracy(model, x_te, y_te)
    print(f"test accuracy: {acc:.3f} on {x_te.shape[0]} held-out digits")
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.figure(figsize=(6, 3.5))
        plt.plot(curve, lw=0.8)
        plt.yscale("log")
        plt.xlabel("step")
        plt.ylabel("training loss")
        plt.title(f"MLP on digits: test accuracy {acc:.3f}")
        plt.tight_layout()
        plt.savefig(plot_path, dpi=120)
        print(f"loss curve saved to {plot_path}")
    return {"test_accuracy": acc, "final_loss": float(np.mean(curve[-10:]))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few epochs only")
    parser.add_argument("--plot", default="mlp_loss.png")
    args = parser.parse_args()
    main(args.fast, args.plot)

"""Data-parallel training of an ``mlx.nn`` MLP on scikit-learn's digits, across processes.

Every process holds the same model and takes its share of each global batch; one compiled
step (``ad.distributed.train_step``) computes the loss and gradient on the share, averages
both over the processes with as few all-reduces as fit (one here: the bucket holds every
gradient and the loss), and applies ``mlx.optimizers.Adam``. With the global batch split
evenly, the run follows the single-process run on the whole batch; process 0 checks that
against plain MLX (``mlx.nn.value_and_grad`` on the full batch) and reports the difference.

Run (from the repository root; the ring backend over loopback needs nothing else):

    python examples/data_parallel.py                                   # 1 process
    mlx.launch -n 2 --backend ring python examples/data_parallel.py    # 2 processes
    mlx.launch -n 4 --backend ring python examples/data_parallel.py --fast --out run.json

Several machines: ``mlx.launch --hostfile hosts.json --backend ring python ...``; CUDA
machines: ``--backend nccl`` (see the README's "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from sklearn.datasets import load_digits

import autodiff as ad


def load_data(seed: int = 0):
    """Digits (8x8 images, 10 classes), scaled to [0, 1], split 80/20 (NumPy arrays)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def make_model(seed: int = 0) -> nn.Module:
    """The same initial weights on every process (same seed)."""
    mx.random.seed(seed)
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def loss_fn(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def batches(n_train: int, batch: int, steps: int, seed: int = 0):
    """Indices of each global batch: the same sequence on every process."""
    rng = np.random.default_rng(seed)
    order = np.array([], dtype=np.int64)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(n_train)])
        idx, order = order[:batch], order[batch:]
        yield idx


def reference_losses(x, y, batch: int, steps: int, lr: float) -> list[float]:
    """Plain MLX on one process, on the whole of each global batch."""
    model, opt = make_model(), optim.Adam(learning_rate=lr)
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    losses = []
    for idx in batches(len(x), batch, steps):
        loss, grads = loss_and_grad(model, mx.array(x[idx]), mx.array(y[idx]))
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        losses.append(loss.item())
    return losses


def main(
    fast: bool = False,
    out: str | None = None,
    batch: int = 128,
    lr: float = 3e-3,
    bucket_bytes: int = ad.distributed.DEFAULT_BUCKET_BYTES,
    check: bool = True,
) -> dict:
    group = mx.distributed.init()
    rank, n = group.rank(), group.size()
    if batch % n:
        raise SystemExit(f"the global batch ({batch}) must split evenly among {n} processes")
    per = batch // n
    steps = 60 if fast else 600
    x, y, x_te, y_te = load_data()

    model = make_model()
    optimizer = optim.Adam(learning_rate=lr)
    step = ad.distributed.train_step(
        model, optimizer, loss_fn, group=group, bucket_bytes=bucket_bytes
    )

    losses, times = [], []
    for idx in batches(len(x), batch, steps):
        local = idx[rank * per : (rank + 1) * per]  # this process's share of the global batch
        t0 = time.perf_counter()
        loss = step(mx.array(x[local]), mx.array(y[local]))
        losses.append(loss.item())  # the mean over the processes: the global batch's loss
        times.append(time.perf_counter() - t0)
    accuracy = float(mx.mean(mx.argmax(model(mx.array(x_te)), axis=-1) == mx.array(y_te)))
    jaxpr = step.trace(mx.array(x[:per]), mx.array(y[:per]))
    result = {
        "processes": n,
        "steps": steps,
        "losses": losses,
        "test_accuracy": accuracy,
        "all_reduces_per_step": sum(e.prim.name == "psum" for e in jaxpr.eqns),
        "median_step_ms": 1e3 * float(np.median(times[5:])),
    }
    if rank == 0:
        if check:
            ref = reference_losses(x, y, batch, steps, lr)
            result["max_loss_diff_vs_single_process"] = float(
                np.max(np.abs(np.array(losses) - np.array(ref)))
            )
        print(
            f"{n} process(es), global batch {batch} ({per} each): loss {losses[0]:.4f} -> "
            f"{losses[-1]:.4f}, test accuracy {accuracy:.3f}, "
            f"{result['all_reduces_per_step']} all-reduce(s) per step, "
            f"{result['median_step_ms']:.2f} ms per step"
        )
        if check:
            print(
                "max |loss - single-process full-batch loss| over the run: "
                f"{result['max_loss_diff_vs_single_process']:.2e}"
            )
        if out:
            with open(out, "w") as f:
                json.dump(result, f)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="60 steps instead of 600")
    parser.add_argument("--out", help="write the run (losses, timings) to this JSON file")
    parser.add_argument("--batch", type=int, default=128, help="global batch size")
    parser.add_argument("--bucket-bytes", type=int, default=ad.distributed.DEFAULT_BUCKET_BYTES)
    parser.add_argument("--no-check", action="store_true", help="skip the single-process check")
    args = parser.parse_args()
    main(args.fast, args.out, args.batch, bucket_bytes=args.bucket_bytes, check=not args.no_check)

"""Collectives across processes: 2 (and 4) local processes started with ``mlx.launch`` and the
ring backend over loopback run tests/distributed_worker.py; what each process computed under
``ad.spmd`` must equal the single-process reference, the same function under
``ad.vmap(axis_name=...)`` (and NumPy, JAX-checked in test_collectives.py), its gradients,
MLX's own ``nn.average_gradients``, and single-process full-batch training."""

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from distributed_cases import AXIS, LOSSES, VALUES, full_batch
from launching import launch

import autodiff as ad

TESTS = Path(__file__).resolve().parent


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(
        np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol
    )


def leaves(results, key):
    out, i = [], 0
    while f"{key}/{i}" in results:
        out.append(results[f"{key}/{i}"])
        i += 1
    assert out, f"no results for {key}"
    return out


def full_batch_training():
    """Single-process Adam steps on the whole batch: the reference for every process."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 5, 16).astype(np.int32)
    mx.random.seed(7)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 5))
    opt = optim.Adam(0.05)
    lg = nn.value_and_grad(
        model, lambda m, x, y: nn.losses.cross_entropy(m(x), y, reduction="mean")
    )
    losses = []
    for _ in range(4):
        loss, g = lg(model, mx.array(X), mx.array(Y))
        opt.update(model, g)
        losses.append(loss.item())
    return losses, ad.tree_leaves(model.parameters())


def check_run(n: int, tmp_path: Path):
    launch(n, TESTS / "distributed_worker.py", str(tmp_path))
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(n)]
    batch = mx.array(full_batch(n))
    # collectives equal the same function vmapped over the name, row r for process r
    for name, f in VALUES.items():
        ref = [np.asarray(o) for o in ad.tree_leaves(ad.vmap(f, axis_name=AXIS)(batch))]
        for r, res in enumerate(ranks):
            for how in ("eager", "jit", "interpret"):
                for got, want in zip(leaves(res, f"values/{name}/{how}"), ref, strict=True):
                    close(got, want[r])
    # gradients through the collectives (their finite-difference checks ran on the processes)
    for name, loss in LOSSES.items():
        ref = np.asarray(ad.vmap(ad.grad(loss), axis_name=AXIS)(batch))
        for r, res in enumerate(ranks):
            for how in ("eager", "jit"):
                close(leaves(res, f"grads/{name}/{how}")[0], ref[r], 1e-4)
            lhs, rhs = leaves(res, f"vjp_identity/{name}")[0]
            close(lhs, rhs, 1e-6)
    # MLX code that communicates, traced: the same numbers as MLX eagerly
    for res in ranks:
        for how in (
            "mlx/average_gradients/jit",
            "mlx/average_gradients/jit_unbucketed",
            "ours/average_gradients/eager",
            "ours/average_gradients/jit",
        ):
            for got, want in zip(
                leaves(res, how),
                leaves(res, "mlx/average_gradients/eager"),
                strict=True,
            ):
                close(got, want)
        # ours transposes all_sum to all_sum (JAX's rule), MLX passes the cotangent through
        close(leaves(res, "mlx/all_sum_grad")[0], n * leaves(res, "mlx/all_sum_grad_mlx")[0])
    # data-parallel training equals single-process training on the whole batch
    ref_losses, ref_params = full_batch_training()
    for res in ranks:
        for bucket_bytes, all_reduces in ((ad.distributed.DEFAULT_BUCKET_BYTES, 1), (0, 5)):
            close(leaves(res, f"train/{bucket_bytes}/losses"), ref_losses, 1e-5)
            for got, want in zip(
                leaves(res, f"train/{bucket_bytes}/params"), ref_params, strict=True
            ):
                close(got, want, 1e-5)
            # bucketed: loss and the 4 gradient arrays in one all-reduce; unbucketed: one each
            assert leaves(res, f"train/{bucket_bytes}/all_reduces")[0] == all_reduces
        close(leaves(res, "vmap/mixed")[0], leaves(res, "values/mixed/eager")[0])
    # and the processes agree on every replicated result
    for key in ranks[0]:
        if key.startswith(("train/", "values/reductions", "values/gathers")):
            for res in ranks[1:]:
                close(res[key], ranks[0][key])


def test_two_processes(tmp_path):
    check_run(2, tmp_path)


@pytest.mark.slow
def test_four_processes(tmp_path):
    check_run(4, tmp_path)

"""One process of tests/test_distributed.py, started by ``mlx.launch`` (not a test module).

Usage: ``mlx.launch -n N --backend ring python tests/distributed_worker.py OUT_DIR``. Every
process runs the functions of distributed_cases.py under ``ad.spmd`` on its own row of the
shared batch (eagerly, jitted, interpreted in float64), their gradients, a multi-process
finite-difference check, MLX code that communicates (``mlx.nn.average_gradients``,
``mx.distributed.all_sum``) traced, and a few data-parallel training steps; it writes what it
got to ``OUT_DIR/rank{r}.npz`` for the test to compare with single-process references.
"""

import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from distributed_cases import AXIS, LOSSES, VALUES, full_batch

import autodiff as ad
from autodiff.config import config
from autodiff.interpret import interpret
from autodiff.testing import check_grads
from autodiff.testing.check import numerical_jvp

config.typecheck = True

group = mx.distributed.init()
rank, n = group.rank(), group.size()
out_dir = Path(sys.argv[1])
results: dict[str, np.ndarray] = {}


def save(key, tree):
    for i, leaf in enumerate(ad.tree_leaves(tree)):
        results[f"{key}/{i}"] = np.asarray(leaf, dtype=np.float64)


def spmd(f):
    return ad.spmd(f, axis_name=AXIS)


x = mx.array(full_batch(n)[rank])
x64 = np.asarray(x, np.float64)

for name, f in VALUES.items():
    save(f"values/{name}/eager", spmd(f)(x))
    save(f"values/{name}/jit", ad.jit(spmd(f))(x))
    save(f"values/{name}/interpret", interpret(ad.make_jaxpr(spmd(f))(x), x64))

for name, loss in LOSSES.items():
    save(f"grads/{name}/eager", spmd(ad.grad(loss))(x))
    save(f"grads/{name}/jit", ad.jit(spmd(ad.grad(loss)))(x))
    # forward mode against central differences of the whole multi-process function (each
    # process perturbs its own input; the collectives run in float64 in the interpreter)
    check_grads(spmd(loss), (x,), order=2, modes=("fwd",))
    # reverse mode: <vjp(u), v> == <u, J v> holds for the sums over the processes
    rng = np.random.default_rng(100 + rank)
    v, u = rng.standard_normal(x.shape), rng.standard_normal(())
    vjp_fn = spmd(lambda x, u: ad.vjp(loss, x)[1](u)[0])
    lhs = np.sum(interpret(ad.make_jaxpr(vjp_fn)(x, mx.array(1.0)), x64, u)[0] * v)
    rhs = float(numerical_jvp(spmd(loss), (x,), [v])[0]) * u
    totals = mx.distributed.all_sum(mx.array([lhs, rhs], dtype=mx.float64), group=group)
    save(f"vjp_identity/{name}", totals)

# MLX code that communicates, traced: mlx.nn.average_gradients inside a jitted function, and
# mx.distributed.all_sum under ad.grad (through the implicit world axis)
grads = {"w": mx.array(full_batch(n, seed=1)[rank]), "b": [x[0], x[1] * 2.0]}
save("mlx/average_gradients/eager", nn.average_gradients(grads))
save("mlx/average_gradients/jit", ad.jit(nn.average_gradients)(grads))
save(
    "mlx/average_gradients/jit_unbucketed",
    ad.jit(lambda g: nn.average_gradients(g, None, 0))(grads),
)
save("ours/average_gradients/eager", spmd(ad.distributed.average_gradients)(grads))
save("ours/average_gradients/jit", ad.jit(spmd(ad.distributed.average_gradients))(grads))
save("mlx/all_sum_grad", ad.grad(lambda v: mx.distributed.all_sum(v * v).sum())(x))
save("mlx/all_sum_grad_mlx", mx.grad(lambda v: mx.distributed.all_sum(v * v).sum())(x))


# data-parallel training: a few Adam steps of an MLP on this process's share of the batch
def make_model():
    mx.random.seed(7)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 5))


def loss_fn(model, xb, yb):
    return nn.losses.cross_entropy(model(xb), yb, reduction="mean")


rng = np.random.default_rng(3)
X, Y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 5, 16).astype(np.int32)
per = 16 // n
xs, ys = mx.array(X[rank * per : (rank + 1) * per]), mx.array(Y[rank * per : (rank + 1) * per])
for bucket_bytes in (ad.distributed.DEFAULT_BUCKET_BYTES, 0):
    model = make_model()
    step = ad.distributed.train_step(model, optim.Adam(0.05), loss_fn, bucket_bytes=bucket_bytes)
    save(f"train/{bucket_bytes}/losses", [step(xs, ys) for _ in range(4)])
    save(f"train/{bucket_bytes}/params", model.parameters())
    psums = sum(e.prim.name == "psum" for e in step.trace(xs, ys).eqns)
    save(f"train/{bucket_bytes}/all_reduces", mx.array(psums))

# the named axis as a vmap of the same function gives the same numbers (also on this process)
stacked = mx.array(full_batch(n))
save("vmap/mixed", ad.vmap(VALUES["mixed"], axis_name=AXIS)(stacked)[rank])

out_dir.mkdir(parents=True, exist_ok=True)
np.savez(out_dir / f"rank{rank}.npz", **results)
print(f"rank {rank} of {n}: {len(results)} results")

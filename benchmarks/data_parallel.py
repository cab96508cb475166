"""``python -m benchmarks.data_parallel [--quick] [--processes 1,2,4]``: data-parallel steps.

Starts 1, 2 and 4 local processes (``mlx.launch --backend ring`` over loopback) and times one
training step of an ``mlx.nn`` MLP per process count, for:

- ``ad.distributed.train_step`` with gradient buckets (32 MiB, MLX's default, and 1 MiB),
- the same without buckets (one all-reduce per array),
- MLX's own recipe: ``mx.compile`` of a step calling ``nn.value_and_grad`` and
  ``nn.average_gradients`` (bucketed, then unbucketed), plus one ``all_sum`` for the loss.

It reports the median time per step (contenders interleaved step by step) and the number of
all-reduce calls per step: for ours the ``psum`` equations of the compiled program, for MLX's
the ``mx.distributed.all_sum`` calls made while it traces its step. The global batch is fixed
and split among the processes. On one machine over loopback (and here on 2 CPU cores for up
to 4 processes) this measures overhead and the count of collectives, not a speed-up.

Writes benchmarks/results/data_parallel.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

MODELS = {  # name -> layer widths
    "digits MLP 64-128-128-10": (64, 128, 128, 10),
    "wider MLP 128-512-512-512-10": (128, 512, 512, 512, 10),
}
GLOBAL_BATCH = 128


def _worker(args) -> None:
    """One process: time every contender on this process's share; rank 0 writes JSON."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np

    import autodiff as ad

    group = mx.distributed.init()
    rank, n = group.rank(), group.size()
    per = GLOBAL_BATCH // n
    steps, warmup = (8, 3) if args.quick else (30, 5)
    results = {}

    def loss_fn(model, x, y):
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    for model_name, widths in MODELS.items():
        rng = np.random.default_rng(rank)
        x = mx.array(rng.standard_normal((per, widths[0])).astype(np.float32))
        y = mx.array(rng.integers(0, widths[-1], per).astype(np.int32))

        def make():
            mx.random.seed(0)
            layers = []
            for a, b in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            return nn.Sequential(*layers[:-1])

        contenders, counts = {}, {}
        for label, bucket in (
            ("32 MiB buckets", 32 * 2**20),
            ("1 MiB buckets", 2**20),
            ("no buckets", 0),
        ):
            model, opt = make(), optim.SGD(1e-3)
            step = ad.distributed.train_step(model, opt, loss_fn, group=group, bucket_bytes=bucket)
            mx.eval(step(x, y))  # (the optimizer makes its state at the first call)
            contenders[f"ours, {label}"] = partial(step, x, y)
            counts[f"ours, {label}"] = sum(e.prim.name == "psum" for e in step.trace(x, y).eqns)
        for label, size in (("32 MiB buckets", 32 * 2**20), ("no buckets", 0)):
            model, opt = make(), optim.SGD(1e-3)
            state = [model.state, opt.state]
            lg = nn.value_and_grad(model, loss_fn)

            def mlx_step(x, y, model=model, opt=opt, lg=lg, size=size):
                loss, grads = lg(model, x, y)
                grads = nn.average_gradients(grads, group, size)
                opt.update(model, grads)
                return mx.distributed.all_sum(loss, group=group) / n

            compiled = mx.compile(mlx_step, inputs=state, outputs=state)
            calls = [0]
            original = mx.distributed.all_sum

            def counting(*a, **k):
                calls[0] += 1
                return original(*a, **k)

            mx.distributed.all_sum = counting
            try:
                mx.eval(compiled(x, y))  # traced now: count the calls its graph holds
            finally:
                mx.distributed.all_sum = original
            key = f"MLX mx.compile + nn.average_gradients, {label}"
            contenders[key], counts[key] = partial(compiled, x, y), calls[0]

        times = {k: [] for k in contenders}
        for i in range(warmup + steps):
            for k, fn in contenders.items():
                t = time.perf_counter()
                mx.eval(fn())
                if i >= warmup:
                    times[k].append((time.perf_counter() - t) * 1e3)
        n_params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        results[model_name] = {
            "parameters": n_params,
            "contenders": {
                k: {"median_ms": statistics.median(v), "all_reduces_per_step": counts[k]}
                for k, v in times.items()
            },
        }
    if rank == 0:
        Path(args.out).write_text(
            json.dumps({"processes": n, "per_process_batch": per, "models": results})
        )


def _launch(n: int, quick: bool, out: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.data_parallel", "--worker", "--out", str(out)]
    if quick:
        cmd.append("--quick")
    if n > 1:  # (the ring launcher cannot start a single process: it gives it no hostfile)
        launcher = Path(sys.executable).with_name("mlx.launch")
        cmd = [str(launcher), "-n", str(n), "--backend", "ring", "-p", str(_free_port(n)), *cmd]
    run = subprocess.run(
        cmd,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=1800,
        capture_output=True,
        text=True,
    )
    if run.returncode or "exited with code" in run.stdout + run.stderr or not out.exists():
        raise RuntimeError(f"{n} processes failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())


def _free_port(n: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from launching import free_ports

    return free_ports(n)


def _markdown(runs: list[dict]) -> str:
    lines = [
        "# Data-parallel training steps",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, MLX CPU backend; local "
        "processes over loopback with the ring backend (`mlx.launch -n N --backend ring`). "
        f"Global batch {GLOBAL_BATCH}, split evenly among the processes. Median ms per "
        "step (one SGD step: forward, backward, gradient all-reduce, update), contenders "
        "interleaved step by step; all-reduces per step: psum equations in our compiled "
        "step, `mx.distributed.all_sum` calls in MLX's.",
        "",
        "With 2 CPU cores shared by up to 4 processes, and other work on the machine, the "
        "times measure overhead and contention, not scaling: the point here is that the "
        "all-reduces are fused into one compiled step and how many there are.",
    ]
    for model in runs[0]["models"]:
        lines += ["", f"## {model} ({runs[0]['models'][model]['parameters']:,} parameters)", ""]
        header = (
            "| contender | "
            + " | ".join(f"{r['processes']} proc." for r in runs)
            + " | all-reduces per step (2, 4 proc.) |"
        )
        lines += [header, "|---|" + "---:|" * (len(runs) + 1)]
        for name in runs[0]["models"][model]["contenders"]:
            cells = [f"{r['models'][model]['contenders'][name]['median_ms']:.2f}" for r in runs]
            counts = sorted(
                {
                    r["models"][model]["contenders"][name]["all_reduces_per_step"]
                    for r in runs
                    if r["processes"] > 1
                }
            )
            count = ", ".join(map(str, counts)) or "0"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.processes.split(",")):
            runs.append(_launch(n, args.quick, Path(tmp) / f"run{n}.json"))
    results = Path(__file__).resolve().parent / "results"
    (results / "data_parallel.json").write_text(json.dumps(runs, indent=1))
    (results / "data_parallel.md").write_text(_markdown(runs))
    print(_markdown(runs))


if __name__ == "__main__":
    main()

"""``python -m benchmarks [--quick] [--out DIR] [--only SUBSTRING]``

Times every workload side by side against mx.grad, mx.compile(mx.grad) (mx.vmap where it
applies) and jax.jit(jax.grad) when JAX is installed, and writes a Markdown table, JSON and
PNG plots to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx

import autodiff as ad
import autodiff.numpy as anp
from benchmarks.harness import peak_memory, time_contenders
from benchmarks.report import write_markdown, write_plots
from benchmarks.workloads import all_workloads

OURS_VS = {"ad.grad": "mx.grad", "ad.jit(ad.grad)": "mx.compile(mx.grad)"}


def first_call_ms(repeats: int = 11) -> dict:
    """trace + transform + optimise + lower of ad.jit(grad^4(f)), excluding MLX's kernel
    compilation (which happens on the first run of the compiled program)."""
    f = lambda x: anp.sin(x) ** 3 * anp.exp(x)
    g = f
    for _ in range(4):
        g = ad.grad(g)
    x = mx.array(0.5)
    times = []
    for _ in range(repeats):
        ad.clear_caches()
        t = time.perf_counter()
        ad.jit(g).lower(x)
        times.append((time.perf_counter() - t) * 1e3)
    ad.clear_caches()
    jg = ad.jit(g)
    t = time.perf_counter()
    mx.eval(jg(x))
    with_compile = (time.perf_counter() - t) * 1e3
    return {"lower_ms": statistics.median(times), "first_run_with_mx_compile_ms": with_compile}


def machine() -> str:
    return f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}, MLX {mx.__version__}, device {mx.default_device()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds (under 2 minutes)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--only", default=None, help="run workloads whose name contains this")
    args = parser.parse_args(argv)
    rounds, target = (5, 0.02) if args.quick else (15, 0.05)
    ad.config.compile = "auto"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = first_call_ms()  # measured first, in a fresh process, as a user meets it
    results = []
    makers = all_workloads(args.quick)
    t_start = time.perf_counter()
    for i, make in enumerate(makers, 1):
        w = make()
        if args.only and args.only not in w.name:
            continue
        print(f"[{i}/{len(makers)}] {w.name} ...", end=" ", flush=True)
        t0 = time.perf_counter()
        big = "1e7" in w.name
        times = time_contenders(w.contenders, rounds=3 if big else rounds, target_s=target)
        eqns = len(w.program().eqns) if w.program else None
        jax_eqns = w.jax_eqns() if w.jax_eqns else None
        ratios = {ours: times[ours] / times[base] for ours, base in OURS_VS.items()}
        extra = {k: times[a] / times[b] for k, (a, b) in w.extra.get("ratios", {}).items()}
        notes = w.notes + "".join(f"; {k} = {v:.2f}" for k, v in extra.items())
        peaks = {name: peak_memory(fn) for name, fn in w.contenders.items()}
        results.append(
            {
                "name": w.name,
                "group": w.group,
                "times_s": times,
                "ratios": ratios,
                "peak_bytes": peaks,
                "eqns": eqns,
                "jax_eqns": jax_eqns,
                "notes": notes,
                "extra_ratios": extra,
            }
        )
        print(
            f"done in {time.perf_counter() - t0:.1f}s: "
            + ", ".join(
                [f"{k} / {OURS_VS[k]} = {v:.2f}" for k, v in ratios.items()]
                + [f"{k} = {v:.2f}" for k, v in extra.items()]
            )
        )
    summary = (
        {
            ours: math.exp(statistics.mean(math.log(r["ratios"][ours]) for r in results))
            for ours in OURS_VS
        }
        if results
        else {}
    )
    report = {
        "machine": machine(),
        "quick": args.quick,
        "rounds": rounds,
        "workloads": results,
        "geomean_ratios": summary,
        "first_call": first,
        "command": "python -m benchmarks" + (" --quick" if args.quick else ""),
    }
    (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    text = write_markdown(report, out_dir / "results.md")
    write_plots(report, out_dir)
    print()
    print(text)
    print(
        f"total {time.perf_counter() - t_start:.0f}s; wrote {out_dir}/results.md, results.json and PNG plots"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

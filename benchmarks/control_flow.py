"""``python -m benchmarks.control_flow [--quick]``: control flow and checkpointing.

1. The gradient of a 1,000-step recurrence: ``ad.scan`` under ``ad.jit`` against the same
   loop unrolled under ``mx.compile(mx.grad)`` and ``jax.lax.scan`` under ``jax.jit``, first
   call (tracing and compilation included) and steady state, medians of interleaved rounds.
2. Peak memory (``mx.get_peak_memory``) of the gradient of a 10,000-step loop: the checkpointed
   ``while_loop(max_steps=...)`` against a plain ``scan``, which stores every step's residuals.
3. Peak memory of a 32-layer MLP's gradient with each layer checkpointed, against without,
   for ours and for MLX's own ``mx.checkpoint``.

Writes benchmarks/results/control_flow.md and .json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp


def _median_ms(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        mx.eval(fn())
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def recurrence(steps: int, rounds: int) -> dict:
    n = 64
    rng = np.random.default_rng(0)
    w = mx.array(rng.standard_normal((n, n)).astype(np.float32) * (0.9 / np.sqrt(n)))
    xs = mx.array(rng.standard_normal((steps, n)).astype(np.float32))
    h0 = mx.zeros(n)

    def cell(w, h, x):
        return anp.tanh(h @ w + x)

    def scan_loss(w):
        h, _ = ad.scan(lambda h, x: (cell(w, h, x), None), h0, xs)
        return anp.sum(h * h)

    def unrolled_loss(w):
        h = h0
        for t in range(steps):
            h = cell(w, h, xs[t])
        return anp.sum(h * h)

    makers = {
        "ad.jit(ad.grad), ad.scan": lambda: ad.jit(ad.grad(scan_loss)),
        "mx.compile(mx.grad), unrolled": lambda: mx.compile(mx.grad(unrolled_loss)),
    }
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_platforms", "cpu")
        jw, jxs, jh0 = (jnp.asarray(np.array(a)) for a in (w, xs, h0))

        def jax_loss(w):
            h, _ = jax.lax.scan(lambda h, x: (jnp.tanh(h @ w + x), None), jh0, jxs)
            return jnp.sum(h * h)

        jax_grad = lambda: jax.jit(jax.grad(jax_loss))
        makers["jax.jit(jax.grad), lax.scan"] = jax_grad
    except ImportError:
        jax = None
    results = {}
    fns = {}
    for name, make in makers.items():
        ad.clear_caches()
        fn = make()
        arg = jw if name.startswith("jax") else w
        t = time.perf_counter()
        out = fn(arg)
        (out.block_until_ready() if name.startswith("jax") else mx.eval(out))
        results[name] = {"first_call_ms": (time.perf_counter() - t) * 1e3}
        fns[name] = (fn, arg)
    reference = np.array(fns["mx.compile(mx.grad), unrolled"][0](w))
    ours = np.array(fns["ad.jit(ad.grad), ad.scan"][0](w))
    steady = {k: [] for k in fns}
    for _ in range(rounds):  # interleaved
        for name, (fn, arg) in fns.items():
            t = time.perf_counter()
            out = fn(arg)
            (out.block_until_ready() if name.startswith("jax") else mx.eval(out))
            steady[name].append((time.perf_counter() - t) * 1e3)
    for name in fns:
        results[name]["steady_ms"] = statistics.median(steady[name])
    results["max_abs_grad_diff_vs_unrolled"] = float(np.max(np.abs(ours - reference)))
    return results


def _peak(fn) -> int:
    gc.collect()
    mx.clear_cache()
    mx.reset_peak_memory()
    mx.eval(fn())
    return mx.get_peak_memory()


def long_loop_memory(steps: int) -> dict:
    n = 2048
    rng = np.random.default_rng(1)
    a = mx.array(rng.uniform(0.5, 1.0, n).astype(np.float32))
    x0 = mx.array(rng.uniform(-1, 1, n).astype(np.float32))
    mx.eval(a, x0)
    step = lambda x: anp.sin(x) * a + 0.01 * x

    def checkpointed(x0):
        x = ad.while_loop(lambda x: anp.sum(x) < 1e30, step, x0, max_steps=steps)
        return anp.sum(x)

    def stored(x0):
        return anp.sum(ad.scan(lambda x, _: (step(x), None), x0, None, length=steps)[0])

    g_ckpt, g_store = ad.jit(ad.grad(checkpointed)), ad.jit(ad.grad(stored))
    out = {}
    for name, g in (
        ("checkpointed while_loop(max_steps)", g_ckpt),
        ("scan, residuals stored", g_store),
    ):
        mx.eval(g(x0))  # compile first
        t = time.perf_counter()
        out[name] = {"peak_bytes": _peak(lambda g=g: g(x0)), "seconds": time.perf_counter() - t}
    out["max_abs_grad_diff"] = float(mx.max(mx.abs(g_ckpt(x0) - g_store(x0))))
    out["carry_bytes"] = n * 4
    return out


def mlp_memory(layers: int = 32, width: int = 256, batch: int = 512) -> dict:
    """Residual blocks h + tanh(h W1) W2 with a 4x hidden expansion: each block's internal
    values are 8x its input, which is what checkpointing need not store."""
    rng = np.random.default_rng(2)

    def weight(m, n):
        return mx.array(rng.standard_normal((m, n)).astype(np.float32) / np.sqrt(2 * m))

    ws = [(weight(width, 4 * width), weight(4 * width, width)) for _ in range(layers)]
    x = mx.array(rng.standard_normal((batch, width)).astype(np.float32))
    mx.eval(ws, x)
    plain = lambda h, w: h + anp.tanh(h @ w[0]) @ w[1]

    def loss(ws, layer):
        h = x
        for w in ws:
            h = layer(h, w)
        return anp.sum(h * h)

    mx_ckpt = mx.checkpoint(lambda h, w: h + mx.tanh(h @ w[0]) @ w[1])
    variants = {
        "ad.grad": lambda: ad.grad(loss)(ws, plain),
        "ad.grad, ad.checkpoint per block": lambda: ad.grad(loss)(ws, ad.checkpoint(plain)),
        "mx.grad": lambda: mx.grad(lambda ws: loss(ws, plain))(ws),
        "mx.grad, mx.checkpoint per block": lambda: mx.grad(lambda ws: loss(ws, mx_ckpt))(ws),
    }
    out = {}
    for name, fn in variants.items():
        mx.eval(fn())
        out[name] = {"peak_bytes": _peak(fn)}
    g1, g2 = variants["ad.grad"](), variants["ad.grad, ad.checkpoint per block"]()
    out["max_abs_grad_diff"] = max(
        float(mx.max(mx.abs(a - b))) for a, b in zip(ad.tree_leaves(g1), ad.tree_leaves(g2))
    )
    out["weights_and_grads_bytes"] = 2 * layers * 2 * width * 4 * width * 4
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_flow", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else 1000
    rounds = 3 if args.quick else 7
    results = {
        "machine": f"MLX {mx.__version__}, device {mx.default_device()}",
        f"recurrence_{steps}_steps": recurrence(steps, rounds),
        "long_loop_memory": long_loop_memory(1000 if args.quick else 10_000),
        "mlp_32_layers_memory": mlp_memory(),
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "control_flow.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Control flow and checkpointing ({results['machine']})", ""]
    rec = results[f"recurrence_{steps}_steps"]
    lines += [
        f"## Gradient of a {steps}-step recurrence (64 units)",
        "",
        "| contender | first call | steady state |",
        "|---|---|---|",
    ]
    for k, v in rec.items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['first_call_ms']:.1f} ms | {v['steady_ms']:.2f} ms |")
    lines += [
        "",
        f"max |grad(scan) - grad(unrolled)| = {rec['max_abs_grad_diff_vs_unrolled']:.2e}",
        "",
    ]
    for title, key in (
        ("Peak memory of the gradient of a long loop", "long_loop_memory"),
        (
            "Peak memory of a 32-block MLP's gradient (batch 512, width 256, hidden 1024)",
            "mlp_32_layers_memory",
        ),
    ):
        lines += [f"## {title}", "", "| variant | peak memory |", "|---|---|"]
        for k, v in results[key].items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['peak_bytes'] / 2**20:.1f} MiB |")
        lines.append("")
    (out_dir / "control_flow.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

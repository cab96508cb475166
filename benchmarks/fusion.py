"""``python -m benchmarks.fusion [--quick]``: the effect of the fusion pass.

For an attention block written by hand with ``autodiff.numpy`` (the workload of
``transformers.attention_block``) and a transformer layer written with ``mlx.core`` and
``mx.fast`` (RMS norm, RoPE, fused attention, SwiGLU), forward and gradient programs are
timed side by side in one process, interleaved, medians over rounds:

- ``ours fused``: our program lowered after the fusion pass (the rules ``ad.config.fuse =
  True`` applies on this device), ``mx.compile``d;
- ``ours unfused``: the same program lowered without it (``ad.config.fuse = False``'s code);
- ``ad.jit``: the user's path (``ad.jit(f)`` / ``ad.jit(ad.grad(f))``, fusion on);
- ``mx.compile``: ``mx.compile(f)`` / ``mx.compile(mx.grad(f))``.

``ours fused`` and ``ours unfused`` call the compiled functions directly, so they differ in
nothing but the rewrite. Also reported: the fused kernels each program got. Writes
benchmarks/results/fusion.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp
from autodiff.lower_control import lower_program
from autodiff.program import fusion_rules
from autodiff.transforms.fuse import fuse
from benchmarks.__main__ import machine
from benchmarks.harness import time_contenders
from benchmarks.transformers import _make_attention_block, attention_block_params, transformer_layer

CALLS = {
    "sdpa": "mx.fast.scaled_dot_product_attention(",
    "layer_norm": "mx.fast.layer_norm(",
    "rms_norm": "mx.fast.rms_norm(",
    "rope": "mx.fast.rope(",
    "addmm": "mx.addmm(",
    "softmax": "mx.softmax(",
    "logsumexp": "mx.logsumexp(",
    "cross_entropy": "mx.fast.cross_entropy(",
}


def _transformer_layer():
    return lambda p, x: mx.mean(transformer_layer(p, x) ** 2)


def _layer_params(d, seed=8):
    rng = np.random.default_rng(seed)

    def w(m, n):
        return mx.array((rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32))

    p = {f"w{n}": w(d, d) for n in "qkvo"} | {"wg": w(d, 4 * d), "wu": w(d, 4 * d)}
    return p | {"wd": w(4 * d, d), "n1": mx.ones(d), "n2": mx.ones(d)}


def _direct(fn, args, fused: bool):
    """``fn``'s jitted program lowered with or without the fusion pass, mx.compile'd, called
    on the flat arguments; and its source."""
    closed = ad.jit(fn).trace(*args)
    low = lower_program(fuse(closed, fusion_rules()) if fused else closed, "bench")
    compiled, consts, flat = mx.compile(low.fn), closed.consts, ad.tree_leaves(args)
    return (lambda: compiled(*consts, *flat)), low.as_text()


def cases(quick: bool):
    sizes = [(1, 64, 64), (4, 128, 128)]
    for b, t, d in sizes:
        x = mx.array(np.random.default_rng(9).standard_normal((b, t, d)).astype(np.float32))
        yield (
            f"attention block b{b} t{t} d{d}",
            _make_attention_block(anp),
            attention_block_params(d),
            x,
        )
        yield f"transformer layer b{b} t{t} d{d}", _transformer_layer(), _layer_params(d), x


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fusion", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    rounds, target = (5, 0.05) if args.quick else (11, 0.2)
    ad.config.compile = "auto"
    rows = []
    for name, loss, params, x in cases(args.quick):
        for kind in ("forward", "grad"):
            ours = loss if kind == "forward" else ad.grad(loss)
            theirs = loss if kind == "forward" else mx.grad(loss)
            fused, fused_src = _direct(ours, (params, x), True)
            plain, _ = _direct(ours, (params, x), False)
            jitted, compiled = ad.jit(ours), mx.compile(theirs)
            contenders = {
                "ours fused": fused,
                "ours unfused": plain,
                "ad.jit": lambda j=jitted: j(params, x),
                "mx.compile": lambda c=compiled: c(params, x),
            }
            times = time_contenders(contenders, rounds=rounds, target_s=target)
            kernels = {k: fused_src.count(c) for k, c in CALLS.items() if fused_src.count(c)}
            row = {"workload": f"{name}, {kind}", "times_s": times, "kernels": kernels}
            rows.append(row)
            print(
                row["workload"],
                {k: f"{v * 1e3:.2f} ms" for k, v in times.items()},
                kernels,
                flush=True,
            )
    report = {"machine": machine(), "rounds": rounds, "rows": rows, "command": _command(args)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion.json").write_text(json.dumps(report, indent=2))
    (out / "fusion.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


def _command(args) -> str:
    return "python -m benchmarks.fusion" + (" --quick" if args.quick else "")


def _ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def _markdown(report) -> str:
    lines = [
        f"Machine: {report['machine']}. Command: `{report['command']}`. Median of "
        f"{report['rounds']} interleaved rounds.",
        "",
        "| workload | ours fused | ours unfused | ad.jit | mx.compile | fused / unfused | "
        "fused / mx.compile | fused kernels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for r in report["rows"]:
        t = r["times_s"]
        fu, un, mc = t["ours fused"], t["ours unfused"], t["mx.compile"]
        ratios.append(fu / un)
        kernels = ", ".join(f"{k} {n}" for k, n in r["kernels"].items()) or "-"
        lines.append(
            f"| {r['workload']} | {_ms(fu)} | {_ms(un)} | {_ms(t['ad.jit'])} | {_ms(mc)} | "
            f"{fu / un:.2f} | {fu / mc:.2f} | {kernels} |"
        )
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    lines += ["", f"Geometric mean of fused / unfused: **{gm:.2f}**.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

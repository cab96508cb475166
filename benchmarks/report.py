"""Markdown table and PNG plots of a benchmark run."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ["mx.grad", "ad.grad", "mx.compile(mx.grad)", "ad.jit(ad.grad)", "jax.jit(jax.grad)"]


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    if b < 1 << 20:
        return f"{b / 1024:.1f} KiB"
    return f"{b / (1 << 20):.1f} MiB"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def write_markdown(report: dict, path: Path) -> str:
    cols = [c for c in COLUMNS if any(c in w["times_s"] for w in report["workloads"])]
    lines = [
        f"Machine: {report['machine']}. Command: `{report['command']}`. Median of "
        f"{report['rounds']} interleaved rounds per workload.",
        "",
        "| workload | "
        + " | ".join(cols)
        + " | ad.grad / mx.grad | ad.jit / mx.compile | eqns (ours) | eqns (JAX) |",
        "|---" * (len(cols) + 5) + "|",
    ]
    memory = [
        "",
        "Peak memory of one call (MLX's allocator, `mx.get_peak_memory()` reset before it, less "
        "what was allocated before):",
        "",
        "| workload | "
        + " | ".join(c for c in cols if c != "jax.jit(jax.grad)")
        + " | ad.grad / mx.grad | ad.jit / mx.compile |",
        "|---" * (len([c for c in cols if c != "jax.jit(jax.grad)"]) + 3) + "|",
    ]
    for w in report["workloads"]:
        t = w["times_s"]
        r = w["ratios"]
        lines.append(
            f"| {w['name']} | "
            + " | ".join(_fmt_time(t.get(c)) for c in cols)
            + f" | {r['ad.grad']:.2f} | {r['ad.jit(ad.grad)']:.2f} | {w['eqns'] if w['eqns'] is not None else '-'} | {w['jax_eqns'] if w['jax_eqns'] is not None else '-'} |"
        )
        p = w.get("peak_bytes") or {}
        if p:
            mcols = [c for c in cols if c != "jax.jit(jax.grad)"]
            memory.append(
                f"| {w['name']} | "
                + " | ".join(_fmt_bytes(p.get(c)) for c in mcols)
                + f" | {_ratio(p.get('ad.grad'), p.get('mx.grad'))}"
                + f" | {_ratio(p.get('ad.jit(ad.grad)'), p.get('mx.compile(mx.grad)'))} |"
            )
    g = report["geomean_ratios"]
    if g:
        lines += [
            "",
            f"Geometric mean of ratios: ad.grad / mx.grad = **{g['ad.grad']:.2f}**, ad.jit(ad.grad) / mx.compile(mx.grad) = **{g['ad.jit(ad.grad)']:.2f}** (below 1 means autodiff is faster).",
        ]
    fc = report["first_call"]
    lines += [
        f"First call of `ad.jit(grad^4(f))`: trace + transform + optimise + lower = **{fc['lower_ms']:.1f} ms**; with MLX's kernel compilation on the first run: {fc['first_run_with_mx_compile_ms']:.0f} ms."
    ]
    if len(memory) > 6:
        lines += memory
    notes = [f"- {w['name']}: {w['notes']}" for w in report["workloads"] if w["notes"]]
    if notes:
        lines += ["", "Notes:"] + notes
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plots(report: dict, out_dir: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping plots (pip install 'autodiff-mlx[bench]')")
        return
    ws = report["workloads"]
    if not ws:
        return
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(ws) + 1.5))
    names = [w["name"] for w in ws]
    y = range(len(ws))
    ax.barh(
        [i - 0.2 for i in y],
        [w["ratios"]["ad.grad"] for w in ws],
        height=0.4,
        label="ad.grad / mx.grad",
    )
    ax.barh(
        [i + 0.2 for i in y],
        [w["ratios"]["ad.jit(ad.grad)"] for w in ws],
        height=0.4,
        label="ad.jit(ad.grad) / mx.compile(mx.grad)",
    )
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio (lower is better for autodiff)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(out_dir / "ratios.png", dpi=120)
    plt.close(fig)
    sizes = [w for w in ws if w["name"].startswith("sum(sin*cos)")]
    if sizes:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [10 ** int(w["name"].split("1e")[-1]) for w in sizes]
        for c in COLUMNS:
            if c in sizes[0]["times_s"]:
                ax.loglog(xs, [w["times_s"][c] for w in sizes], marker="o", label=c)
        ax.set_xlabel("elements")
        ax.set_ylabel("seconds per gradient")
        ax.set_title("grad of sum(sin(x) * cos(x))")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "elementwise_scaling.png", dpi=120)
        plt.close(fig)

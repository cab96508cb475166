"""Timing: contenders of one workload are timed side by side in one process, interleaved
(each round visits every contender in a rotated order), and the median per-call time over the
rounds is reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import mlx.core as mx


def _block(out):
    """Wait for a result: mx.eval for MLX arrays, block_until_ready for JAX arrays."""
    flat = _leaves(out)
    mx_arrays = [x for x in flat if isinstance(x, mx.array)]
    if mx_arrays:
        mx.eval(mx_arrays)
    for x in flat:
        if hasattr(x, "block_until_ready"):
            x.block_until_ready()


def run(fn: Callable[[], object]) -> object:
    out = fn()
    _block(out)
    return out


def peak_memory(fn: Callable[[], object]) -> int | None:
    """Peak bytes MLX allocates during one call of ``fn`` (run and waited for), on top of what
    was allocated before it; None for contenders that are not MLX (JAX)."""
    gc_before = mx.get_active_memory()
    mx.reset_peak_memory()
    out = run(fn)
    peak = mx.get_peak_memory() - gc_before
    if not any(isinstance(x, mx.array) for x in _leaves(out)):
        return None
    return max(peak, 0)


def _leaves(out):
    leaves = out if isinstance(out, (list, tuple)) else [out]
    flat = []
    for x in leaves:
        if isinstance(x, dict):
            flat.extend(x.values())
        elif isinstance(x, (list, tuple)):
            flat.extend(x)
        else:
            flat.append(x)
    return flat


def time_contenders(
    contenders: dict[str, Callable[[], object]], rounds: int, target_s: float
) -> dict[str, float]:
    """Median seconds per call of each contender."""
    per_call = {name: [] for name in contenders}
    iters = {}
    for name, fn in contenders.items():
        # Warm up (first calls trace, compile and fill caches): at least 0.2 s, and 10 calls
        # unless that takes over 2 s; then size the batches from the last call.
        start, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - start < (2.0 if calls < 10 else 0.2):
            t = time.perf_counter()
            run(fn)
            one = max(time.perf_counter() - t, 1e-7)
            calls += 1
        iters[name] = max(1, min(5000, int(target_s / one)))
    names = list(contenders)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn, n = contenders[name], iters[name]
            t = time.perf_counter()
            for _ in range(n):
                _block(fn())
            per_call[name].append((time.perf_counter() - t) / n)
    return {name: statistics.median(ts) for name, ts in per_call.items()}

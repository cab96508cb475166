"""What routing mlx.core through autodiff costs eager MLX code (issue 11's microbenchmark).

Three cases, for ``mx.sin(x)``, ``x + y`` and ``x[1:]`` on a small concrete array:

1. without autodiff imported (a child process);
2. with autodiff imported, no trace active: MLX's own objects are in place, so the cost is nil;
3. while another thread is inside a trace (it holds one open): the routed functions are in
   place and every call pays their check for traced arguments.

Run: ``python -m benchmarks.routing_overhead``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import timeit

_CASES = {
    "mx.sin(x)": "mx.sin(x)",
    "x + y": "x + y",
    "x[1:]": "x[1:]",
}
_SETUP = "import mlx.core as mx; x = mx.ones((4,)); y = mx.ones((4,))"


def _time(stmt: str, env: dict) -> float:
    """Best per-call time in ns over 7 repeats (graph building only: nothing is evaluated)."""
    n = 20000
    return min(timeit.repeat(stmt, number=n, repeat=7, globals=env)) / n * 1e9


def _measure() -> dict:
    env: dict = {}
    exec(_SETUP, env)
    return {name: _time(stmt, env) for name, stmt in _CASES.items()}


def main() -> int:
    if "--child" in sys.argv:
        print(json.dumps(_measure()))
        return 0
    plain = json.loads(
        subprocess.run(
            [sys.executable, "-m", "benchmarks.routing_overhead", "--child"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    import mlx.core as mx

    import autodiff as ad

    sin_before = mx.sin
    imported = _measure()
    assert mx.sin is sin_before

    inside, leave = threading.Event(), threading.Event()

    def hold_a_trace(x):
        inside.set()
        leave.wait()
        return x

    t = threading.Thread(target=lambda: ad.make_jaxpr(hold_a_trace)(mx.ones(2)))
    t.start()
    inside.wait()
    try:
        during = _measure()
    finally:
        leave.set()
        t.join()
    assert mx.sin is sin_before

    print("per call, ns (best of 7 x 20000):")
    print(f"{'call':12} {'no autodiff':>12} {'imported':>10} {'during a trace':>15}")
    for name in _CASES:
        print(f"{name:12} {plain[name]:12.0f} {imported[name]:10.0f} {during[name]:15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Starting local multi-process runs for the tests: ``mlx.launch`` with the ring backend over
loopback, on free ports, time-boxed (the whole process group is killed on timeout)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 300  # per launch; 2 processes take ~10 s alone, much more on a busy 2-core machine


def launcher() -> list[str]:
    """``mlx.launch`` of this interpreter's environment."""
    found = shutil.which("mlx.launch", path=os.path.dirname(sys.executable))
    if found:
        return [found]
    main = "import sys; from mlx._distributed_utils.launch import main; sys.exit(main())"
    return [sys.executable, "-c", main]


def free_ports(n: int) -> int:
    """A port p with p..p+n-1 free on loopback (the ring backend takes one per rank)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65536:
            continue
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports on loopback")


def launch(n: int, script: Path, *args: str, timeout: float = TIMEOUT_S, cwd=None) -> str:
    """Run ``script`` on ``n`` local processes with the ring backend; its output, or a
    failure with it. The whole process group is killed on timeout."""
    cmd = [*launcher(), "-n", str(n), "--backend", "ring", "-p", str(free_ports(n))]
    cmd += [sys.executable, str(script), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.Popen(
        cmd,
        cwd=cwd or TESTS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{n} processes did not finish in {timeout} s:\n{out[-4000:]}")
    if proc.returncode != 0 or "exited with code" in out:
        pytest.fail(f"{n} processes failed (exit {proc.returncode}):\n{out[-6000:]}")
    return out

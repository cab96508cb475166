"""The README's Python blocks run as written, so its examples cannot rot; and the test command
CI reads from it (the line after the ``<!-- test command -->`` marker) is still there.

Each block runs statement by statement in a fresh namespace, with every array it leaves
behind evaluated (MLX is lazy: an unevaluated result would check nothing). A bare expression
whose line ends in a comment starting with a number (``ad.grad(f)(x)  # 4.0``) must evaluate to
that number.
"""

import ast
import re
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
LINES = TEXT.splitlines()
EXPECTED = re.compile(r"\s*(-?\d+(?:\.\d+)?)(?=$|[\s;,(])")  # after the line's "#"


def _python_blocks() -> list[tuple[int, str]]:
    """``(line number of the first line of code, source)`` of every ```python block."""
    return [
        (TEXT.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```$", TEXT, re.S | re.M)
    ]


BLOCKS = _python_blocks()


def _arrays(value, depth=0) -> list:
    if isinstance(value, mx.array):
        return [value]
    if depth > 4:
        return []
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v, depth + 1)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v, depth + 1)]
    return []


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, source", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_python_block_runs(line, source):
    tree = ast.parse("\n" * (line - 1) + source, str(README))  # line numbers are README's
    ns = {"__name__": f"readme_line{line}"}
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr):
            exec(compile(ast.Module([stmt], type_ignores=[]), str(README), "exec"), ns)
            continue
        value = eval(compile(ast.Expression(stmt.value), str(README), "eval"), ns)
        mx.eval(_arrays(value))
        comment = LINES[stmt.end_lineno - 1].partition("#")[2]
        expected = EXPECTED.match(comment) if comment else None
        if expected:
            np.testing.assert_allclose(
                np.array(value),
                float(expected.group(1)),
                rtol=1e-4,
                atol=1e-4,
                err_msg=f"README.md:{stmt.end_lineno}",
            )
    mx.eval([a for v in ns.values() for a in _arrays(v)])


def test_ci_reads_a_test_command():
    i = LINES.index("<!-- test command -->")
    assert LINES[i + 1] == "```bash"
    assert "pytest" in LINES[i + 2]

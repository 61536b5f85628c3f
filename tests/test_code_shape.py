"""The code base keeps its shape: no module in tau/ over 450 lines, no function over 80 (issue 14).

Small modules with one job and functions that fit on a screen; a file or function that grows past
the limit is split along a real seam, not excepted here.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tau"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80

def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@functools.cache
def _too_long() -> dict[str, tuple[int, int]]:
    """Every function over the limit: ``path:name`` -> (line, length)."""
    found: dict[str, tuple[int, int]] = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _length(node) > MAX_FUNCTION_LINES:
                found[f"{path.relative_to(ROOT)}:{node.name}"] = (node.lineno, _length(node))
    return found


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first decorator (or ``def``) to the last line of the body."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return (node.end_lineno or node.lineno) - first + 1


def test_no_module_is_over_the_limit() -> None:
    long = {str(path.relative_to(ROOT)): n for path in _modules()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them along a seam): {long}"


def test_no_function_is_over_the_limit() -> None:
    long = _too_long()
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines, (line, length) (split them): {long}"


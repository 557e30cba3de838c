"""No function of ``src/`` is longer than :data:`MOST_LINES` lines (its signature, docstring and body): a longer one
is split into functions that each do one thing."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MOST_LINES = 60


def test_no_function_in_src_is_over_60_lines() -> None:
    long = [
        f"{path.relative_to(SRC)}::{node.name} {node.end_lineno - node.lineno + 1} lines"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MOST_LINES
    ]
    assert not long, "; ".join(long)

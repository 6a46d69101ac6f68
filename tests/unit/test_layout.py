"""House rules of docs/architecture.md a machine can check: small modules, short functions."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PACKAGE = ROOT / "operator" / "chargeback"
MODULE_LINES, FUNCTION_LINES = 400, 60


def _modules() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))]


def test_no_module_is_over_400_lines() -> None:
    long = {path: text.count("\n") for path, text in _modules() if text.count("\n") > MODULE_LINES}
    assert long == {}


LITERALS = ast.List | ast.Tuple | ast.Dict | ast.Set | ast.ListComp | ast.DictComp


def _span(node: ast.AST) -> set[int]:
    return set(range(node.lineno, (node.end_lineno or node.lineno) + 1))  # type: ignore[attr-defined]


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function outside its data literals (lists, tables, dicts over 3 lines)."""
    lines = _span(function)
    for node in ast.walk(function):
        if isinstance(node, LITERALS) and len(_span(node)) > 3:
            lines -= _span(node) - {node.lineno}
    return len(lines)


def test_no_function_is_over_60_lines_outside_data_literals() -> None:
    long = {}
    for path, text in _modules():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = code_lines(node)
                if length > FUNCTION_LINES:
                    long[f"{path}:{node.name}"] = length
    assert long == {}


def test_data_literals_do_not_count_but_code_does() -> None:
    source = "def f():\n" + "    x = 1\n" * 61 + "    return [\n" + "        1,\n" * 99 + "    ]\n"
    (function,) = ast.parse(source).body
    assert isinstance(function, ast.FunctionDef)
    assert code_lines(function) == 1 + 61 + 1


def test_the_old_catch_all_modules_are_gone() -> None:
    assert not (PACKAGE / "services" / "reconcile.py").exists()
    assert not (PACKAGE / "cli.py").exists()

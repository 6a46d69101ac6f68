"""Production code stands without the test platform and the demo extra.

The import-linter contract in .importlinter forbids production modules from importing
``chargeback.testing``, ``cryptography`` and ``matplotlib``; the ``demo`` command is its one
listed exception and loads the platform inside the command. These tests show both halves: that
the contract fails on such an import, and that loading the command line loads none of it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
DEV_ONLY = ("chargeback.testing", "cryptography", "matplotlib")


def test_loading_the_cli_and_operator_loads_no_test_platform() -> None:
    probe = (
        "import sys, chargeback.cli, chargeback.handlers.operator;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DEV_ONLY!r} "
        "or m.startswith('chargeback.testing')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(tree / "operator")},
    )


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT / "operator", tree / "operator", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_lint_imports_fails_when_production_code_imports_the_test_platform(
    tmp_path: Path,
) -> None:
    tree = _tree(tmp_path)
    clean = _lint_imports(tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    report = tree / "operator" / "chargeback" / "services" / "report.py"
    report.write_text(report.read_text() + "\nfrom chargeback.testing.simulator import simulate\n")
    broken = _lint_imports(tree)
    assert broken.returncode != 0
    assert "Production code never imports the test platform" in broken.stdout
    assert "chargeback.services.report -> chargeback.testing.simulator" in broken.stdout


# One deliberate violation of each other contract, as a contributor might write it.
VIOLATIONS = [
    ("handlers/operator.py", "from chargeback.adapters.ledger import Ledger",
     "Handlers import only the composition root", "chargeback.adapters.ledger"),
    ("domain/reports.py", "from chargeback.adapters.ledger import Ledger",
     "The domain and the API do no I/O", "chargeback.domain.reports -> chargeback.adapters.ledger"),
    ("services/report.py", "import kopf", "know neither kopf nor click nor rich",
     "chargeback.services.report -> kopf"),
    ("adapters/exports.py", "from chargeback.services.report import Rendered", "Layers:",
     "chargeback.adapters.exports -> chargeback.services.report"),
    ("cli/report.py", "from chargeback.handlers.operator import run_operator",
     "The CLI and the kopf handlers are independent",
     "chargeback.cli.report -> chargeback.handlers"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "line", "contract", "named"), VIOLATIONS)
def test_lint_imports_fails_on_a_deliberate_violation(
    tmp_path: Path, module: str, line: str, contract: str, named: str
) -> None:
    tree = _tree(tmp_path)
    path = tree / "operator" / "chargeback" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    broken = _lint_imports(tree)
    assert broken.returncode != 0
    assert contract in broken.stdout.replace("\n", " ")
    assert named in broken.stdout

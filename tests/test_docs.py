"""Every command a user is told to run in README.md and docs/ is exercised by a named test.

The list below maps each documented command to the test (or `make demo`) that runs it; this test
fails when a document gains a command nobody exercises, or a mapping points at a missing test.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from click.testing import CliRunner

from chargeback.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

EXERCISED_BY = {
    "make demo": "tests.e2e.test_demo::test_demo_runs_end_to_end_and_matches_ground_truth",
    "make test": ".ci/run",
    "make venv tools": ".ci/run",
    "make bench": "benchmarks.run::main",
    "kubectl apply -f crds/": "tests.conftest::chargeback_crds",
    "chargeback run": "tests.e2e.test_operator_crash::"
    "test_sigkill_during_collection_and_finalisation",
    "kubectl apply -f docs/examples/": "tests.api.test_validation::test_examples_are_accepted",
    "kubectl create namespace": "tests.conftest::namespace",
    "kubectl get tierpricings,usagereports": "tests.e2e.test_operator::test_operator_end_to_end",
    "chargeback report": "tests.integration.test_report::"
    "test_report_json_equals_hand_priced_ground_truth",
    "chargeback collect": "tests.integration.test_collect_failures::"
    "test_sigkill_at_random_points_never_double_counts",
    "chargeback ledger show": "tests.test_docs::test_ledger_show_runs",
}


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every line of every ```sh block, continuations joined."""
    found = []
    for document in DOCUMENTS:
        for block in re.findall(r"```sh\n(.*?)```", document.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split("#")[0].strip()
                if command:
                    found.append((document.name, command))
    return found


def test_every_documented_command_is_exercised() -> None:
    commands = documented_commands()
    assert len(commands) >= 10
    unmapped = [c for c in commands if not any(c[1].startswith(p) for p in EXERCISED_BY)]
    assert unmapped == []
    for target in EXERCISED_BY.values():
        if target == ".ci/run":
            assert "make test" in (ROOT / ".ci" / "run").read_text()
            continue
        module, name = target.split("::")
        assert hasattr(importlib.import_module(module), name), target


def test_ledger_show_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ledger", "show", "--ledger", f"sqlite:///{tmp_path}/l.db"])
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(main, ["ledger", "show", "--ledger", f"sqlite:///{tmp_path}/l.db",
                                        "--source-id", "nope"])  # fmt: skip
    assert missing.exit_code == 1
    assert "no source 'nope' in the ledger" in missing.output

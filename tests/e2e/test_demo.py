"""The README's first command, non-interactively and with less data: it must pass its own check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_matches_ground_truth(tmp_path: Path) -> None:
    output = tmp_path / "demo-output"
    run = subprocess.run(
        [sys.executable, "-m", "chargeback", "demo", "--hours", "12", "--users", "10",
         "--no-wait", "--output", str(output)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "The report equals the simulator's ground truth" in run.stdout
    assert "usagereport.chargeback.dev/monthly" in run.stdout
    exports = sorted(p.name for p in output.glob("monthly-*.csv"))
    assert exports, list(output.iterdir())
    assert list(output.glob("runs/*/ledger.db"))

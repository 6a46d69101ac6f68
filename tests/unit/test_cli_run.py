"""`chargeback run` takes every operator setting the chart sets as a flag, and checks it first."""

from __future__ import annotations

import re

from click.testing import CliRunner

from chargeback.cli import main
from tests.conftest import ROOT

# Settings the chart passes that are not flags of `chargeback run` (dashboard provisioning and
# the pod's own namespace are deployment facts, not choices made at a workstation).
ENV_ONLY = {"POD_NAMESPACE"}
ENV_ONLY_PREFIXES = ("CHARGEBACK_DASHBOARD_", "CHARGEBACK_GRAFANA_")


def test_every_chart_setting_is_a_flag_of_run() -> None:
    template = (ROOT / "charts/chargeback-operator/templates/deployment.yaml").read_text()
    chart = set(re.findall(r"name: (CHARGEBACK_[A-Z_]+|POD_NAMESPACE)", template))
    assert len(chart) > 10
    run = main.commands["run"]
    flags = {param.envvar for param in run.params if isinstance(param.envvar, str)}
    missing = {v for v in chart - flags - ENV_ONLY if not v.startswith(ENV_ONLY_PREFIXES)}
    assert missing == set()


def test_bad_gpu_settings_are_refused_before_the_operator_starts() -> None:
    result = CliRunner().invoke(main, ["run", "--gpu-resolution", "7x"])
    assert result.exit_code == 2
    assert "Invalid value for --gpu-*" in result.output
    assert "invalid duration '7x'" in result.output

"""`chargeback run` takes every operator setting the chart sets as a flag, and checks it first."""

from __future__ import annotations

import re

from click.testing import CliRunner

from chargeback.cli import main
from chargeback.cli.run import flag_environment
from chargeback.services.reconcile import OperatorSettings
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


def test_flags_reach_the_operator_under_the_charts_variables() -> None:
    run = main.commands["run"]
    args = ["--gpu-resolution", "60s", "--no-gpu-costs", "--history-days", "3",
            "--namespace", "a", "--namespace", "b", "--refresh-seconds", "5"]  # fmt: skip
    env = flag_environment(run.make_context("run", args))
    assert env["CHARGEBACK_GPU_RESOLUTION"] == "60s"
    assert env["CHARGEBACK_GPU_COSTS"] == "false"
    assert env["CHARGEBACK_HISTORY_DAYS"] == "3"
    assert env["CHARGEBACK_NAMESPACES"] == "a b"
    assert env["CHARGEBACK_REFRESH_SECONDS"] == "5.0"
    assert env["CHARGEBACK_GPU_UTILIZATION_METRIC"] == "DCGM_FI_DEV_GPU_UTIL"
    # OperatorSettings reads back what the flags said.
    settings = OperatorSettings.from_env(env)
    assert settings.infrastructure is None
    assert (settings.history_days, settings.refresh_seconds) == (3, 5.0)

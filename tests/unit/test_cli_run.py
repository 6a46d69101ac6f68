"""`chargeback run` takes every operator setting the chart sets as a flag, and checks it first."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from chargeback.app.settings import OperatorSettings
from chargeback.cli import main
from chargeback.cli.common import settings_from
from chargeback.cli.run import SETTINGS
from tests.conftest import ROOT

# Settings the chart passes that are not flags of `chargeback run`: the pod's own namespace is a
# deployment fact (the default dashboard namespace), not a choice made at a workstation.
ENV_ONLY = {"POD_NAMESPACE"}


def test_every_chart_setting_is_a_flag_of_run() -> None:
    template = (ROOT / "charts/chargeback-operator/templates/deployment.yaml").read_text()
    chart = set(re.findall(r"name: (CHARGEBACK_[A-Z_]+|POD_NAMESPACE)", template))
    assert len(chart) > 10
    run = main.commands["run"]
    flags = {param.envvar for param in run.params if isinstance(param.envvar, str)}
    assert chart - flags - ENV_ONLY == set()
    # and every setting of the operator is a flag of run with the variable of its name
    assert {f"CHARGEBACK_{f.upper()}" for f in SETTINGS} <= flags


def test_bad_gpu_settings_are_refused_before_the_operator_starts() -> None:
    result = CliRunner().invoke(main, ["run", "--gpu-resolution", "7x"])
    assert result.exit_code == 2
    assert "Invalid value for --gpu-resolution" in result.output
    assert "invalid duration '7x'" in result.output


def test_flags_and_variables_make_one_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    run = main.commands["run"]
    monkeypatch.setenv("CHARGEBACK_GPU_UTILIZATION_METRIC", "MY_UTIL")
    monkeypatch.setenv("POD_NAMESPACE", "chargeback-system")
    args = ["--gpu-resolution", "60s", "--no-gpu-costs", "--history-days", "3",
            "--namespace", "a", "--namespace", "b", "--refresh-seconds", "5"]  # fmt: skip
    settings = settings_from(run.make_context("run", args), SETTINGS)
    assert settings.infrastructure() is None
    assert (settings.history_days, settings.refresh_seconds) == (3, 5.0)
    assert settings.watched_namespaces == ["a", "b"]
    assert settings.gpu_resolution == "60s"
    assert settings.gpu_utilization_metric == "MY_UTIL"  # from its variable
    assert settings.dashboards().namespace == "chargeback-system"  # the pod's namespace
    # The environment alone gives the same object (the chart sets variables, not flags).
    monkeypatch.setenv("CHARGEBACK_GPU_RESOLUTION", "60s")
    monkeypatch.setenv("CHARGEBACK_GPU_COSTS", "false")
    monkeypatch.setenv("CHARGEBACK_HISTORY_DAYS", "3")
    monkeypatch.setenv("CHARGEBACK_NAMESPACES", "a b")
    monkeypatch.setenv("CHARGEBACK_REFRESH_SECONDS", "5")
    assert OperatorSettings() == settings
    assert settings_from(run.make_context("run", []), SETTINGS) == settings


def test_the_operators_namespace_sees_all_usage_with_the_charts_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The chart sets both; the dashboard namespace once read POD_NAMESPACE too, and whenever it
    # was set the pod's namespace came out empty (found by the chart on a real node).
    monkeypatch.setenv("POD_NAMESPACE", "chargeback")
    monkeypatch.setenv("CHARGEBACK_DASHBOARD_NAMESPACE", "dashboards")
    run = main.commands["run"]
    settings = settings_from(run.make_context("run", []), SETTINGS)
    assert settings.unrestricted_namespaces == {"chargeback"}
    assert settings.dashboards().namespace == "dashboards"
    assert OperatorSettings().unrestricted_namespaces == {"chargeback"}


def test_a_bad_setting_names_its_flag() -> None:
    for args, flag in ((["--bucket", "1y"], "--bucket"), (["--grafana-operator", "maybe"],
                       "--grafana-operator"), (["--dashboard-label", "nolabel"],
                       "--dashboard-label")):  # fmt: skip
        result = CliRunner().invoke(main, ["run", *args])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for {flag}" in result.output

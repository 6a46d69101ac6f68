"""``chargeback run``: the operator."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from chargeback.cli.common import LEDGER_HELP, infra_options, make_infra_source, parse_bucket


def flag_environment(ctx: click.Context) -> dict[str, str]:
    """Each flag's value under its environment variable (flags without one are left out)."""
    env = {}
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param.envvar, str) or value is None:
            continue
        if isinstance(value, bool):
            env[param.envvar] = "true" if value else "false"
        elif isinstance(value, tuple):
            env[param.envvar] = " ".join(str(v) for v in value)
        else:
            env[param.envvar] = str(value)
    return env


@click.command()
@click.option(
    "--prometheus-url",
    envvar="CHARGEBACK_PROMETHEUS_URL",
    default="https://thanos-querier.openshift-monitoring.svc:9091",
    show_default=True,
    help="Prometheus / Thanos Querier base URL.",
)
@click.option(
    "--token-file",
    envvar="CHARGEBACK_PROMETHEUS_TOKEN_FILE",
    default="/var/run/secrets/kubernetes.io/serviceaccount/token",
    show_default=True,
    help="Bearer token file (re-read per request); ignored when missing.",
)
@click.option(
    "--ca-file",
    envvar="CHARGEBACK_PROMETHEUS_CA_FILE",
    default="/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt",
    show_default=True,
    help="CA bundle for Prometheus TLS; ignored when missing.",
)
@click.option(
    "--ledger",
    "dsn",
    envvar="CHARGEBACK_LEDGER",
    default="sqlite:////var/lib/chargeback/ledger.db",
    show_default=True,
    help=LEDGER_HELP,
)
@click.option(
    "--refresh-seconds",
    envvar="CHARGEBACK_REFRESH_SECONDS",
    default=60.0,
    show_default=True,
    help="How often each report is refreshed (and collected).",
)
@click.option(
    "--bucket",
    envvar="CHARGEBACK_BUCKET",
    default="1h",
    show_default=True,
    help="Collection bucket size.",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    envvar="CHARGEBACK_NAMESPACES",
    help="Watch only these namespaces (repeatable); default: all.",
)
@click.option(
    "--metrics-port",
    envvar="CHARGEBACK_METRICS_PORT",
    default=8080,
    show_default=True,
    help="Port of /metrics, /healthz and /reports.",
)
@click.option("--liveness-port", default=8081, show_default=True, help="kopf liveness probe port.")
@click.option("--history-days", type=click.IntRange(0, 3660), default=62, show_default=True,
              envvar="CHARGEBACK_HISTORY_DAYS",
              help="How far back a new source's history starts (for forecasts).")  # fmt: skip
@infra_options
def run(
    *,
    prometheus_url: str,
    token_file: str,
    ca_file: str,
    dsn: str,
    refresh_seconds: float,
    bucket: str,
    namespaces: tuple[str, ...],
    metrics_port: int,
    liveness_port: int,
    history_days: int,
    **gpu: Any,
) -> None:
    """Run the operator (one replica by design: kopf has no lease-based leader election).

    Every setting is a flag with the environment variable the Helm chart sets.
    """
    parse_bucket(bucket)
    make_infra_source(dict(gpu))  # refuses bad --gpu-* values before anything starts
    # The handlers read their settings from the environment (the timer interval at import):
    # each flag is handed on under its own environment variable.
    os.environ.update(flag_environment(click.get_current_context()))
    if dsn.startswith("sqlite:///"):
        Path(dsn.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Imported here: kopf and the handlers are only needed by this command.
    handlers = importlib.import_module("chargeback.handlers.operator")
    handlers.run_operator(list(namespaces), liveness_port)

"""``chargeback run``: the operator.

Its flags are made from :class:`chargeback.app.settings.OperatorSettings`: one flag per setting,
named after it (a few keep shorter names), with the ``CHARGEBACK_*`` variable the Helm chart sets,
the model's default and its documentation as help. The values become one settings object,
validated before anything starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from chargeback.app.settings import OperatorSettings
from chargeback.cli.common import settings_from, settings_options

SETTINGS = tuple(f for f in OperatorSettings.model_fields if f not in ("data_dir", "pod_namespace"))
"""Every setting is a flag, but the image's data directory and the pod's namespace (environment
only: facts of the deployment)."""


@click.command()
@settings_options(SETTINGS)
@click.option("--liveness-port", default=8081, show_default=True, help="kopf liveness probe port.")
def run(*, liveness_port: int, **_: Any) -> None:
    """Run the operator (one replica by design: kopf has no lease-based leader election).

    Every setting is a flag with the environment variable the Helm chart sets.
    """
    settings = settings_from(click.get_current_context(), SETTINGS)
    dsn = settings.ledger_dsn
    if dsn.startswith("sqlite:///"):
        Path(dsn.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Imported here: kopf and the handlers are only needed by this command.
    handlers = importlib.import_module("chargeback.handlers.operator")
    handlers.run_operator(settings, liveness_port=liveness_port)

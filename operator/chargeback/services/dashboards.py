"""Dashboard provisioning: one dashboard (and its cost-to-value companion) per pricing and source.

Each is one definition rendered for Grafana (ConfigMaps, GrafanaDashboards) and Perses
(PersesDashboards for the OpenShift console), as the settings ask.

Reports sharing a pricing and source share one dashboard: it is written when its inputs change,
and re-checked every few minutes (a deleted ConfigMap comes back).
"""

from __future__ import annotations

import time
from typing import Any

from chargeback.adapters.dashboards import (
    DashboardSettings,
    PricingOwner,
    provision,
    wants_grafana_dashboard,
    wants_perses_dashboard,
)
from chargeback.adapters.kube import object_uid
from chargeback.api.report import UsageReportSpec
from chargeback.domain.dashboards import grafana as grafana_json
from chargeback.domain.infra import InfraSource
from chargeback.domain.names import OBJECT_NAME, fit
from chargeback.domain.perses import dashboard_spec
from chargeback.domain.pricing import PriceVersion
from chargeback.domain.value_dashboard import boards_of

RECHECK_S = 300.0


class DashboardProvisioner:
    """Writes dashboards through the Kubernetes API; remembers what it wrote."""

    def __init__(
        self, api: Any, settings: DashboardSettings, infrastructure: InfraSource | None
    ) -> None:
        self.api = api
        self.settings = settings
        self.infrastructure = infrastructure
        self._written: dict[str, tuple[tuple[str, str, bool, bool], float]] = {}

    def provision(self, spec: UsageReportSpec, current: PriceVersion, metric: str) -> None:
        """Provision the dashboards of this report's pricing and source (if their inputs changed).

        Raises :class:`chargeback.adapters.dashboards.DashboardError` when they cannot be written.
        """
        pricing = spec.pricing_ref.name
        # "-value" is appended for the cost-to-value dashboard: leave room for it.
        name = fit(f"chargeback-{pricing}-{spec.source.source_id()[:8]}", OBJECT_NAME - 6)
        grafana = wants_grafana_dashboard(self.api, self.settings)
        perses = wants_perses_dashboard(self.api, self.settings)
        inputs = (current.digest, metric, grafana, perses)
        last = self._written.get(name)
        if last is not None and last[0] == inputs and time.monotonic() - last[1] < RECHECK_S:
            return
        uid = object_uid(self.api, "tierpricings", pricing)
        if uid is None:
            return
        owner = PricingOwner(pricing, uid)
        boards = boards_of(pricing, current.spec, spec.source, metric, self.infrastructure)
        for suffix, board in boards.items():
            provision(self.api, self.settings, owner, f"{name}{suffix}", grafana_json(board),
                      perses=dashboard_spec(board))  # fmt: skip
        self._written[name] = (inputs, time.monotonic())

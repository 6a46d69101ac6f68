"""Reconciliation of TierPricing and UsageReport: level-based, from current state, idempotent.

Each call computes the object's whole status from the spec, the ledger and Prometheus, and the
exports to write; the kopf handlers only pass objects in and patches out.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chargeback.adapters import metrics
from chargeback.adapters.dashboards import (
    DashboardError,
    DashboardSettings,
    PricingOwner,
    provision,
    wants_grafana_dashboard,
)
from chargeback.adapters.exports import Owner, write_export
from chargeback.adapters.kube import object_uid, openshift_groups
from chargeback.adapters.ledger import Ledger, PricingLedger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusError, PrometheusSettings
from chargeback.api.base import problems
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import DEFAULT_METRICS
from chargeback.domain import buckets
from chargeback.domain.conditions import Cond, merge, ready
from chargeback.domain.dashboards import build_dashboard, build_value_dashboard
from chargeback.domain.infra import InfraSource
from chargeback.domain.periods import Period, is_final, previous_period, report_period
from chargeback.domain.pricing import PriceBook, PriceVersion, spec_digest
from chargeback.domain.reports import iso
from chargeback.domain.selectors import SelectorError, parse_selector
from chargeback.services.collect import CollectError, Collector, CollectorSettings
from chargeback.services.infra import InfraCollector
from chargeback.services.report import Rendered, ReportService

log = logging.getLogger(__name__)

THANOS_QUERIER = "https://thanos-querier.openshift-monitoring.svc:9091"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
STATUS_LIMITS = {"byTier": 64, "byTeam": 50, "byModel": 50}


@dataclass(frozen=True)
class OperatorSettings:
    """Operator settings: flags, environment or Helm values; never tenant input."""

    prometheus: PrometheusSettings
    ledger_dsn: str
    bucket_ms: int = 3_600_000
    refresh_seconds: float = 60.0
    metrics_port: int = 8080
    history_days: int = 62
    """How far back a newly referenced source's history starts (whichever report comes first)."""
    dashboards: DashboardSettings = field(default_factory=DashboardSettings)
    infrastructure: InfraSource | None = field(default_factory=InfraSource)
    """Where GPU allocation and utilisation come from; None: no cost-to-value."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorSettings:
        """Read CHARGEBACK_* variables; defaults suit OpenShift (Thanos Querier, SA token)."""
        env = dict(os.environ if env is None else env)
        token = env.get("CHARGEBACK_PROMETHEUS_TOKEN_FILE", str(SA_DIR / "token"))
        ca = env.get("CHARGEBACK_PROMETHEUS_CA_FILE", str(SA_DIR / "service-ca.crt"))
        data_dir = Path(env.get("CHARGEBACK_DATA_DIR", "/var/lib/chargeback"))
        defaults = InfraSource()
        infrastructure = InfraSource(
            model_label=env.get("CHARGEBACK_GPU_MODEL_LABEL", defaults.model_label),
            product_label=env.get("CHARGEBACK_GPU_PRODUCT_LABEL", defaults.product_label),
            utilization_metric=env.get(
                "CHARGEBACK_GPU_UTILIZATION_METRIC", defaults.utilization_metric
            ),
            resolution_ms=buckets.duration_ms(env.get("CHARGEBACK_GPU_RESOLUTION", "30s")),
            gpu_query=env.get("CHARGEBACK_GPU_QUERY", ""),
            utilization_query=env.get("CHARGEBACK_GPU_UTILIZATION_QUERY", ""),
        )
        return cls(
            infrastructure=infrastructure
            if env.get("CHARGEBACK_GPU_COSTS", "true") == "true"
            else None,
            prometheus=PrometheusSettings(
                url=env.get("CHARGEBACK_PROMETHEUS_URL", THANOS_QUERIER),
                token_file=Path(token) if token and Path(token).exists() else None,
                ca_file=Path(ca) if ca and Path(ca).exists() else None,
                verify_tls=env.get("CHARGEBACK_PROMETHEUS_INSECURE", "") != "true",
            ),
            ledger_dsn=env.get("CHARGEBACK_LEDGER", f"sqlite:///{data_dir / 'ledger.db'}"),
            bucket_ms=buckets.duration_ms(env.get("CHARGEBACK_BUCKET", "1h")),
            refresh_seconds=float(env.get("CHARGEBACK_REFRESH_SECONDS", "60")),
            metrics_port=int(env.get("CHARGEBACK_METRICS_PORT", "8080")),
            history_days=int(env.get("CHARGEBACK_HISTORY_DAYS", "62")),
            dashboards=DashboardSettings(
                namespace=env.get("CHARGEBACK_DASHBOARD_NAMESPACE")
                or env.get("POD_NAMESPACE", "default"),
                label=_pair(env.get("CHARGEBACK_DASHBOARD_LABEL", "grafana_dashboard=1")),
                folder=env.get("CHARGEBACK_DASHBOARD_FOLDER", "Chargeback"),
                grafana_operator=env.get("CHARGEBACK_GRAFANA_OPERATOR", "auto"),
                instance_selector=_pair(
                    env.get("CHARGEBACK_GRAFANA_INSTANCE_SELECTOR", "dashboards=grafana")
                ),
            ),
        )


@dataclass
class ReportOutcome:
    """What a report reconciliation produced: the status patch and events to post."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type Normal|Warning, reason, message)"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Reconciler:
    """Holds the adapters for the operator's lifetime."""

    def __init__(
        self, settings: OperatorSettings, api: Any, clock: Callable[[], int] = _now_ms
    ) -> None:
        self.settings = settings
        self.api = api
        self.clock = clock
        self.prometheus = PrometheusClient(settings.prometheus)
        self.ledger = Ledger(settings.ledger_dsn)
        self.pricing = PricingLedger(self.ledger)
        self.collector = Collector(
            self.prometheus, self.ledger, CollectorSettings(bucket_ms=settings.bucket_ms)
        )
        infra = settings.infrastructure
        self.reports = ReportService(
            self.collector,
            self.ledger,
            InfraCollector(self.prometheus, self.ledger, infra, settings.bucket_ms)
            if infra
            else None,
        )
        self.latest: dict[str, Rendered] = {}
        """The last rendered open period of each report (namespace/name), served over HTTP."""
        self._locks: dict[str, threading.Lock] = {}
        self._provisioned: dict[str, tuple[tuple[str, str, bool], float]] = {}
        self._finals: dict[tuple[str, int], dict[str, Any]] = {}
        self._guard = threading.Lock()

    def close(self) -> None:
        """Release connections."""
        self.prometheus.close()
        self.ledger.close()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # TierPricing -------------------------------------------------------------------------

    def reconcile_pricing(
        self, name: str, spec: dict[str, Any], generation: int, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a new price version if the spec changed; return the status."""
        now = self.clock()
        conditions: list[Cond]
        result: dict[str, Any] = {"observedGeneration": generation}
        try:
            parsed = TierPricingSpec.model_validate(spec)
        except ValidationError as exc:
            conditions = [Cond("Ready", False, "InvalidSpec", problems(exc, "spec."))]
        else:
            effective = buckets.to_ms(parsed.effective_from) if parsed.effective_from else now
            stored = self.pricing.record_version(
                name, parsed.model_dump(mode="json", by_alias=True), spec_digest(parsed),
                effective, now,
            )  # fmt: skip
            result["currentVersion"] = stored.version
            result["effectiveFrom"] = iso(stored.effective_from_ms)
            conditions = [Cond("Ready", True, "VersionRecorded",
                               f"price version {stored.version} in force from "
                               f"{iso(stored.effective_from_ms)}")]  # fmt: skip
            for tier in parsed.tiers:
                metrics.tier_price.labels(name, tier.name, "", parsed.currency).set(
                    float(tier.price)
                )
                for model in tier.models:
                    metrics.tier_price.labels(name, tier.name, model.name, parsed.currency).set(
                        float(model.price)
                    )
        result["conditions"] = merge(
            status.get("conditions") or [], conditions, iso(now), generation
        )
        return result

    def price_book(self, pricing: str) -> PriceBook | None:
        """Every recorded version of a pricing, or None when it has none."""
        versions = [
            PriceVersion(
                number=v.version,
                effective_from_ms=v.effective_from_ms,
                spec=TierPricingSpec.model_validate(v.spec),
                digest=v.digest,
            )
            for v in self.pricing.versions(pricing)
        ]
        return PriceBook(versions) if versions else None

    # UsageReport -------------------------------------------------------------------------

    def reconcile_report(
        self,
        owner: Owner,
        spec: dict[str, Any],
        generation: int,
        status: dict[str, Any],
    ) -> ReportOutcome:
        """Refresh the open period, finalise finished ones, write exports; return the status."""
        now = self.clock()
        outcome = ReportOutcome({"observedGeneration": generation})
        previous = status.get("conditions") or []
        checked = self._check(spec)
        if isinstance(checked[0], str):
            reason, message = checked
            return self._failed(outcome, previous=previous, now=now, generation=generation,
                                reason=reason, message=str(message))  # fmt: skip
        parsed, book = checked
        key = f"{owner.namespace}/{owner.name}"
        groups = openshift_groups(self.api) if parsed.attribution.openshift_groups else None
        period = report_period(parsed, now)
        try:
            # One history start for every report of a source, whichever is reconciled first.
            history = min(_history_start(parsed, period),
                          now - self.settings.history_days * 86_400_000)  # fmt: skip
            with self._lock(parsed.source.source_id()):
                finalized = self._finalize_previous(
                    key=key, spec=parsed, book=book, period=period, now=now, groups=groups,
                    owner=owner, history=history,
                )  # fmt: skip
                rendered = self.reports.render(key, parsed, book, now_ms=now, period=period,
                                               groups=groups, history_start_ms=history)  # fmt: skip
        except PrometheusError as exc:
            outcome.events.append(("Warning", "SourceUnavailable", str(exc)))
            conditions = [Cond("SourceAvailable", False, "PrometheusError", str(exc))]
            outcome.status.update({k: v for k, v in status.items() if k not in ("conditions",)})
            outcome.status["observedGeneration"] = generation
            outcome.status["conditions"] = merge(
                previous,
                [ready(conditions, ["SourceAvailable"]), *conditions],
                iso(now),
                generation,
            )
            return outcome
        except (CollectError, ValueError) as exc:
            return self._failed(
                outcome,
                previous=previous,
                now=now,
                generation=generation,
                reason="CollectionFailed",
                message=str(exc),
            )
        for rendered_final in finalized:
            start = iso(rendered_final.period.start_ms)
            outcome.events.append(("Normal", "Finalized", f"finalised the period starting {start}"))
        exports = write_export(
            self.api, owner, iso(rendered.period.start_ms), rendered.json, rendered.csv
        )
        self.latest[key] = rendered
        try:
            self._dashboards(parsed, book, rendered)
        except DashboardError as exc:
            # The report stands without its dashboard; the event says what to fix.
            log.warning("Could not provision the dashboard of UsageReport %s: %s", key, exc)
            outcome.events.append(("Warning", "DashboardNotProvisioned", str(exc)))
        document = rendered.document
        conditions = self._conditions(document)
        if document["gaps"]:
            outcome.events.append(("Warning", "GapsRecorded", conditions[1].message))
        outcome.status.update(self._summary(key, parsed, document, exports, now))
        outcome.status["conditions"] = merge(
            previous, [ready(conditions, ["SourceAvailable"]), *conditions], iso(now), generation
        )
        self._metrics(owner, document, rendered)
        return outcome

    def _dashboards(self, spec: UsageReportSpec, book: PriceBook, rendered: Rendered) -> None:
        """Provision the dashboard of this report's pricing and source.

        Reports sharing a pricing and source share one dashboard: it is written when its
        inputs change, and re-checked every few minutes (a deleted ConfigMap comes back).
        """
        pricing = spec.pricing_ref.name
        metric = (rendered.collected.metric if rendered.collected else spec.source.metric) or (
            DEFAULT_METRICS[0]
        )
        name = f"chargeback-{pricing}-{spec.source.source_id()[:8]}"
        current = book.at(self.clock()) or book.versions[-1]
        grafana = wants_grafana_dashboard(self.api, self.settings.dashboards)
        inputs = (current.digest, metric, grafana)
        last = self._provisioned.get(name)
        if last is not None and last[0] == inputs and time.monotonic() - last[1] < 300:
            return
        uid = object_uid(self.api, "tierpricings", pricing)
        if uid is None:
            return
        owner = PricingOwner(pricing, uid)
        document = build_dashboard(pricing, current.spec, spec.source, metric)
        provision(self.api, self.settings.dashboards, owner, name, document)
        infra = self.settings.infrastructure
        if infra is not None and current.spec.infrastructure is not None:
            value = build_value_dashboard(pricing, current.spec, spec.source, metric, infra)
            provision(self.api, self.settings.dashboards, owner, f"{name}-value", value)
        self._provisioned[name] = (inputs, time.monotonic())

    def _check(self, spec: dict[str, Any]) -> tuple[UsageReportSpec, PriceBook] | tuple[str, str]:
        """The parsed spec and its prices, or (reason, message) of why the report cannot run."""
        try:
            parsed = UsageReportSpec.model_validate(spec)
            parse_selector(parsed.source.selector)
        except ValidationError as exc:
            return "InvalidSpec", problems(exc, "spec.")
        except SelectorError as exc:
            return "InvalidSelector", str(exc)
        book = self.price_book(parsed.pricing_ref.name)
        if book is None:
            return "PricingNotFound", (f"TierPricing {parsed.pricing_ref.name!r} does not exist "
                                       "or has no accepted price version")  # fmt: skip
        return parsed, book

    def _finalize_previous(
        self,
        *,
        key: str,
        spec: UsageReportSpec,
        book: PriceBook,
        period: Period,
        now: int,
        groups: dict[str, list[str]] | None,
        owner: Owner,
        history: int,
    ) -> list[Rendered]:
        if spec.schedule is None:
            return []
        done = []
        prev = previous_period(period, spec.schedule.interval, spec.schedule.time_zone)
        if is_final(prev, spec, now) and self.pricing.final(key, prev.start_ms) is None:
            rendered = self.reports.render(key, spec, book, now_ms=now, period=prev, groups=groups,
                                           history_start_ms=history)  # fmt: skip
            if rendered.finalized:
                write_export(self.api, owner, iso(prev.start_ms), rendered.json, rendered.csv)
                done.append(rendered)
        return done

    @staticmethod
    def _conditions(document: dict[str, Any]) -> list[Cond]:
        totals = document["totals"]
        gaps = document["gaps"]
        unpriced = totals["unpricedTokens"]
        data = (
            Cond("DataComplete", True, "NoGaps")
            if not gaps
            else Cond("DataComplete", False, "GapsRecorded", "; ".join(
                f"{g['start']} - {g['end']}: {g['reason']}" for g in gaps))
        )  # fmt: skip
        priced = (
            Cond("Priced", True, "AllUsagePriced")
            if not unpriced
            else Cond("Priced", False, "UnpricedUsage",
                      f"{unpriced} tokens have no price (tiers or models missing from the "
                      "pricing, or usage before its first version)")
        )  # fmt: skip
        value = document.get("costToValue") or {"available": False, "reason": "not computed"}
        forecast = document.get("forecast") or {"available": False, "reason": "not computed"}
        insight = [
            Cond("CostToValue", True, "Computed", value["reason"])
            if value["available"]
            else Cond("CostToValue", False, "Unavailable", value["reason"]),
            Cond("Forecast", True, "Computed", forecast.get("reason", ""))
            if forecast["available"]
            else Cond("Forecast", False, "Unavailable", forecast["reason"]),
        ]
        return [Cond("SourceAvailable", True, "Collected"), data, priced, *insight]

    def _summary(
        self,
        key: str,
        spec: UsageReportSpec,
        document: dict[str, Any],
        exports: list[str],
        now: int,
    ) -> dict[str, Any]:
        keep = spec.schedule.keep_finalized if spec.schedule else 1
        finals = [
            {"start": iso(start), "end": iso(end), **self._final_totals(key, start)}
            for start, end in self.pricing.final_periods(key, keep)
        ]
        return summarize(document, spec.top_users, finals, exports, iso(now))

    def _final_totals(self, key: str, start: int) -> dict[str, Any]:
        """Tokens and cost of a finalised period; immutable, so read and parsed once."""
        cached = self._finals.get((key, start))
        if cached is None:
            stored = self.pricing.final(key, start)
            totals = json.loads(stored.document)["totals"] if stored else {"tokens": 0, "cost": "0"}
            cached = {"tokens": totals["tokens"], "cost": totals["cost"]}
            self._finals[(key, start)] = cached
        return cached

    def _metrics(self, owner: Owner, document: dict[str, Any], rendered: Rendered) -> None:
        metrics.forget_report(owner.namespace, owner.name)
        tokens: dict[tuple[str, str, str], int] = {}
        cost: dict[tuple[str, str, str], Decimal] = {}
        for line in document["lines"]:
            dims = (line["team"], line["tier"], line["model"])
            tokens[dims] = tokens.get(dims, 0) + line["tokens"]
            cost[dims] = cost.get(dims, Decimal(0)) + Decimal(line["cost"])
        for dims, value in tokens.items():
            metrics.report_tokens.labels(owner.namespace, owner.name, *dims).set(value)
            metrics.report_cost.labels(owner.namespace, owner.name, *dims,
                                       document["currency"]).set(float(cost[dims]))  # fmt: skip
        metrics.report_unpriced.labels(owner.namespace, owner.name).set(
            document["totals"]["unpricedTokens"]
        )
        ctv, forecast = document.get("costToValue") or {}, document.get("forecast") or {}
        for model in ctv.get("byModel", []) if ctv.get("available") else []:
            metrics.model_infra_cost.labels(owner.namespace, owner.name, model["name"],
                                            document["currency"]).set(
                float(model["infrastructureCost"]))  # fmt: skip
            metrics.model_gpu_hours.labels(owner.namespace, owner.name, model["name"]).set(
                float(model["gpuHours"])
            )
        for model in forecast.get("byModel", []) if forecast.get("available") else []:
            for bound in ("tokens", "lower", "upper"):
                metrics.forecast_tokens.labels(owner.namespace, owner.name, model["name"],
                                               bound).set(model[bound])  # fmt: skip
        if rendered.collected is not None:
            source = rendered.collected.source_id
            metrics.watermark.labels(source).set(rendered.collected.watermark_ms / 1000)
            metrics.lag.labels(source).set(
                max(0, self.clock() - rendered.collected.watermark_ms) / 1000
            )
            metrics.gaps.labels(source).set(len(document["gaps"]))

    def _failed(
        self,
        outcome: ReportOutcome,
        *,
        previous: list[dict[str, Any]],
        now: int,
        generation: int,
        reason: str,
        message: str,
    ) -> ReportOutcome:
        outcome.events.append(("Warning", reason, message))
        outcome.status["conditions"] = merge(
            previous, [Cond("Ready", False, reason, message)], iso(now), generation
        )
        return outcome


def summarize(
    document: dict[str, Any],
    top_users: int,
    finals: list[dict[str, Any]],
    exports: list[str],
    now_iso: str,
) -> dict[str, Any]:
    """The bounded status summary of a document: its size does not grow with users."""
    value, forecast = document.get("costToValue"), document.get("forecast")
    insight: dict[str, Any] = {"costToValue": None, "forecast": None}
    if value and value["available"]:
        keys = ("name", "tokens", "revenue", "infrastructureCost", "margin", "gpuHours",
                "idleGpuHours", "costPerMillionTokens", "meanUtilization")  # fmt: skip
        totals = ("revenue", "infrastructureCost", "idleCost", "margin", "gpuHours",
                  "idleGpuHours")  # fmt: skip
        insight["costToValue"] = {
            "totals": {k: value["totals"][k] for k in totals},
            "byModel": [{k: m[k] for k in keys} for m in value["byModel"][:50]],
        }
    if forecast and forecast["available"]:
        busiest = sorted(forecast["byModel"], key=lambda m: (-m["tokens"], m["name"]))[:50]
        insight["forecast"] = {
            **forecast["period"],
            "total": {"name": "total", **forecast["totals"]},
            "byModel": busiest,
        }
    return {
        **insight,
        "period": document["period"],
        "currency": document["currency"],
        "totals": document["totals"],
        "byTier": document["byTier"][: STATUS_LIMITS["byTier"]],
        "byTeam": document["byTeam"][: STATUS_LIMITS["byTeam"]],
        "byModel": document["byModel"][: STATUS_LIMITS["byModel"]],
        "topUsers": document["topUsersByCost"][:top_users],
        "finalized": finals,
        "exports": exports,
        "lastRefreshTime": now_iso,
    }


def _pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise ValueError(f"expected key=value, got {text!r}")
    return key, value


def _history_start(spec: UsageReportSpec, period: Period) -> int:
    if spec.schedule is None:
        return period.start_ms
    return previous_period(period, spec.schedule.interval, spec.schedule.time_zone).start_ms

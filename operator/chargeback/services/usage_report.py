"""UsageReport reconciliation: level-based, from current state, idempotent.

Each call computes the report's whole status from the spec, the ledger and Prometheus: it
finalises a finished period once, refreshes the open one, writes the exports in every format,
provisions the dashboards and publishes metrics. The kopf handler only passes objects in and the
outcome out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chargeback.adapters.dashboards import DashboardError
from chargeback.adapters.exports import Owner
from chargeback.adapters.prometheus import PrometheusError
from chargeback.api.base import problems
from chargeback.api.report import PeriodSummary, UsageReportSpec, UsageReportStatus
from chargeback.api.scope import UsageScopeSpec
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain.buckets import DAY_MS
from chargeback.domain.conditions import Cond, Reason, Type
from chargeback.domain.money import format_money
from chargeback.domain.periods import Period, is_final, previous_period, report_period
from chargeback.domain.pricing import PriceBook
from chargeback.domain.reports import iso
from chargeback.domain.scopes import Denied, Grant, authorize
from chargeback.domain.selectors import SelectorError, parse_selector
from chargeback.domain.statement import render_statement
from chargeback.services import budgets, report_metrics
from chargeback.services.collect import CollectError
from chargeback.services.dashboards import DashboardProvisioner
from chargeback.services.exports import ExportWriter
from chargeback.services.outcome import Event, Failure, Outcome, outcome, unexpected
from chargeback.services.pricing import PricingReconciler
from chargeback.services.report import Packed, Rendered, ReportService, pack, unpack
from chargeback.services.status import (
    as_patch,
    conditions,
    full_patch,
    gaps_message,
    report_conditions,
    source_reading,
    summarize,
)

log = logging.getLogger(__name__)

Groups = Callable[[], dict[str, list[str]] | None]


@dataclass(frozen=True)
class Tenancy:
    """Where the reconciler learns which usage a namespace may see."""

    scopes: Callable[[], Sequence[tuple[str, UsageScopeSpec]]]
    namespace_labels: Callable[[str], Mapping[str, str]]
    unrestricted: frozenset[str] = frozenset()
    """Namespaces that see all usage without a scope (the operator's own, the admins')."""

    def authorize(self, namespace: str, source: SourceSpec) -> Grant | Denied:
        """The source a report in ``namespace`` may read (scopes read now)."""
        if namespace in self.unrestricted:
            return authorize(source, namespace, {}, [], self.unrestricted)
        labels = self.namespace_labels(namespace)
        return authorize(source, namespace, labels, self.scopes(), self.unrestricted)


@dataclass(frozen=True)
class Checked:
    """A report that can run: its parsed spec (with the source it may read) and prices."""

    spec: UsageReportSpec
    book: PriceBook
    grant: Grant | None = None


@dataclass(frozen=True)
class Invalid:
    """Why a report cannot run as written."""

    reason: Reason
    message: str


class UsageReportReconciler:
    """Reconciles UsageReports; holds the open periods last rendered (served over HTTP)."""

    def __init__(
        self,
        *,
        api: Any,
        reports: ReportService,
        prices: PricingReconciler,
        dashboards: DashboardProvisioner,
        groups: Groups,
        tenancy: Tenancy,
        history_days: int,
        clock: Callable[[], int],
    ) -> None:
        self.api = api
        self.reports = reports
        self.prices = prices
        self.dashboards = dashboards
        self.groups = groups
        self.tenancy = tenancy
        self.history_days = history_days
        self.clock = clock
        self.latest: dict[str, Packed] = {}
        self.exports = ExportWriter(api, reports.collector.settings.bucket_ms)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._final_totals: dict[tuple[str, int], PeriodSummary] = {}
        self._warned: dict[str, tuple[frozenset[str], str]] = {}
        self._rules = budgets.RulesWriter(api, clock)

    def forget(self, key: str) -> None:
        """Drop what is held of a deleted report (its exports go with it: ownerReferences)."""
        self.latest.pop(key, None)
        self.exports.forget(key)

    def current(self, key: str) -> Rendered | None:
        """The open period of report ``namespace/name`` as last rendered."""
        return None if (found := self.latest.get(key)) is None else unpack(found)

    def final(self, key: str, period_start_ms: int) -> Rendered | None:
        """A finalised period of report ``namespace/name``."""
        return self.reports.final(key, period_start_ms)

    def statement(self, key: str, period_start_ms: int | None, team: str | None) -> str | None:
        """The HTML statement of a period (None: the open one) for ``team`` (None: all).

        None when there is no such period, or the team has no usage in it or the one before.
        """
        shown = self.current(key) if period_start_ms is None else self.final(key, period_start_ms)
        if shown is None:
            return None
        before = self.reports.previous_final(key, shown.period.start_ms)
        previous = before.document if before else None
        if team is not None and not any(
            line.team == team for doc in (shown.document, previous) if doc for line in doc.lines
        ):
            return None
        return render_statement(shown.document, team=team, previous=previous,
                                context=self.reports.context)  # fmt: skip

    def reconcile(
        self,
        namespace: str,
        name: str,
        uid: str,
        *,
        spec: Mapping[str, Any],
        generation: int,
        status: Mapping[str, Any],
    ) -> Outcome:
        """Refresh the open period, finalise finished ones, write exports; return the outcome.

        Whatever fails ends as a condition with a readable reason and a retry: no failure
        escapes to freeze the report (a status the API server would refuse is caught here, as
        the status model has the CRD's bounds).
        """
        try:
            result = self._reconcile(Owner(namespace, name, uid), spec, generation, status)
        except Exception as exc:  # every failure becomes a condition
            log.exception("Failed to reconcile UsageReport %s/%s", namespace, name)
            reason, message = unexpected(exc)
            result = _failed(status, generation, self.clock(), failure=Failure.TEMPORARY,
                             reason=reason, message=message)  # fmt: skip
        return self._once(f"{namespace}/{name}", result)

    def _once(self, key: str, result: Outcome) -> Outcome:
        """Warnings once per change of reason, and a failure marked when it is the same again."""
        before, failed_before = self._warned.get(key, (frozenset(), ""))
        repeatable = [e for e in result.events if e.warning and e.deduplicate]
        reasons = frozenset(str(e.reason) for e in repeatable)
        result.events = [
            e for e in result.events if e not in repeatable or str(e.reason) not in before
        ]
        result.repeated = result.failure is not None and result.message == failed_before
        self._warned[key] = (reasons, result.message if result.failure else "")
        return result

    def _reconcile(
        self, owner: Owner, spec: Mapping[str, Any], generation: int, status: Mapping[str, Any]
    ) -> Outcome:
        namespace = owner.namespace
        now = self.clock()
        previous = status.get("conditions") or []
        checked = self._check(spec)
        if isinstance(checked, Invalid):
            # A missing pricing may still come; a spec that cannot work waits for an edit.
            waiting = (Reason.PRICING_NOT_FOUND, Reason.PRICING_INVALID, Reason.PRICING_DELETED)
            kind = Failure.TEMPORARY if checked.reason in waiting else Failure.PERMANENT
            return _failed(status, generation, now, failure=kind, reason=checked.reason,
                           message=checked.message)  # fmt: skip
        grant = self.tenancy.authorize(namespace, checked.spec.source)
        if isinstance(grant, Denied):
            return _unauthorized(status, generation, now, grant)
        checked = Checked(checked.spec.model_copy(update={"source": grant.source}), checked.book,
                          grant)  # fmt: skip
        key = f"{owner.namespace}/{owner.name}"
        try:
            finalized, rendered = self._render(key, owner, checked, now)
        except PrometheusError as exc:
            cond = Cond(Type.SOURCE_AVAILABLE, False, Reason.PROMETHEUS_ERROR, str(exc))
            return _failed(status, generation, now, failure=Failure.TEMPORARY,
                           reason=Reason.PROMETHEUS_ERROR, message=str(exc), detail=cond,
                           event=Reason.SOURCE_UNAVAILABLE)  # fmt: skip
        except (CollectError, ValueError) as exc:
            return _failed(status, generation, now, failure=Failure.TEMPORARY,
                           reason=Reason.COLLECTION_FAILED, message=str(exc))  # fmt: skip
        events = [Event(False, Reason.FINALIZED, f"finalised the period starting "
                        f"{iso(done.period.start_ms)}") for done in finalized]  # fmt: skip
        exports = self.exports.open_period(owner, rendered)
        # Kept small: compressed JSON; HTTP renders other formats again (final: stored bytes).
        self.latest[key] = pack(rendered)
        events += self._provision(key, checked, rendered)
        document = rendered.document
        try:
            semantics = self.reports.collector.prometheus.semantics()
        except PrometheusError:  # gone since the render: the next refresh says so
            semantics = ""
        current = [*report_conditions(document, semantics), _authorized(grant)]
        if document.gaps:
            events.append(Event(True, Reason.GAPS_RECORDED, gaps_message(document)))
        summary = summarize(document, top_users=checked.spec.top_users, exports=exports,
                            finals=self._finals(key, checked.spec), now_ms=now)  # fmt: skip
        found = budgets.readings(checked.spec.budgets, document, status)
        if found:
            current.append(budgets.condition(found, document.currency))
        events += budgets.events(found, document.currency) + self._rules.write(
            owner, checked.spec.budgets
        )
        result = summary.model_copy(update={
            "observed_generation": generation,
            "conditions": conditions(previous, current, now, generation),
            "budgets": budgets.statuses(found, document.currency),
            "source": source_reading(rendered.detected, status),
        })  # fmt: skip
        report_metrics.publish(owner, document, rendered.collected, self.clock(), found)
        return outcome(status, full_patch(result), events=events)

    def _render(
        self, key: str, owner: Owner, checked: Checked, now: int
    ) -> tuple[list[Rendered], Rendered]:
        """Finalise the previous period if it is due, and render the one shown now."""
        spec, book = checked.spec, checked.book
        groups = self.groups() if spec.attribution.openshift_groups else None
        grant = checked.grant
        scope = (grant.scope, grant.selector) if grant is not None and grant.scope else None
        period = report_period(spec, now)
        # One history start for every report of a source, whichever is reconciled first.
        history = min(_history_start(spec, period), now - self.history_days * DAY_MS)
        finalized = []
        with self._lock(spec.source.source_id()):
            previous = _previous(spec, period, now)
            if previous is not None and not self.reports.is_final(key, previous.start_ms):
                done = self.reports.render(key, spec, book, now_ms=now, period=previous,
                                           groups=groups, history_start_ms=history,
                                           scope=scope)  # fmt: skip
                if done.finalized:
                    self.exports.write(owner, done)
                    finalized.append(done)
            rendered = self.reports.render(key, spec, book, now_ms=now, period=period,
                                           groups=groups, history_start_ms=history,
                                           scope=scope)  # fmt: skip
        return finalized, rendered

    def _provision(self, key: str, checked: Checked, rendered: Rendered) -> list[Event]:
        """Dashboards; a failure costs the dashboard only, and an event says what to fix."""
        spec, book = rendered.spec or checked.spec, checked.book
        metric = (rendered.collected.metric if rendered.collected else spec.source.metric) or (
            DEFAULT_METRICS[0]
        )
        try:
            self.dashboards.provision(spec, book.at(self.clock()) or book.versions[-1], metric)
        except DashboardError as exc:
            log.warning("Could not provision the dashboard of UsageReport %s: %s", key, exc)
            return [Event(True, Reason.DASHBOARD_NOT_PROVISIONED, str(exc))]
        return []

    def _check(self, spec: Mapping[str, Any]) -> Checked | Invalid:
        """The parsed spec and its prices, or why the report cannot run."""
        try:
            parsed = UsageReportSpec.model_validate(spec)
            parse_selector(parsed.source.selector)
        except ValidationError as exc:
            return Invalid(Reason.INVALID_SPEC, problems(exc, "spec."))
        except SelectorError as exc:
            return Invalid(Reason.INVALID_SELECTOR, str(exc))
        try:
            book = self.prices.price_book(parsed.pricing_ref.name)
        except ValueError as exc:  # versions recorded before currencies became immutable
            return Invalid(Reason.PRICING_INVALID,
                           f"TierPricing {parsed.pricing_ref.name!r}: {exc}")  # fmt: skip
        if book is not None and not self.prices.exists(parsed.pricing_ref.name):
            return Invalid(Reason.PRICING_DELETED,
                           f"TierPricing {parsed.pricing_ref.name!r} was deleted: nothing new is "
                           "priced; finalised periods stay in the ledger and their exports. "
                           "Recreate it, or point the report at another pricing")  # fmt: skip
        if book is None:
            return Invalid(Reason.PRICING_NOT_FOUND,
                           f"TierPricing {parsed.pricing_ref.name!r} does not exist "
                           "or has no accepted price version")  # fmt: skip
        return Checked(parsed, book)

    def _finals(self, key: str, spec: UsageReportSpec) -> list[PeriodSummary]:
        """The most recent finalised periods in brief; immutable, so read and parsed once."""
        keep = spec.schedule.keep_finalized if spec.schedule else 1
        summaries = []
        for start, _ in self.reports.finals.final_periods(key, keep):
            cached = self._final_totals.get((key, start))
            if cached is None:
                stored = self.reports.final(key, start)
                if stored is None:
                    continue
                document = stored.document
                cached = PeriodSummary.model_validate({
                    "start": iso(document.period.start_ms), "end": iso(document.period.end_ms),
                    "tokens": document.tokens, "cost": _money(stored),
                })  # fmt: skip
                self._final_totals[(key, start)] = cached
            summaries.append(cached)
        return summaries

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def _money(rendered: Rendered) -> str:
    return format_money(rendered.document.cost, rendered.document.currency)


def _failed(
    current: Mapping[str, Any],
    generation: int,
    now: int,
    *,
    failure: Failure,
    reason: Reason,
    message: str,
    detail: Cond | None = None,
    event: Reason | None = None,
) -> Outcome:
    """Ready False (and the failing condition): the last good summary stays as it was."""
    ready = Cond(Type.READY, False, reason, message)
    computed = [ready] if detail is None else [ready, detail]
    status = UsageReportStatus(
        observed_generation=generation,
        conditions=conditions(current.get("conditions") or [], computed, now, generation),
    )
    events = [Event(True, event or reason, message)]
    return outcome(current, as_patch(status), events=events, failure=failure, message=message)


def _authorized(grant: Grant) -> Cond:
    if grant.scope is None:
        message = "an administrators' namespace: all usage"
    elif grant.selector:
        message = f"UsageScope {grant.scope}: usage where {grant.selector}"
    else:
        message = f"UsageScope {grant.scope}: all usage of its source"
    return Cond(Type.AUTHORIZED, True, Reason.GRANTED, message)


def _unauthorized(current: Mapping[str, Any], generation: int, now: int, denied: Denied) -> Outcome:
    """Authorized False, and a summary that shows nothing (what was shown before is withdrawn)."""
    computed = [
        Cond(Type.READY, False, denied.reason, denied.message),
        Cond(Type.AUTHORIZED, False, denied.reason, denied.message),
    ]
    status = UsageReportStatus(
        observed_generation=generation,
        conditions=conditions(current.get("conditions") or [], computed, now, generation),
    )
    events = [Event(True, denied.reason, denied.message)]
    return outcome(current, full_patch(status), events=events, failure=Failure.TEMPORARY,
                   message=denied.message)  # fmt: skip


def _previous(spec: UsageReportSpec, period: Period, now: int) -> Period | None:
    """The period before ``period`` if it is over and past its grace period."""
    if spec.schedule is None:
        return None
    prev = previous_period(period, spec.schedule.interval, spec.schedule.time_zone)
    return prev if is_final(prev, spec, now) else None


def _history_start(spec: UsageReportSpec, period: Period) -> int:
    if spec.schedule is None:
        return period.start_ms
    return previous_period(period, spec.schedule.interval, spec.schedule.time_zone).start_ms

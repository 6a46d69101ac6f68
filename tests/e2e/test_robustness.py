"""Hostile and odd input: no report freezes silently, every failure says why, and recovers.

Each case reproduces a failure found by an adversarial probe, on real components: the API server,
Prometheus (behind a loopback proxy that can answer wrongly or hang), the ledger.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.ledger import Ledger
from chargeback.testing.authproxy import PrometheusProxy
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    Operator,
    OperatorFactory,
    condition,
    get_report,
    local_zone_near_midday,
    wait_for,
    wait_ready,
)
from tests.e2e.test_operator import _iso, create_pricing, pricing_body, report_body

HOUR = 3_600_000


@pytest.fixture
def faulty(live: Live) -> Iterator[PrometheusProxy]:
    with PrometheusProxy(live.prometheus.url) as proxy:
        yield proxy


def _source(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return condition(get_report(api, namespace, name), "SourceAvailable")


@pytest.mark.parametrize("fault", ["wrong", "hang"])
def test_a_prometheus_that_answers_wrongly_or_hangs_is_a_condition_and_recovers(
    operator_factory: OperatorFactory, faulty: PrometheusProxy, live: Live,
    api_client: client.ApiClient, namespace: str, fault: str,
) -> None:  # fmt: skip
    operator_factory(prometheus_url=faulty.url, prometheus_timeout_seconds=1.0)
    pricing = create_pricing(api_client, live, "faulty")
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports",
        report_body("r", pricing, schedule={"interval": "daily"}),
    )  # fmt: skip
    wait_ready(api_client, namespace, "r")
    faulty.fault = fault
    started = time.monotonic()
    down = wait_for(lambda: (c := _source(api_client, namespace, "r")).get("status") == "False"
                    and c, timeout=60, what=f"SourceAvailable=False ({fault})")  # fmt: skip
    # Within a refresh interval (3 s) plus the request's timeout and retries (3 x 1 s), and slack.
    assert time.monotonic() - started < 30
    words = "unexpected shape" if fault == "wrong" else "unreachable"
    assert words in down["message"], down
    faulty.fault = ""
    wait_for(lambda: _source(api_client, namespace, "r").get("status") == "True", timeout=60,
             what="recovery once Prometheus answers again")  # fmt: skip


def test_a_currency_change_is_refused_with_the_reason(
    api_client: client.ApiClient, live: Live, chargeback_crds: None
) -> None:
    name = create_pricing(api_client, live, "currency")
    objects = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as refused:
        objects.patch_cluster_custom_object(GROUP, VERSION, "tierpricings", name,
                                            {"spec": {"currency": "EUR"}})  # fmt: skip
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "spec.currency" in message
    assert "currency cannot change" in message


def test_long_names_make_valid_distinct_exports(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    pricing = create_pricing(api_client, live, "names")
    start, end = live.start_ms + 2 * 3_600_000, live.start_ms + 4 * 3_600_000
    period = {"start": _iso(start), "end": _iso(end)}
    names = ["r" * 253, "r" * 252 + "s"]  # valid names sharing 252 characters
    objects = client.CustomObjectsApi(api_client)
    for name in names:
        body = report_body(name, pricing, period=period)
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
    exports = [wait_ready(api_client, namespace, name)["status"]["exports"] for name in names]
    assert exports[0] != exports[1]
    core = client.CoreV1Api(api_client)
    for name, names_of_exports in zip(names, exports, strict=True):
        config_map = core.read_namespaced_config_map(names_of_exports[0], namespace)
        assert json.loads(config_map.data["report.json"])["report"] == f"{namespace}/{name}"


def test_a_deleted_pricing_says_so_and_keeps_finalised_periods(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    pricing = create_pricing(api_client, live, "gone")
    objects = client.CustomObjectsApi(api_client)
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    body = report_body("r", pricing, schedule=schedule)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
    report = wait_for(lambda: (r := wait_ready(api_client, namespace, "r"))
                      and r["status"].get("finalized") and r, what="a finalised day")  # fmt: skip
    objects.delete_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
    gone = wait_for(lambda: (c := condition(get_report(api_client, namespace, "r"), "Ready"))
                    .get("reason") == "PricingDeleted" and c, timeout=120,
                    what="PricingDeleted")  # fmt: skip
    assert "finalised periods stay" in gone["message"]
    after = get_report(api_client, namespace, "r")["status"]
    assert after["finalized"] == report["status"]["finalized"]


def test_an_invalid_report_warns_once_not_every_refresh(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    pricing = create_pricing(api_client, live, "warn")
    body = report_body("bad", pricing, schedule={"interval": "daily"},
                       source={"selector": 'model=~"("'})  # fmt: skip
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", body
    )
    wait_for(lambda: condition(get_report(api_client, namespace, "bad"), "Ready").get("reason")
             == "InvalidSelector", what="InvalidSelector")  # fmt: skip
    time.sleep(12)  # four refresh intervals

    def warnings() -> list[Any]:
        events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
        return [e for e in events if e.involved_object.name == "bad" and e.type == "Warning"]

    counted = sum(e.count or 1 for e in warnings())
    assert 1 <= counted <= 2, [(e.reason, e.message, e.count) for e in warnings()]


def test_the_endpoint_bounds_its_connections(operator: Operator) -> None:
    import socket  # noqa: PLC0415

    host, port = operator.metrics_url.removeprefix("http://").split(":")
    wait_for(lambda: _up(operator), what="the endpoint up")

    def serving() -> int:
        # The server's connection threads (the operator's own threads come and go beside them:
        # kopf's handlers, timers, collectors).
        return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)

    sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(100)]
    try:
        time.sleep(1)
        assert 0 < serving() <= 64
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: _up(operator), timeout=40, what="the endpoint serves again")


def _up(operator: Operator) -> bool:
    try:
        return operator.get("/healthz", token="")[0] == 200
    except OSError:
        return False


def test_a_status_beyond_the_schemas_old_bounds_still_fits(
    operator_factory: OperatorFactory, prometheus_factory: Callable[..., Any],
    api_client: client.ApiClient, namespace: str,
) -> None:  # fmt: skip
    """A 300-character user label and a cost with 16 integer digits: the report is Ready."""
    start = (int(time.time() * 1000) - 8 * HOUR) // HOUR * HOUR
    user = "x" * 300
    lines = ["# TYPE authorized_hits counter"]
    for minute in range(0, 4 * 60):
        stamp = (start + minute * 60_000) / 1000
        lines.append(f'authorized_hits_total{{user="{user}",tier="free",model="m"}} '
                     f"{minute * 5} {stamp:.3f}")  # fmt: skip
    prometheus = prometheus_factory("\n".join([*lines, "# EOF", ""]))
    operator_factory(prometheus_url=prometheus.url)
    pricing = f"huge-{uuid.uuid4().hex[:6]}"
    body = pricing_body(pricing, {"free": "999999999999"}, _iso(start))
    body["spec"]["tokensPerUnit"] = 1
    objects = client.CustomObjectsApi(api_client)
    objects.create_cluster_custom_object(GROUP, VERSION, "tierpricings", body)
    period = {"start": _iso(start), "end": _iso(start + 3 * HOUR)}
    huge = report_body("huge", pricing, period=period)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", huge)
    status = wait_ready(api_client, namespace, "huge")["status"]
    tokens = 5 * (3 * 60)  # three hours of 5 tokens a minute
    assert status["totals"]["tokens"] == tokens
    assert status["totals"]["cost"] == f"{tokens * 999999999999}.00"  # 15 integer digits
    (top,) = status["topUsers"]
    assert len(top["name"]) == 253
    assert top["name"].endswith("...")
    # The export has the name as the ledger keeps it: whole up to 256 characters, else its head
    # and a hash of the whole (the same on SQLite and PostgreSQL; two long names stay two).
    export = client.CoreV1Api(api_client).read_namespaced_config_map(status["exports"][0],
                                                                     namespace)  # fmt: skip
    stored = json.loads(export.data["report.json"])["lines"][0]["user"]
    assert len(stored) == 256
    assert stored.startswith("x" * 240)
    assert stored != user[:256]


def test_a_spec_larger_than_an_annotation_is_reconciled_and_deletable(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    """Team lists of ~400 KiB: more than the 256 KiB kopf's copy of the spec could take."""
    pricing = create_pricing(api_client, live, "big")
    teams = [{"name": f"team-{t}", "users": [f"user-{t}-{u}-{'x' * 50}" for u in range(60)]}
             for t in range(100)]  # fmt: skip
    body = report_body("big", pricing, schedule={"interval": "daily"},
                       attribution={"teams": teams})  # fmt: skip
    assert len(json.dumps(body)) > 300 * 1024
    objects = client.CustomObjectsApi(api_client)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
    report = wait_ready(api_client, namespace, "big")
    annotations = report["metadata"].get("annotations", {})
    assert sum(len(v) for v in annotations.values()) < 4096
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", "big")

    def gone() -> bool:
        try:
            get_report(api_client, namespace, "big")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, what="the report deleted")


def test_a_ledger_that_cannot_be_written_is_a_condition(
    operator_factory: OperatorFactory, live: Live, api_client: client.ApiClient, tmp_path: Path
) -> None:
    """A read-only ledger (as a full or read-only volume makes it): a readable condition."""
    path = tmp_path / "readonly.db"
    Ledger(f"sqlite:///{path}").close()  # created and migrated, then only readable
    operator_factory(ledger=f"sqlite:///file:{path}?mode=ro&uri=true")
    pricing = create_pricing(api_client, live, "readonly")
    objects = client.CustomObjectsApi(api_client)

    def ready() -> dict[str, Any]:
        body = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
        return condition(body, "Ready")

    cond = wait_for(lambda: (c := ready()) and c.get("status") == "False" and c,
                    what="the pricing's Ready=False")  # fmt: skip
    assert cond["reason"] == "LedgerUnavailable"
    assert "readonly" in cond["message"]

    def event() -> str:
        events = client.CoreV1Api(api_client).list_namespaced_event("default").items
        return next((e.message for e in events if e.reason == "LedgerUnavailable"
                     and e.involved_object.name == pricing), "")  # fmt: skip

    assert "readonly" in wait_for(event, timeout=30, what="a LedgerUnavailable event")

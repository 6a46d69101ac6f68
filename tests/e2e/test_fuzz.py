"""Fuzzing the API against the running operator: whatever the API server accepts gets an answer.

Hypothesis writes UsageReports from every corner of the spec (odd selectors, metrics that do not
exist, label mappings, zones, periods in the future or before the data, missing pricings). Each
one the API server accepts must reach a status with a Ready condition, within two refresh
intervals plus the time a first collection of a new source may take. `make test` tries
FUZZ_EXAMPLES (default 12) reports; `make fuzz` many more.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import GROUP, VERSION, Live, Operator, condition, get_report
from tests.e2e.test_operator import _iso, create_pricing

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
FIRST_COLLECTION_S = 30.0
"""A new source's first collection (its history bootstrapped) may take this long on this machine."""

label = st.sampled_from(["user", "tier", "model", "cost_center", "pod", "x_1", "subscription"])
selectors = st.one_of(
    st.sampled_from(['model!=""', "", 'tier="free"', 'tier=~"free|premium"', 'user!~"bot.*"',
                     'model="no-such-model"', 'tier="a\\"b"', "cost_center=\"\"", "{}"]),
    st.text(alphabet='abz_=!~"{}()|.*, \\', max_size=30),
)  # fmt: skip
sources = st.fixed_dictionaries({}, optional={
    "selector": selectors,
    "metric": st.sampled_from(["authorized_hits", "authorized_hits_total", "no_such_metric",
                               "limited_calls"]),
    "labels": st.fixed_dictionaries({}, optional={"user": label, "tier": label, "model": label}),
    "extraLabels": st.lists(label, max_size=3, unique=True),
})  # fmt: skip
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata",
                         "Pacific/Chatham", "Etc/GMT+12"])  # fmt: skip
schedules = st.fixed_dictionaries(
    {"interval": st.sampled_from(["daily", "weekly", "monthly"])},
    optional={"timeZone": zones, "keepFinalized": st.integers(1, 120),
              "gracePeriod": st.sampled_from(["0s", "1h", "1d"])},
)  # fmt: skip


def _period(draw: st.DrawFn, live: Live) -> dict[str, str]:
    start = live.start_ms + draw(st.integers(-200, 300)) * 3_600_000
    hours = draw(st.integers(1, 400))
    return {"start": _iso(start), "end": _iso(start + hours * 3_600_000)}


@st.composite
def specs(draw: st.DrawFn, live: Live, pricing: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "pricingRef": {"name": draw(st.sampled_from([pricing, pricing, "no-such-pricing"]))},
        "source": draw(sources),
        "topUsers": draw(st.integers(1, 50)),
    }
    if draw(st.booleans()):
        spec["schedule"] = draw(schedules)
    else:
        spec["period"] = _period(draw, live)
    extra = spec["source"].get("extraLabels", [])
    if extra and draw(st.booleans()):
        spec["attribution"] = {"teamLabel": draw(st.sampled_from(extra))}
    return spec


def test_every_accepted_report_gets_conditions(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    pricing = create_pricing(api_client, live, "fuzz")
    objects = client.CustomObjectsApi(api_client)
    counts = {"accepted": 0, "refused": 0}
    budget = 2 * operator.settings.refresh_seconds + FIRST_COLLECTION_S

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(spec=specs(live, pricing))
    def check(spec: dict[str, Any]) -> None:
        name = f"f{counts['accepted'] + counts['refused']}"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageReport",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        try:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
        except ApiException as exc:
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert refused.status in (400, 422), refused.body  # refused with a reason, never 500
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        deadline = time.monotonic() + budget
        ready: dict[str, Any] = {}
        while time.monotonic() < deadline and not ready:
            ready = condition(get_report(api_client, namespace, name), "Ready")
            time.sleep(0.5)
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", name)
        assert ready, f"no Ready condition within {budget:.0f} s for {spec}"
        assert ready["reason"], ready
        assert ready["status"] == "True" or ready["message"], ready

    check()
    print(f"fuzz: {counts['accepted']} accepted and reconciled, {counts['refused']} refused")
    assert counts["accepted"] > 0

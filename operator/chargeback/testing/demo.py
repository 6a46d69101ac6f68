"""The local demo, checked against the simulator's ground truth.

A control plane, Prometheus with simulated gateway traffic, the operator, the sample resources,
and the report printed and compared with the truth priced independently.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client
from rich.console import Console

from chargeback.api.common import GROUP, VERSION
from chargeback.render import render_table
from chargeback.testing.kube import GROUP_CRD, ControlPlane, apply_crds, create_group, install_crds
from chargeback.testing.pictures import draw
from chargeback.testing.process import ManagedProcess, free_port
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.serving import Deployment, ServingScenario, simulate_serving
from chargeback.testing.simulator import HOUR_MS, Scenario, Simulation, simulate
from chargeback.testing.tools import binary

NAMESPACE = "chargeback"
# The demo's teams, as OpenShift Groups (the sample report reads Groups prefixed "team-").
TEAMS = ("team-research", "team-support", "team-product", "team-finance")


def checkout() -> Path:
    """The repository checkout whose CRDs and samples the demo applies."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "crds").is_dir() and (candidate / "docs" / "examples").is_dir():
            return candidate
    raise RuntimeError(
        "the demo applies the CRDs and samples of a checkout of the repository: "
        "run it from the checkout's root (make demo)"
    )


@dataclass(frozen=True)
class DemoOptions:
    """How big a demo to run and whether to wait for Ctrl-C at the end."""

    output: Path
    hours: int = 72
    users: int = 60
    wait: bool = True


def iso(t_ms: int) -> str:
    """UTC ISO 8601."""
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected(sim: Simulation, pricing: dict[str, Any], start: int, end: int) -> tuple[int, str]:
    """Tokens and cost of [start, end), priced by hand from the TierPricing and the truth."""
    tiers = {t["name"]: t for t in pricing["spec"]["tiers"]}
    unit = pricing["spec"].get("tokensPerUnit", 1000)
    allowance: dict[tuple[str, str], int] = {}
    exact: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    tokens = 0
    for (user, tier, model, _), count in sorted(
        sim.truth(start, end).items(), key=lambda item: (item[0][3], item[0])
    ):
        tokens += count
        if tier not in tiers:
            continue
        entry = tiers[tier]
        price = next((Decimal(m["price"]) for m in entry.get("models", []) if m["name"] == model),
                     Decimal(entry["price"]))  # fmt: skip
        left = allowance.setdefault((user, tier), entry.get("includedTokens", 0))
        free = min(left, count)
        allowance[(user, tier)] = left - free
        exact[(user, tier, model)] += Decimal(count - free) * price / unit
    cost = sum((v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for v in exact.values()),
               Decimal(0))  # fmt: skip
    return tokens, str(cost)


def _wait(what: str, predicate: Callable[[], Any], console: Console, timeout: float = 300) -> Any:
    with console.status(what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(1)
    raise RuntimeError(f"timed out: {what}")


def run_demo(options: DemoOptions, console: Console) -> bool:
    """Run the demo; return whether the report matched the ground truth."""
    root = checkout()
    options.output.mkdir(parents=True, exist_ok=True)
    # Each run has its own state, so a second `make demo` never touches a running one's.
    workdir = options.output / "runs" / time.strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    start = (now - options.hours * HOUR_MS) // HOUR_MS * HOUR_MS
    scenario = Scenario(
        start_ms=start, hours=options.hours, users=options.users, replicas=2, seed=42,
        restarts=((0, start + (options.hours // 2) * HOUR_MS + 90_000),),
    )  # fmt: skip
    with ExitStack() as stack:
        console.rule("[b]chargeback-operator demo")
        what = f"{options.hours} h of gateway traffic for {options.users} users"
        with console.status(f"Simulating {what} (3 tiers, 5 models, 2 Limitador replicas)"):
            sim = simulate(scenario)
            serving = simulate_serving(_serving(start, options.hours))
            om = sim.write_openmetrics(options.output / "traffic.om", serving.openmetrics())
        console.print(f"Simulated {sum(len(v) for v in sim.samples.values()):,} samples, one "
                      "Limitador restart; Prometheus backfilled with promtool")  # fmt: skip
        prometheus = PrometheusServer(workdir / "prometheus", openmetrics=om)
        stack.callback(prometheus.stop)
        prometheus.start()
        console.print(f"Prometheus on {prometheus.url}")
        with console.status("Starting etcd, kube-apiserver and kube-controller-manager"):
            plane = ControlPlane(workdir / "kube")
            stack.callback(plane.stop)
            access = plane.start()
        console.print(f"Control plane on {access.server}; kubeconfig {access.kubeconfig}")
        api = client.ApiClient(_configuration(access.server, access.ca_file, access.admin_token))
        install_crds(api, root / "crds")
        _create_teams(api, sim, console)
        env = {**os.environ, "KUBECONFIG": str(access.kubeconfig)}
        metrics_port = free_port()
        operator = ManagedProcess("operator", [
            sys.executable, "-m", "chargeback", "run", "--prometheus-url", prometheus.url,
            "--token-file", "", "--ca-file", "", "--refresh-seconds", "10",
            "--ledger", f"sqlite:///{(workdir / 'ledger.db').resolve()}",
            "--metrics-port", str(metrics_port), "--liveness-port", str(free_port()),
        ], workdir / "operator.log", env={**env, "CHARGEBACK_GPU_RESOLUTION": "60s"})  # fmt: skip
        stack.callback(operator.stop)
        operator.start()
        console.print(f"Operator running (log: {workdir / 'operator.log'}; metrics: "
                      f"http://127.0.0.1:{metrics_port}/metrics)")  # fmt: skip
        pricing = _apply_examples(api, root, start)
        report = _wait("Waiting for the operator to reconcile the reports",
                       lambda: _ready(api, "monthly"), console)  # fmt: skip
        ok = _show(api, access.kubeconfig, sim, pricing, report=report, output=options.output,
                   console=console)  # fmt: skip
        scraper = PrometheusServer(
            workdir / "scraper",
            scrape_targets=[f"127.0.0.1:{metrics_port}"],
            scrape_token=access.admin_token,
        )
        stack.callback(scraper.close)
        scraper.start()
        _dashboards(api, prometheus.url, scraper.url, options, console)
        ok = _budget(api, access.kubeconfig, report, scraper.url, console) and ok
        if options.wait:
            _keep_running(operator, access.kubeconfig, console)
        return ok


def _keep_running(operator: ManagedProcess, kubeconfig: Path, console: Console) -> None:
    """Wait for Ctrl-C (or the operator's end) with the stack up."""
    hint = f"KUBECONFIG={kubeconfig} kubectl get usagereports -A"
    console.print(f"\nThe stack keeps running. Try: [b]{hint}[/b]")
    console.print("Press Ctrl-C to stop and clean up.")
    try:
        while operator.running():
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("Stopping.")


def _serving(start: int, hours: int) -> ServingScenario:
    """GPU serving pods of the five models (plus one nobody calls), for cost to value."""
    half = hours // 2 * HOUR_MS
    return ServingScenario(
        start_ms=start, hours=hours, scrape_interval_ms=60_000,
        deployments=(
            Deployment("granite-3-8b", "NVIDIA-L40S", 1, ((0, None), (half, None))),
            Deployment("llama-3-70b", "NVIDIA-A100-SXM4-80GB", 4, ((0, None),), utilization=75),
            Deployment("mistral-7b", "NVIDIA-L40S", 1, ((0, None),)),
            Deployment("qwen-2-72b", "NVIDIA-H100-80GB-HBM3", 2, ((0, None),), utilization=45),
            Deployment("phi-3-mini", "NVIDIA-L40S", 1, ((0, None),), utilization=30),
            Deployment("deepseek-r1", "NVIDIA-H100-80GB-HBM3", 8, ((0, half),), utilization=3),
        ),
    )  # fmt: skip


def _dashboards(
    api: client.ApiClient, usage_url: str, billing_url: str, options: DemoOptions,
    console: Console,
) -> None:  # fmt: skip
    """Save the dashboards the operator provisioned, and draw them from the same queries."""
    scraped = "count(chargeback_report_tokens)"
    _wait("Waiting for Prometheus to scrape the operator's metrics",
          lambda: _has_data(billing_url, scraped), console, 60)  # fmt: skip
    maps = client.CoreV1Api(api).list_namespaced_config_map(
        "default", label_selector="chargeback.dev/pricing"
    )
    folder = options.output / "dashboards"
    folder.mkdir(parents=True, exist_ok=True)
    for cm in maps.items:
        name = (cm.metadata.name if cm.metadata else None) or "dashboard"
        document = json.loads((cm.data or {})["dashboard.json"])
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2))
        picture = draw(document, lambda q: billing_url if "chargeback_" in q else usage_url,
                       time.time(), 24, folder / f"{name}.png")  # fmt: skip
        console.print(f"Dashboard {folder / name}.json (provisioned as ConfigMap default/{name}); "
                      f"picture {picture}")  # fmt: skip


def _budget(
    api: client.ApiClient, kubeconfig: Path, report: dict[str, Any], scraper_url: str,
    console: Console,
) -> bool:  # fmt: skip
    """A budget crossing its warning threshold: status, events and the metric alerts read.

    The sample's report-wide budget is set so that this demo's spending is 85% of it.
    """
    console.rule("A budget crossing its warning threshold")
    cost = Decimal(report["status"]["totals"]["cost"])
    if cost <= 0:
        console.print("Nothing spent yet in this month: no budget to cross.")
        return True
    amount = str((cost / Decimal("0.85")).quantize(Decimal("0.01")))
    objects = client.CustomObjectsApi(api)
    body = cast("dict[str, Any]", objects.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "usagereports", "monthly"))  # fmt: skip
    budget = body["spec"]["budgets"][0]
    budget["amount"] = amount
    objects.replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "usagereports",
                                             "monthly", body)  # fmt: skip
    console.print(f"kubectl edit usagereport monthly: budget {budget['name']} amount {amount} "
                  f"(this month has spent {cost})")  # fmt: skip

    def warned() -> dict[str, Any] | None:
        status = _ready(api, "monthly") or {}
        entries = status.get("status", {}).get("budgets", [])
        return next((b for b in entries if b["name"] == budget["name"]
                     and b["amount"] == amount and 80 in b["crossed"]), None)  # fmt: skip

    entry = _wait("Waiting for the budget's status", warned, console, 120)
    console.print(f"status.budgets ({budget['name']}): {entry['spent']} of {entry['amount']} "
                  f"spent ({entry['percent']}%), state {entry['state']}, "
                  f"crossed {entry['crossed']}")  # fmt: skip
    query = f'chargeback_budget_spent{{report="monthly",budget="{budget["name"]}"}}'
    _wait("Waiting for Prometheus to scrape the budget's metric",
          lambda: _has_data(scraper_url, urllib.parse.quote(query)), console, 60)  # fmt: skip
    console.print(f"Metric {query} scraped (what `chargeback alerts` rules compare)")
    events = _wait("Waiting for the events", lambda: _budget_events(kubeconfig), console, 60)
    console.print(events, highlight=False)
    return bool(entry["state"] == "warning")


def _budget_events(kubeconfig: Path) -> str | None:
    listed = subprocess.run([str(binary("kubectl")), "--kubeconfig", str(kubeconfig), "get",
                             "events", "-n", NAMESPACE, "--field-selector",
                             "reason=BudgetThresholdReached", "-o",
                             "custom-columns=REASON:.reason,MESSAGE:.message"],
                            capture_output=True, text=True, check=False).stdout  # fmt: skip
    return listed if "reached 80%" in listed else None


def _has_data(url: str, query: str) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={query}", timeout=10) as response:  # noqa: S310
        return bool(json.load(response)["data"]["result"])


def _configuration(server: str, ca_file: Path, token: str) -> client.Configuration:
    config = client.Configuration()
    config.host = server
    config.ssl_ca_cert = str(ca_file)
    config.api_key = {"authorization": f"Bearer {token}"}
    return config


def _create_teams(api: client.ApiClient, sim: Simulation, console: Console) -> None:
    """OpenShift Groups for the demo's teams; every eighth simulated user stays in none."""
    apply_crds(api, [GROUP_CRD])
    users = sorted({key[1][0] for key in sim.samples})
    members: dict[str, list[str]] = {team: [] for team in TEAMS}
    for index, user in enumerate(users):
        if index % 8 != 7:
            members[TEAMS[index % len(TEAMS)]].append(user)
    for team, names in members.items():
        create_group(api, team, names)
    sizes = ", ".join(f"{team} ({len(names)} users)" for team, names in members.items())
    console.print(f"OpenShift Groups for team attribution: {sizes}")


def _apply_examples(api: client.ApiClient, root: Path, start: int) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    pricing: dict[str, Any] = yaml.safe_load((root / "docs/examples/tierpricing.yaml").read_text())
    # The sample prices apply from the start of the simulated history.
    pricing["spec"]["effectiveFrom"] = iso(start)
    objects.create_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
    # The platform team's namespace sees all usage (granted as a cluster administrator would).
    for scope in yaml.safe_load_all((root / "docs/examples/usagescope.yaml").read_text()):
        objects.create_cluster_custom_object(GROUP, VERSION, "usagescopes", scope)
    namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
    client.CoreV1Api(api).create_namespace(namespace)
    monthly = yaml.safe_load((root / "docs/examples/usagereport-monthly.yaml").read_text())
    objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "usagereports", monthly)
    daily = {**monthly, "metadata": {"name": "daily", "namespace": NAMESPACE}}
    daily["spec"] = {**monthly["spec"], "schedule": {"interval": "daily", "timeZone": "UTC"}}
    objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "usagereports", daily)
    return pricing


def _ready(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    report = cast(
        "dict[str, Any]",
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "usagereports", name
        ),
    )
    conditions = report.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return report if ready and report["status"].get("exports") else None


def _show(
    api: client.ApiClient, kubeconfig: Path, sim: Simulation, pricing: dict[str, Any], *,
    report: dict[str, Any], output: Path, console: Console,
) -> bool:  # fmt: skip
    table = subprocess.run([str(binary("kubectl")), "--kubeconfig", str(kubeconfig), "get",
                            "tierpricings,usagereports", "-A"], capture_output=True, text=True,
                           check=False)  # fmt: skip
    console.rule("kubectl get tierpricings,usagereports -A")
    console.print(table.stdout or table.stderr, highlight=False)
    core = client.CoreV1Api(api)
    exports = core.list_namespaced_config_map(NAMESPACE, label_selector="chargeback.dev/report")
    for cm in exports.items:
        data, name = cm.data or {}, cm.metadata.name if cm.metadata else "export"
        (output / f"{name}.json").write_text(data.get("report.json", ""))
        (output / f"{name}.csv").write_text(data.get("report.csv", ""))
    export = core.read_namespaced_config_map(report["status"]["exports"][0], NAMESPACE)
    document = json.loads((export.data or {})["report.json"])
    console.rule("The monthly report (open period, live)")
    render_table(document, console)
    period_start = int(dt.datetime.fromisoformat(document["period"]["start"]).timestamp() * 1000)
    through = int(dt.datetime.fromisoformat(document["dataThrough"]).timestamp() * 1000)
    want = expected(sim, pricing, period_start, -(-through // HOUR_MS) * HOUR_MS)
    got = (document["totals"]["tokens"], document["totals"]["cost"])
    console.rule("Check")
    if got == want:
        amount = f"{got[0]:,} tokens, {got[1]} {document['currency']}"
        console.print(f"[green]The report equals the simulator's ground truth: {amount} "
                      "(priced independently by the demo).[/green]")  # fmt: skip
    else:
        console.print(f"[red]Mismatch: report {got}, ground truth {want}[/red]")
    console.print(f"Exports (JSON and CSV of every period) are in {output}/; the ledger, logs and "
                  f"state of this run in {output}/runs/")  # fmt: skip
    return got == want

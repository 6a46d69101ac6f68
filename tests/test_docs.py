"""Every command a user is told to run in README.md and docs/ is exercised by a named test.

The list below maps each documented command to the test that runs it; this test fails when a
document gains a command nobody exercises, or a mapping points at a missing test. The README's
blocks are run here as their literal text, by bash, from the root of a fresh clone, with the
wheel installed without extras on PATH; only what a reader replaces by their own values (the
Prometheus address, the state directory) is substituted, and the substitutions are listed.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.cli import main
from chargeback.testing.demo import expected
from chargeback.testing.kube import ClusterAccess
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS, Scenario, Simulation, simulate
from chargeback.testing.tools import bin_dir
from tests.conftest import CleanInstall, Live
from tests.e2e.conftest import GROUP, VERSION, exported_document, wait_ready
from tests.e2e.test_operator import ms

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

BUILD_ROUTE = "tests.e2e.test_release::test_openshift_build_route_renders_the_image_it_builds"
RELEASE_ROUTE = "::".join(
    [
        "tests.node.test_chart_on_node",
        "test_release_installs_from_the_registry_on_a_node_to_exact_totals",
    ]
)

EXERCISED_BY = {
    "make demo": "tests.e2e.test_install::test_make_demo_from_a_fresh_clone",
    "make test": ".ci/run",
    "make venv tools": ".ci/run",
    "make bench": "benchmarks.run::main",
    "kubectl apply -f crds/": "tests.test_docs::test_readme_cluster_commands_as_written",
    "chargeback run": "tests.test_docs::test_readme_cluster_commands_as_written",
    "kubectl apply -f docs/examples/": "tests.test_docs::test_readme_cluster_commands_as_written",
    "kubectl create namespace": "tests.test_docs::test_readme_cluster_commands_as_written",
    "kubectl get tierpricings,usagereports": "tests.test_docs::"
    "test_readme_cluster_commands_as_written",
    "chargeback report": "tests.test_docs::test_readme_prometheus_commands_as_written",
    "chargeback collect": "tests.test_docs::test_readme_prometheus_commands_as_written",
    "chargeback ledger show": "tests.test_docs::test_readme_prometheus_commands_as_written",
    "chargeback alerts": "tests.test_docs::test_budget_rule_commands_as_written",
    "chargeback statement": "tests.test_docs::test_finance_commands_as_written",
    "chromium --headless": "tests.test_docs::test_finance_commands_as_written",
    "promtool check rules": "tests.test_docs::test_budget_rule_commands_as_written",
    # docs/install-openshift.md: route (a) cannot run here (no OpenShift); its image is rendered.
    "oc new-project": BUILD_ROUTE,
    "oc new-build": BUILD_ROUTE,
    "oc patch bc/": BUILD_ROUTE,
    "oc start-build": BUILD_ROUTE,
    "helm install chargeback charts/": BUILD_ROUTE,
    # Route (b) runs on a real node, from a real registry.
    "REGISTRY=": RELEASE_ROUTE,
    "make release": RELEASE_ROUTE,
    "helm install chargeback oci://": RELEASE_ROUTE,
}


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every line of every ```sh block, continuations joined."""
    found = []
    for document in DOCUMENTS:
        for block in re.findall(r"```sh\n(.*?)```", document.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split("#")[0].strip()
                if command:
                    found.append((document.name, command))
    return found


def test_every_documented_command_is_exercised() -> None:
    commands = documented_commands()
    assert len(commands) >= 10
    unmapped = [c for c in commands if not any(c[1].startswith(p) for p in EXERCISED_BY)]
    assert unmapped == []
    for target in EXERCISED_BY.values():
        if target == ".ci/run":
            assert "make test" in (ROOT / ".ci" / "run").read_text()
            continue
        module, name = target.split("::")
        assert hasattr(importlib.import_module(module), name), target


def test_ledger_show_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ledger", "show", "--ledger", f"sqlite:///{tmp_path}/l.db"])
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(main, ["ledger", "show", "--ledger", f"sqlite:///{tmp_path}/l.db",
                                        "--source-id", "nope"])  # fmt: skip
    assert missing.exit_code == 1
    assert "no source 'nope' in the ledger" in missing.output


# What a reader replaces by their own values; everything else runs as written.
READER_VALUES = {
    "https://thanos-querier.openshift-monitoring.svc:9091": "{prometheus}",
    "http://prometheus:9090": "{prometheus}",
    "sqlite:////var/lib/chargeback/": "sqlite:///{state}/",
}


def readme_block(first_command: str, document: str = "README.md") -> str:
    """The ```sh block of ``document`` (the README) that starts with ``first_command``."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / document).read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_command)]
    return block


def as_a_reader(block: str, **values: str) -> str:
    for written, mine in READER_VALUES.items():
        block = block.replace(written, mine.format(**values))
    return block


def reader_env(clean_install: CleanInstall, **extra: str) -> dict[str, str]:
    path = f"{clean_install.bin}:{bin_dir()}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "COLUMNS": "160", **extra}


def test_readme_cluster_commands_as_written(
    clean_install: CleanInstall,
    fresh_clone: Path,
    live: Live,
    cluster: ClusterAccess,
    api_client: client.ApiClient,
    chargeback_crds: None,
    tmp_path: Path,
) -> None:
    script = as_a_reader(
        readme_block("kubectl apply -f crds/"), prometheus=live.prometheus.url, state=str(tmp_path)
    )
    env = reader_env(clean_install, KUBECONFIG=str(cluster.kubeconfig))
    objects = client.CustomObjectsApi(api_client)
    with (tmp_path / "out.log").open("w") as log:
        shell = subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=fresh_clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert shell.wait(timeout=120) == 0, (tmp_path / "out.log").read_text()
        out = (tmp_path / "out.log").read_text()
        created = ("tierpricing.chargeback.dev/maas-default", "namespace/chargeback",
                   "usagescope.chargeback.dev/platform",
                   "usagereport.chargeback.dev/monthly")  # fmt: skip
        for line in (f"{name} created" for name in created):
            assert line in out, out
        # The operator started by the block (`chargeback run ... &`) makes the report Ready.
        report = wait_ready(api_client, "chargeback", "monthly")
        document = exported_document(api_client, "chargeback", report)
        through = -(-ms(document["dataThrough"]) // HOUR_MS) * HOUR_MS
        truth = live.sim.truth(ms(document["period"]["start"]), through)
        assert report["status"]["totals"]["tokens"] == sum(truth.values()) > 0
        table = subprocess.run(["kubectl", "get", "usagereports", "-n", "chargeback"], env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "monthly" in table
        assert "True" in table
    finally:
        # The operator the block started releases its finalizers, then it is stopped.
        args = (GROUP, VERSION, "chargeback", "usagereports", "monthly")
        _delete(objects.delete_namespaced_custom_object, objects.get_namespaced_custom_object, args)
        for plural, name in (("tierpricings", "maas-default"), ("usagescopes", "platform"),
                             ("usagescopes", "research")):  # fmt: skip
            args = (GROUP, VERSION, plural, name)
            _delete(objects.delete_cluster_custom_object, objects.get_cluster_custom_object, args)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
        client.CoreV1Api(api_client).delete_namespace("chargeback")


def _delete(delete: Callable[..., Any], get: Callable[..., Any], args: tuple[str, ...]) -> None:
    """Delete an object and wait until it is gone (its finalizer released)."""
    with contextlib.suppress(ApiException):
        delete(*args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(*args)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    raise AssertionError(f"{args[-2]}/{args[-1]} was not deleted within 60 s (finalizer kept)")


def fixed_example_traffic(tmp_path: Path) -> tuple[Simulation, Path]:
    """Simulated MaaS-style traffic in the pilot week of docs/examples/usagereport-fixed.yaml:
    users in the `subscription` label, teams in `cost_center`."""
    example = yaml.safe_load((ROOT / "docs/examples/usagereport-fixed.yaml").read_text())
    start = ms(example["spec"]["period"]["start"]) - 6 * HOUR_MS
    hours = (ms(example["spec"]["period"]["end"]) - start) // HOUR_MS + 6
    sim = simulate(Scenario(start_ms=start, hours=hours, users=12, replicas=2, seed=11,
                            metric=example["spec"]["source"]["metric"],
                            restarts=((1, start + 50 * HOUR_MS + 60_000),)))  # fmt: skip
    users = sorted({key[1][0] for key in sim.samples})
    teams = {user: f"cc-{100 + index % 3}" for index, user in enumerate(users)}
    path = tmp_path / "fixed.om"
    with path.open("w") as out:
        for line in sim.openmetrics():
            line = re.sub(  # noqa: PLW2901
                r'user="([^"]+)"',
                lambda m: f'subscription="{m[1]}",cost_center="{teams[m[1]]}"',
                line,
            )
            out.write(line + "\n")
    return sim, path


def test_readme_prometheus_commands_as_written(
    clean_install: CleanInstall,
    fresh_clone: Path,
    prometheus_factory: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    sim, openmetrics = fixed_example_traffic(tmp_path)
    prometheus = prometheus_factory(openmetrics)
    script = as_a_reader(readme_block("chargeback report"), prometheus=prometheus.url, state="")
    for leftover in ("chargeback.csv", "ledger.db"):
        (fresh_clone / leftover).unlink(missing_ok=True)
    run = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=fresh_clone,
        capture_output=True,
        text=True,
        timeout=600,
        env=reader_env(clean_install),
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    example = yaml.safe_load((ROOT / "docs/examples/usagereport-fixed.yaml").read_text())
    period = (ms(example["spec"]["period"]["start"]), ms(example["spec"]["period"]["end"]))
    pricing = yaml.safe_load((ROOT / "docs/examples/tierpricing.yaml").read_text())
    tokens, cost = expected(sim, pricing, *period)
    with (fresh_clone / "chargeback.csv").open() as csv_file:
        rows = list(csv.DictReader(csv_file))
    assert sum(int(r["tokens"]) for r in rows) == tokens > 0
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal(cost)
    assert {r["team"] for r in rows} == {"cc-100", "cc-101", "cc-102"}
    # `ledger show --by model` prints what `collect` kept: every model of the pilot week.
    models = {key[1][2] for key in sim.samples if key[1][2]}
    assert all(model in run.stdout for model in models), run.stdout


def test_budget_rule_commands_as_written(
    clean_install: CleanInstall, fresh_clone: Path, tmp_path: Path
) -> None:
    """docs/budgets.md's rule file commands, typed at the clone's root with the installed CLI."""
    script = readme_block("chargeback alerts", "docs/budgets.md")
    (fresh_clone / "rules.yaml").unlink(missing_ok=True)
    run = subprocess.run(["bash", "-e", "-c", script], cwd=fresh_clone, capture_output=True,
                         text=True, timeout=120, env=reader_env(clean_install),
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 8 rules found" in run.stdout
    rules = yaml.safe_load((fresh_clone / "rules.yaml").read_text())
    (group,) = rules["groups"]
    teams = {r["labels"].get("team") for r in group["rules"]}
    assert teams == {None, "data-science"}  # the report-wide budget and the team's


def test_finance_commands_as_written(
    clean_install: CleanInstall,
    fresh_clone: Path,
    prometheus_factory: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    """docs/finance.md's FOCUS and statement commands, typed at the clone's root with the
    installed CLI and Debian's chromium, on the pilot week's simulated traffic."""
    sim, openmetrics = fixed_example_traffic(tmp_path)
    prometheus = prometheus_factory(openmetrics)
    for leftover in ("focus.csv", "statement.html", "statement.pdf"):
        (fresh_clone / leftover).unlink(missing_ok=True)
    for first in ("chargeback report", "chargeback statement"):
        script = as_a_reader(readme_block(first, "docs/finance.md"), prometheus=prometheus.url,
                             state="")  # fmt: skip
        run = subprocess.run(["bash", "-e", "-c", script], cwd=fresh_clone, capture_output=True,
                             text=True, timeout=600, env=reader_env(clean_install),
                             check=False)  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    example = yaml.safe_load((ROOT / "docs/examples/usagereport-fixed.yaml").read_text())
    period = (ms(example["spec"]["period"]["start"]), ms(example["spec"]["period"]["end"]))
    pricing = yaml.safe_load((ROOT / "docs/examples/tierpricing.yaml").read_text())
    tokens, cost = expected(sim, pricing, *period)
    with (fresh_clone / "focus.csv").open() as focus:
        rows = list(csv.DictReader(focus))
    assert sum(int(r["ConsumedQuantity"]) for r in rows) == tokens > 0
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(cost)
    page = (fresh_clone / "statement.html").read_text()
    assert "Team cc-101: AI usage statement" in page
    assert (fresh_clone / "statement.pdf").read_bytes()[:5] == b"%PDF-"

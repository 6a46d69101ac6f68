"""A real Prometheus on loopback over a TSDB backfilled from OpenMetrics text with promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from chargeback.testing.process import ComponentError, ManagedProcess, free_port
from chargeback.testing.tools import binary

START_TIMEOUT = 60.0
_CONFIG = "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n"


def _config(
    targets: list[str],
    token_file: Path | None = None,
    rule_files: list[Path] | None = None,
    alertmanager: str | None = None,
    external_labels: dict[str, str] | None = None,
) -> str:
    if external_labels:
        # As an HA pair is told apart (a Thanos sidecar refuses a Prometheus without them).
        labels = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in external_labels.items())
        return _config(targets, token_file, rule_files, alertmanager).replace(
            "global:\n", f"global:\n  external_labels:\n{labels}", 1
        )
    if not targets:
        return _CONFIG
    listed = ", ".join(f'"{t}"' for t in targets)
    # A bearer token, as OpenShift monitoring scrapes a protected /metrics.
    auth = f"    authorization:\n      credentials_file: {token_file}\n" if token_file else ""
    rules = "".join(f"  - {path}\n" for path in rule_files or [])
    alerting = (
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: "
        f'["{alertmanager.split("://")[-1]}"]\n'
        if alertmanager
        else ""
    )
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + alerting
        + "scrape_configs:\n"
        f"  - job_name: live\n{auth}    static_configs:\n      - targets: [{listed}]\n"
    )


def backfill(openmetrics: str | Path, tsdb_dir: Path) -> None:
    """Turn OpenMetrics text (ending in ``# EOF``) into TSDB blocks with ``promtool``."""
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(openmetrics, Path):
        source = openmetrics
    else:
        source = tsdb_dir.parent / "backfill.om"
        source.write_text(openmetrics)
    try:
        result = subprocess.run(
            [str(binary("promtool")), "tsdb", "create-blocks-from", "openmetrics",
             str(source), str(tsdb_dir)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
    finally:
        if source is not openmetrics:
            source.unlink(missing_ok=True)  # our copy; the blocks hold the data now
    if result.returncode != 0:
        raise ComponentError(f"promtool backfill failed: {result.stderr[-2000:]}")


class PrometheusServer:
    """One Prometheus process with its own data directory; restartable on the same port."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        openmetrics: str | Path | None = None,
        retention: str = "100y",
        scrape_targets: list[str] | None = None,
        scrape_token: str | None = None,
        program: str = "prometheus",
        rule_files: list[Path] | None = None,
        alertmanager: str | None = None,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        external_labels: dict[str, str] | None = None,
    ) -> None:
        """``program``: "prometheus" (Debian's 2.x) or "prometheus3" (built by make tools).

        ``scrape_token``: the bearer token to scrape ``scrape_targets`` with;
        ``rule_files``: rules to evaluate every second; ``alertmanager``: its URL, for alerts;
        ``extra_args``: more command-line flags (limits, for instance); ``host``: the address
        to listen on (the test node's pods reach the host on its own address);
        ``external_labels``: the labels of this replica (``prometheus_replica: a``).
        """
        self._owns_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chargeback-prom-"))
        self.tsdb = self.workdir / "tsdb"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.retention = retention
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        if openmetrics is not None:
            backfill(openmetrics, self.tsdb)
        token_file = None
        if scrape_token:
            token_file = self.workdir / "scrape-token"
            token_file.write_text(scrape_token)
        (self.workdir / "prometheus.yml").write_text(
            _config(scrape_targets or [], token_file, rule_files, alertmanager, external_labels)
        )
        self.process = ManagedProcess(
            "prometheus",
            [
                str(binary(program)),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.tsdb}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address={host}:{self.port}",
                "--log.level=warn",
                *extra_args,
            ],
            self.workdir / "prometheus.log",
        )

    def start(self) -> str:
        """Start Prometheus and wait until it answers queries; return its URL."""
        self.process.start()
        self.process.wait_ready(self._ready, START_TIMEOUT)
        return self.url

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)

    def stop(self) -> None:
        """Stop the process, keeping its data for a later start."""
        self.process.stop()

    def close(self) -> None:
        """Stop and remove the data directory."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        """Run an instant query and return the result vector (a test convenience)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            body = json.load(response)
        if body.get("status") != "success":
            raise ComponentError(f"query failed: {body}")
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def __enter__(self) -> PrometheusServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

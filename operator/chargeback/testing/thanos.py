"""A Thanos Querier over two Prometheus replicas on loopback, as OpenShift runs its monitoring.

Each replica holds the same history (backfilled from the same OpenMetrics text, or each from its
own), carries the external label ``prometheus_replica: a|b`` and has a Thanos sidecar. The
querier deduplicates by that label unless ``replica_label`` is empty.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from chargeback.testing.process import ManagedProcess, free_port
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.tools import thanos

REPLICA_LABEL = "prometheus_replica"
REPLICAS = ("a", "b")
START_TIMEOUT = 60.0


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return bool(response.status == 200)


class Replica:
    """One Prometheus and its sidecar; stoppable, and started again on the same ports."""

    def __init__(self, workdir: Path, name: str, openmetrics: Path, program: str) -> None:
        self.name = name
        self.prometheus = PrometheusServer(
            workdir / "prometheus", openmetrics=openmetrics, program=program,
            external_labels={REPLICA_LABEL: name},
        )  # fmt: skip
        self.grpc, self._http = free_port(), free_port()
        self.sidecar = ManagedProcess(
            f"thanos sidecar {name}",
            [str(thanos()), "sidecar", f"--prometheus.url={self.prometheus.url}",
             f"--tsdb.path={self.prometheus.tsdb}", f"--grpc-address=127.0.0.1:{self.grpc}",
             f"--http-address=127.0.0.1:{self._http}", "--log.level=warn"],
            workdir / "sidecar.log",
        )  # fmt: skip

    def start(self) -> None:
        """Prometheus first: the sidecar reads its external labels at start."""
        self.prometheus.start()
        self.sidecar.start()
        self.sidecar.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{self._http}/-/ready"),
                                START_TIMEOUT)  # fmt: skip

    def stop(self) -> None:
        """As a replica goes down: its store is then unreachable to the querier."""
        self.sidecar.stop()
        self.prometheus.stop()


class ThanosQuerier:
    """Two replicas and a querier in front of them; ``url`` speaks the Prometheus HTTP API."""

    def __init__(
        self,
        openmetrics: Path | Sequence[Path],
        workdir: Path | None = None,
        *,
        replica_label: str = REPLICA_LABEL,
        program: str = "prometheus",
    ) -> None:
        """Two replicas and their querier, not started yet.

        ``openmetrics``: one history for both replicas, or one per replica (a replica that was
        down holds less); ``replica_label``: empty turns deduplication off.
        """
        self._owns_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chargeback-thanos-"))
        histories = [openmetrics] * 2 if isinstance(openmetrics, Path) else list(openmetrics)
        self.replicas = [
            Replica(self.workdir / name, name, history, program)
            for name, history in zip(REPLICAS, histories, strict=True)
        ]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dedup = [f"--query.replica-label={replica_label}"] if replica_label else []
        self.querier = ManagedProcess(
            "thanos query",
            [str(thanos()), "query", f"--http-address=127.0.0.1:{self.port}",
             f"--grpc-address=127.0.0.1:{free_port()}", "--log.level=warn",
             *[f"--endpoint=127.0.0.1:{r.grpc}" for r in self.replicas], *dedup],
            self.workdir / "query.log",
        )  # fmt: skip

    def stores(self) -> list[dict[str, object]]:
        """The querier's view of its stores (``/api/v1/stores``)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/stores", timeout=5) as response:  # noqa: S310
            body = json.load(response)
        found: list[dict[str, object]] = body["data"].get("sidecar", [])
        return found

    def _ready(self) -> bool:
        healthy = [s for s in self.stores() if not s.get("lastError")]
        return _http_ok(f"{self.url}/-/ready") and len(healthy) == len(self.replicas)

    def wait_stores(self) -> None:
        """Until the querier answers from every replica (after one was started again)."""
        self.querier.wait_ready(
            lambda: self._ready() and "warnings" not in self._answer("up"), START_TIMEOUT
        )

    def _answer(self, promql: str) -> dict[str, object]:
        query = urllib.parse.urlencode({"query": f"count({promql})"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as response:  # noqa: S310
            body: dict[str, object] = json.load(response)
        return body

    def __enter__(self) -> Self:
        try:
            for replica in self.replicas:
                replica.start()
            self.querier.start()
            self.querier.wait_ready(self._ready, START_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.querier.stop()
        for replica in self.replicas:
            replica.stop()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

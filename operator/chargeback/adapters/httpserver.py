"""The operator's HTTP endpoint: /metrics, /healthz and report exports.

`/reports/<namespace>/<name>/<period-start>.json|.csv` serves finalised documents from the
ledger; `/reports/<namespace>/<name>/current.json|csv` the open period as last rendered.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chargeback.adapters import metrics
from chargeback.adapters.ledger import PricingLedger
from chargeback.domain.buckets import to_ms

_REPORT = re.compile(r"^/reports/([a-z0-9-]+)/([a-z0-9.-]+)/([0-9TZ:-]+|current)\.(json|csv)$")


class _Rendered(Protocol):
    json: str
    csv: str


class _Reports(Protocol):
    pricing: PricingLedger
    latest: dict[str, Any]


def serve(port: int, reconciler: _Reports) -> ThreadingHTTPServer:
    """Start the server in a daemon thread; return it (call shutdown() to stop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                self._reply(200, b"ok\n", "text/plain")
            elif match := _REPORT.match(self.path):
                self._report(*match.groups())
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _report(self, namespace: str, name: str, start: str, fmt: str) -> None:
            kind = "application/json" if fmt == "json" else "text/csv"
            if start == "current":
                latest: _Rendered | None = reconciler.latest.get(f"{namespace}/{name}")
                if latest is None:
                    self._reply(404, b"no open period rendered yet\n", "text/plain")
                    return
                self._reply(200, (latest.json if fmt == "json" else latest.csv).encode(), kind)
                return
            try:
                start_ms = to_ms(dt.datetime.fromisoformat(start))
            except ValueError:
                self._reply(400, b"period start must be ISO 8601 with a zone\n", "text/plain")
                return
            final = reconciler.pricing.final(f"{namespace}/{name}", start_ms)
            if final is None:
                self._reply(404, b"no finalised document for that period\n", "text/plain")
                return
            body = final.document if fmt == "json" else final.csv
            self._reply(200, body.encode(), kind)

        def _reply(self, code: int, payload: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - a pod's metrics port
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    return server

"""The operator's HTTP endpoint: /metrics, /healthz and report exports.

`/reports/<namespace>/<name>/<period-start>.<format>` serves finalised documents from the
ledger; `/reports/<namespace>/<name>/current.<format>` the open period as last rendered. Every
format registered in ``domain/formats`` is served.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chargeback.adapters import metrics
from chargeback.domain import formats
from chargeback.domain.buckets import to_ms

_REPORT = re.compile(r"^/reports/([a-z0-9-]+)/([a-z0-9.-]+)/([0-9TZ:-]+|current)\.([a-z0-9]+)$")


class Renditions(Protocol):
    """A report document that can be rendered in any registered format."""

    def text(self, fmt: str) -> str:
        """The document in format ``fmt``."""
        ...


class ReportStore(Protocol):
    """Where the endpoint finds documents (namespace/name keys)."""

    def current(self, key: str) -> Renditions | None:
        """The open period as last rendered."""
        ...

    def final(self, key: str, period_start_ms: int) -> Renditions | None:
        """A finalised period."""
        ...


def serve(port: int, reports: ReportStore) -> ThreadingHTTPServer:
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
            if fmt not in formats.names():
                self._reply(404, f"no format {fmt}\n".encode(), "text/plain")
                return
            key = f"{namespace}/{name}"
            if start == "current":
                found = reports.current(key)
                missing = b"no open period rendered yet\n"
            else:
                try:
                    start_ms = to_ms(dt.datetime.fromisoformat(start))
                except ValueError:
                    self._reply(400, b"period start must be ISO 8601 with a zone\n", "text/plain")
                    return
                found = reports.final(key, start_ms)
                missing = b"no finalised document for that period\n"
            if found is None:
                self._reply(404, missing, "text/plain")
                return
            self._reply(200, found.text(fmt).encode(), formats.get(fmt).media_type)

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

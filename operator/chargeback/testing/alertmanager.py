"""A real Alertmanager (Debian's prometheus-alertmanager) on loopback, and a webhook receiver.

The receiver records every notification Alertmanager delivers to it.
"""

from __future__ import annotations

import json
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chargeback.testing.process import ManagedProcess, ServedProcess, free_port
from chargeback.testing.tools import binary


class WebhookReceiver:
    """An HTTP server on loopback that keeps the alerts of each notification posted to it."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with received._lock:
                    received.alerts.extend(body.get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def firing(self) -> list[dict[str, Any]]:
        """Alerts received as firing, in order of arrival."""
        with self._lock:
            return [a for a in self.alerts if a.get("status") == "firing"]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _config(webhook_url: str) -> str:
    return (
        "route:\n  receiver: webhook\n  group_by: [alertname, budget, threshold]\n"
        "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        f"receivers:\n  - name: webhook\n    webhook_configs:\n      - url: {webhook_url}\n"
        "        send_resolved: false\n"
    )


class AlertmanagerServer(ServedProcess):
    """One Alertmanager process, clustering off, routing everything to ``webhook_url``."""

    def __init__(self, webhook_url: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="chargeback-am-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.workdir / "alertmanager.yml").write_text(_config(webhook_url))
        self.process = ManagedProcess(
            "alertmanager",
            [
                str(binary("prometheus-alertmanager")),
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            self.workdir / "alertmanager.log",
        )

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)

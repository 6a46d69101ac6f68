"""A reverse proxy in front of Prometheus on loopback.

With a certificate and a token it plays Thanos Querier (HTTPS, bearer token required). Its
``fault`` makes it misbehave on purpose: ``"wrong"`` answers the API in a shape Prometheus never
uses, ``"hang"`` answers nothing for 30 s, ``"tenancy"`` serves only the query API (as
prom-label-proxy on OpenShift's tenancy port: no ``/api/v1/status/*``).
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from chargeback.testing.pki import CertPair

WRONG_SHAPE = b'{"status": "success", "data": {"result": "surprise"}}'


class _Handler(BaseHTTPRequestHandler):
    """Requests to the proxy; ``proxy`` is set per proxy by :class:`PrometheusProxy`."""

    proxy: PrometheusProxy

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy = self.proxy
        proxy.requests += 1
        if proxy.token and self.headers.get("Authorization") != f"Bearer {proxy.token}":
            self._reply(401, b'{"status":"error","error":"unauthorized"}')
            return
        if proxy.fault == "hang":
            time.sleep(30)
            return
        if proxy.fault == "tenancy" and self.path.startswith("/api/v1/status/"):
            self._reply(404, b"404 page not found")
            return
        if proxy.fault == "wrong" and self.path.startswith("/api/v1/"):
            self._reply(200, WRONG_SHAPE)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(  # noqa: S310 - loopback upstream
            proxy.upstream + self.path, data=body, method=self.command
        )
        if body is not None:
            request.add_header("Content-Type", self.headers.get("Content-Type", ""))
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                self._reply(response.status, response.read())
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read())
        except urllib.error.URLError:
            self._reply(502, b'{"status":"error","error":"upstream unreachable"}')

    def _reply(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


class PrometheusProxy:
    """Forwards to ``upstream``: over HTTPS with ``serving``, only with ``token`` when given."""

    def __init__(
        self, upstream: str, serving: CertPair | None = None, token: str | None = None
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.fault = ""
        self.requests = 0
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        scheme = "http"
        if serving is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(serving.cert), str(serving.key))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PrometheusProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_token(path: Path, token: str) -> Path:
    """Write a token file the way a projected ServiceAccount token appears."""
    path.write_text(token + "\n")
    return path

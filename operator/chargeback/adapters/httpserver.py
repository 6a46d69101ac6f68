"""The operator's HTTP endpoint: /metrics, /healthz and report exports.

`/reports/<namespace>/<name>/<period-start>.<format>` serves finalised documents from the
ledger; `/reports/<namespace>/<name>/current.<format>` the open period as last rendered. Every
format registered in ``domain/formats`` is served, and `.html` is the period's statement (of
the whole report, or of one team with `?team=<team>`).

Everything but the probes (`/healthz`, `/readyz`) needs a bearer token when a guard is given:
401 without a valid one, 403 when Kubernetes RBAC does not allow ``get`` on that UsageReport
(exports) or on the non-resource URL ``/metrics``, 503 when the API server cannot tell. With a
certificate and key the endpoint speaks TLS only. Idle connections are closed after 30 s.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chargeback.adapters import metrics
from chargeback.adapters.kube_auth import Access, AuthUnavailable, User
from chargeback.domain import formats
from chargeback.domain.buckets import to_ms

_REPORT = re.compile(r"^/reports/([a-z0-9-]+)/([a-z0-9.-]+)/([0-9TZ:-]+|current)\.([a-z0-9]+)$")
PROBES = frozenset({"/healthz", "/readyz"})
STATEMENT = "html"
"""The suffix of statements (`/reports/<namespace>/<name>/<period>.html[?team=<team>]`)."""
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
"""Connections served at once (a thread each); more are closed at once."""


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

    def statement(self, key: str, period_start_ms: int | None, team: str | None) -> str | None:
        """The HTML statement of a period (None: the open one) for a team (None: all)."""
        ...


class Guard(Protocol):
    """Who is asking (bearer token), and whether they may have what they ask for."""

    def authenticate(self, token: str) -> User | None:
        """The token's user, None when it is not valid."""
        ...

    def allowed(self, user: User, access: Access) -> bool:
        """Whether ``user`` may have ``access``."""
        ...


def _access(path: str) -> Access:
    """What a path asks for (reports by their namespace and name; anything else by path)."""
    match = _REPORT.match(path)
    return Access(match[1], match[2]) if match else Access(path=path)


class _Handler(BaseHTTPRequestHandler):
    """Requests to the endpoint; ``reports`` and ``guard`` are set per server by :func:`serve`."""

    reports: ReportStore
    guard: Guard | None = None
    query = ""
    timeout = IDLE_TIMEOUT_S

    def do_GET(self) -> None:
        path, _, self.query = self.path.partition("?")
        if path in PROBES:
            self._reply(200, b"ok\n", "text/plain")
        elif self.guard is None or self._authorized(path):
            self._route(path)

    def _authorized(self, path: str) -> bool:
        guard = self.guard
        assert guard is not None  # noqa: S101 - checked by the caller
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        try:
            user = guard.authenticate(token.strip()) if scheme == "Bearer" else None
            if user is None:
                self._reply(401, b"a valid bearer token is required\n", "text/plain")
                return False
            if not guard.allowed(user, _access(path)):
                self._reply(403, f"{user.name} may not get {path}\n".encode(), "text/plain")
                return False
        except AuthUnavailable as exc:
            self._reply(503, f"cannot check access: {exc}\n".encode(), "text/plain")
            return False
        return True

    def _route(self, path: str) -> None:
        if path == "/metrics":
            self._reply(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
        elif match := _REPORT.match(path):
            self._report(*match.groups())
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _report(self, namespace: str, name: str, start: str, fmt: str) -> None:
        if fmt not in (*formats.names(), STATEMENT):
            self._reply(404, f"no format {fmt}\n".encode(), "text/plain")
            return
        key = f"{namespace}/{name}"
        start_ms = None
        if start != "current":
            try:
                start_ms = to_ms(dt.datetime.fromisoformat(start))
            except ValueError:
                self._reply(400, b"period start must be ISO 8601 with a zone\n", "text/plain")
                return
        if fmt == STATEMENT:
            self._statement(key, start_ms)
            return
        found = self.reports.current(key) if start_ms is None else self.reports.final(key, start_ms)
        if found is None:
            missing = "no open period rendered yet" if start_ms is None else (
                "no finalised document for that period")  # fmt: skip
            self._reply(404, f"{missing}\n".encode(), "text/plain")
            return
        self._reply(200, found.text(fmt).encode(), formats.get(fmt).media_type)

    def _statement(self, key: str, start_ms: int | None) -> None:
        """The statement of the whole report, or of ``?team=<name>``."""
        teams = urllib.parse.parse_qs(self.query).get("team")
        team = teams[-1] if teams else None
        page = self.reports.statement(key, start_ms, team)
        if page is None:
            what = f"team {team!r} in " if team else ""
            self._reply(404, f"no usage of {what}that period\n".encode(), "text/plain")
            return
        self._reply(200, page.encode(), "text/html; charset=utf-8")

    def _reply(self, code: int, payload: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="chargeback-operator"')
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` of them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve on a thread of its own while a slot is free; else close the connection."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve, then free the slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def serve(
    port: int,
    reports: ReportStore,
    *,
    guard: Guard | None = None,
    tls: tuple[Path, Path] | None = None,
    host: str = "0.0.0.0",  # noqa: S104 - a pod's metrics port
) -> ThreadingHTTPServer:
    """Start the server in a daemon thread; return it (call shutdown() to stop)."""
    handler = type("Handler", (_Handler,), {"reports": reports, "guard": guard})
    server = _BoundedServer((host, port), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        # The handshake happens on the handler's thread (first read), not in accept().
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    return server

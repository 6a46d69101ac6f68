"""Prometheus (or Thanos Querier / Mimir) over its HTTP API, with clear errors.

Credentials are operator settings: a bearer token *file* re-read for every request (projected
ServiceAccount tokens rotate) and a CA bundle. Errors are classified so callers can tell a bad
query from an unreachable server, a rejected credential, or a query too large to run in one go.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from chargeback.adapters.prometheus_answers import (
    PartialResponse,
    PrometheusAuthError,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnavailable,
    QueryTooLarge,
    as_int,
    by_time,
    results,
)
from chargeback.domain.counters import Sample
from chargeback.domain.selectors import quote
from chargeback.domain.series import SeriesKey

__all__ = [
    "PartialResponse",
    "PrometheusAuthError",
    "PrometheusClient",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusSettings",
    "PrometheusUnavailable",
    "QueryTooLarge",
]

RANGE_EDGE_PROBE = "count_over_time(vector(1)[60s:60s])"
"""2 where range selectors include their left edge (Prometheus 2.x), 1 where not (3.x, Thanos)."""


@dataclass(frozen=True)
class PrometheusSettings:
    """How to reach Prometheus. These are operator settings, never tenant input."""

    url: str
    token_file: Path | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    timeout_s: float = 60.0
    retries: int = 2


class PrometheusClient:
    """Typed queries over prometheus-api-client with retries and classified errors."""

    _TOO_LARGE = re.compile(r"too many samples|query timed out|timeout", re.IGNORECASE)

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        session = requests.Session()
        if not settings.verify_tls:
            session.verify = False
        elif settings.ca_file is not None:
            session.verify = str(settings.ca_file)
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 504),
            allowed_methods=("GET", "POST"),
            raise_on_status=False,
        )
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            session=session,
            retry=retry,
            timeout=int(settings.timeout_s),
            method="POST",
        )
        self._closed_ranges: bool | None = None
        self._anchored: bool | None = None
        self._build: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="prometheus")

    def close(self) -> None:
        """Release the HTTP session and the query threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _headers(self) -> dict[str, str]:
        token_file = self.settings.token_file
        if token_file is None:
            return {}
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise PrometheusAuthError(f"cannot read the token file {token_file}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"}

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        self._client.headers = self._headers()
        url = self.settings.url
        try:
            return func(*args, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise PrometheusUnavailable(
                f"TLS verification with Prometheus at {url} failed (check the CA bundle"
                f"{' ' + str(self.settings.ca_file) if self.settings.ca_file else ''}): {exc}"
            ) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise PrometheusUnavailable(f"Prometheus at {url} is unreachable: {exc}") from exc
        except requests.exceptions.RetryError as exc:
            raise PrometheusUnavailable(f"Prometheus at {url} kept failing: {exc}") from exc
        except PrometheusApiClientException as exc:
            raise self._classify(str(exc), what) from exc
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            # Valid HTTP, but not a Prometheus API answer (a proxy's page, a truncated body).
            raise PrometheusUnavailable(
                f"Prometheus at {url} answered {what!r} in an unexpected shape: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    def _classify(self, message: str, what: str) -> PrometheusError:
        status = re.search(r"HTTP Status Code (\d+)", message)
        code = int(status.group(1)) if status else 0
        detail = message
        error = re.search(r'"error":"((?:[^"\\]|\\.)*)"', message)
        if error:
            detail = error.group(1)
        url = self.settings.url
        if code in (401, 403):
            hint = f" (token file {self.settings.token_file})" if self.settings.token_file else ""
            return PrometheusAuthError(
                f"Prometheus at {url} rejected the credentials with HTTP {code}{hint}"
            )
        if self._TOO_LARGE.search(detail):
            return QueryTooLarge(f"query too large for Prometheus ({detail}): {what}")
        if code in (400, 422):
            return PrometheusQueryError(f"Prometheus rejected the query {what!r}: {detail}")
        return PrometheusUnavailable(f"Prometheus at {url} failed with HTTP {code}: {detail}")

    def query(self, promql: str, at_ms: int) -> list[dict[str, Any]]:
        """Instant query at ``at_ms``; the raw result list."""
        result = self._call(
            promql, self._client.custom_query, promql, params={"time": f"{at_ms / 1000:.3f}"}
        )
        return list(result or [])

    def _request(self, method: str, path: str, data: dict[str, str] | None = None) -> Any:
        """One HTTP call with our headers, CA and timeout; non-200 raises for _call to classify."""
        # The client parses whole bodies into dicts and has no buildinfo call; we need both.
        session = self._client._session
        response = session.request(
            method,
            f"{self._client.url}{path}",
            data=data,
            headers=self._client.headers,
            # Explicit: requests would otherwise let REQUESTS_CA_BUNDLE override our CA file.
            verify=session.verify,
            timeout=self.settings.timeout_s,
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        return response

    def _query_body(self, promql: str, at_ms: int, lookback_ms: int | None = None) -> bytes:
        """POST an instant query and return the raw body (decoded by the caller)."""
        data = {"query": promql, "time": f"{at_ms / 1000:.3f}"}
        if lookback_ms is not None:
            data["lookback_delta"] = f"{lookback_ms}ms"
        return bytes(self._request("POST", "/api/v1/query", data).content)

    def vector(
        self, promql: str, at_ms: int, lookback_ms: int | None = None
    ) -> dict[SeriesKey, int]:
        """Instant query returning a vector of whole numbers, keyed by series identity.

        ``lookback_ms`` overrides Prometheus' lookback delta for this query (how far back
        instant selectors, and the anchor of an ``anchored`` range, may look).
        """

        def decoded() -> dict[SeriesKey, int]:
            body = self._query_body(promql, at_ms, lookback_ms)
            return {key: as_int(value[1], promql) for key, value in results(body, promql)}

        result: dict[SeriesKey, int] = self._call(promql, decoded)
        return result

    def vectors(
        self, queries: Sequence[str], at_ms: int, lookback_ms: int | None = None
    ) -> list[dict[SeriesKey, int]]:
        """Several instant queries at once: Prometheus evaluates them in parallel."""
        futures = [self._pool.submit(self.vector, q, at_ms, lookback_ms) for q in queries]
        return [future.result() for future in futures]

    def scalar_count(self, promql: str, at_ms: int) -> int:
        """The single value of an aggregation like ``count(...)``, 0 when the result is empty."""

        def decoded() -> int:
            # Decoded by us, not the client: a partial answer must raise, not count as "none".
            found = results(self._query_body(promql, at_ms), promql)
            return int(float(found[0][1][1])) if found else 0

        count: int = self._call(promql, decoded)
        return count

    def samples(self, promql: str, at_ms: int) -> dict[SeriesKey, tuple[Sample, ...]]:
        """Raw samples of a range-vector selector evaluated at ``at_ms``."""

        def decoded() -> dict[SeriesKey, tuple[Sample, ...]]:
            body = self._query_body(promql, at_ms)
            return {
                key: tuple(Sample(round(float(t) * 1000), as_int(v, promql)) for t, v in values)
                for key, values in results(body, promql)
            }

        samples: dict[SeriesKey, tuple[Sample, ...]] = self._call(promql, decoded)
        return samples

    def _range_body(
        self, promql: str, start_ms: int, end_ms: int, step_ms: int, lookback_ms: int | None
    ) -> bytes:
        """POST a range query and return the raw body (decoded by the caller)."""
        data = {
            "query": promql,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
            "step": f"{step_ms / 1000:.3f}",
        }
        if lookback_ms is not None:
            data["lookback_delta"] = f"{lookback_ms}ms"
        return bytes(self._request("POST", "/api/v1/query_range", data).content)

    def matrix(
        self, promql: str, start_ms: int, end_ms: int, step_ms: int
    ) -> dict[SeriesKey, dict[int, float]]:
        """Range query: per series, the value at each evaluation time (ms) that has one."""

        def decoded() -> dict[SeriesKey, dict[int, float]]:
            matrix: dict[SeriesKey, dict[int, float]] = {}
            body = self._range_body(promql, start_ms, end_ms, step_ms, None)
            for key, values in results(body, promql):
                points = {round(float(t) * 1000): float(v) for t, v in values}
                if not all(math.isfinite(v) for v in points.values()):
                    raise PrometheusQueryError(f"non-finite values from {promql!r}")
                matrix[key] = points
            return matrix

        result: dict[SeriesKey, dict[int, float]] = self._call(promql, decoded)
        return result

    def vectors_over(
        self,
        promql: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        lookback_ms: int | None = None,
    ) -> dict[int, dict[SeriesKey, int]]:
        """Range query of whole numbers, as one vector per evaluation time (every one present).

        The same as :meth:`vector` at ``start_ms``, ``start_ms + step_ms``, ... ``end_ms`` in one
        request: each series' labels cross the wire once, not once per time.
        """
        span = (start_ms, end_ms, step_ms)
        body = self._call(promql, self._range_body, promql, *span, lookback_ms)
        result: dict[int, dict[SeriesKey, int]] = self._call(promql, by_time, body, promql, span)
        return result

    def vectors_over_later(
        self,
        queries: Sequence[str],
        span: tuple[int, int, int],
        lookback_ms: int | None = None,
    ) -> list[Callable[[], dict[int, dict[SeriesKey, int]]]]:
        """Several range queries over ``span`` (start, end, step), sent now, answered when called.

        Only the HTTP exchange runs on a query thread. The answer is decoded on the caller's
        thread when called for: decoding holds the GIL, which the caller (writing the previous
        chunk to the ledger meanwhile) would otherwise keep waiting for.
        """
        bodies = [
            self._pool.submit(self._call, q, self._range_body, q, *span, lookback_ms)
            for q in queries
        ]
        return [
            functools.partial(self._decode_later, body, q, span)
            for body, q in zip(bodies, queries, strict=True)
        ]

    def _decode_later(
        self, body: Future[bytes], promql: str, span: tuple[int, int, int]
    ) -> dict[int, dict[SeriesKey, int]]:
        result: dict[int, dict[SeriesKey, int]] = self._call(
            promql, by_time, body.result(), promql, span
        )
        return result

    def series_names(self, names: Sequence[str], start_ms: int, end_ms: int) -> set[str]:
        """Which of the metric ``names`` have any series between ``start_ms`` and ``end_ms``."""
        params = {
            "match[]": [f"{{__name__={quote(name)}}}" for name in names],
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
        }

        def decoded() -> list[str]:
            found = self._client.get_label_values("__name__", params)
            if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
                raise TypeError(f"label values are not a list of names: {str(found)[:100]}")
            return found

        names_found: list[str] = self._call("metric names", decoded)
        return set(names_found) & set(names)

    def closed_ranges(self) -> bool:
        """Whether range selectors include their left edge (Prometheus 2.x) or not (3.x).

        Measured, never read from a version string: queriers (Thanos, Mimir, VictoriaMetrics)
        report versions that say nothing of their engine. ``vector(1)`` needs no data; a 60 s
        subquery at a multiple of 60 s holds its two edge steps when the range is closed, one
        when it is left-open.
        """
        if self._closed_ranges is None:
            at_ms = int(time.time() // 60) * 60_000
            count = self.scalar_count(RANGE_EDGE_PROBE, at_ms)
            if count not in (1, 2):
                raise PrometheusQueryError(
                    f"cannot tell the range semantics of {self.settings.url}: "
                    f"{RANGE_EDGE_PROBE} gave {count} (expected 1 or 2)"
                )
            self._closed_ranges = count == 2
        return self._closed_ranges

    def anchored_ranges(self) -> bool:
        """Whether Prometheus has ``anchored`` range selectors (3.7 and later).

        An anchored ``increase()`` starts from the last sample before the range (within the
        lookback delta) and does not extrapolate: the exact counter increase of a window.
        """
        if self._anchored is None:
            probe = 'count(increase({__name__="chargeback_probe"}[1m] anchored))'
            try:
                self._call(probe, self._query_body, probe, 0)
                self._anchored = True
            except PrometheusQueryError:
                self._anchored = False
        return self._anchored

    def check_build(self) -> str:
        """The server's build; its semantics are probed again when it changed (an upgrade).

        A querier that does not serve build info (a tenancy proxy) is ``unknown``: its
        semantics are still probed, once.
        """
        version: str = self._call("buildinfo", self._buildinfo_version)
        if version != self._build:
            self._build, self._closed_ranges, self._anchored = version, None, None
        return version

    def semantics(self) -> str:
        """What was measured, for the source condition."""
        if self._build is None:
            self.check_build()
        edges = "closed" if self.closed_ranges() else "left-open"
        anchored = "anchored ranges" if self.anchored_ranges() else "no anchored ranges"
        return f"build {self._build}: range edges {edges}, {anchored} (probed)"

    def ping(self) -> None:
        """Raise a PrometheusError unless Prometheus answers now."""
        self.vector("vector(1)", int(time.time() * 1000))

    def _buildinfo_version(self) -> str:
        try:
            response = self._request("GET", "/api/v1/status/buildinfo")
        except PrometheusApiClientException as exc:
            if "HTTP Status Code 404" in str(exc):
                return "unknown"
            raise
        return str(response.json()["data"]["version"])

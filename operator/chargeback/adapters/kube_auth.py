"""Who is asking, and may they: bearer tokens checked with the Kubernetes API.

The operator's HTTP endpoint authenticates a request's bearer token with a TokenReview and
authorises the user with a SubjectAccessReview, as kube-rbac-proxy and controller-runtime's
authentication filter do: exports need ``get`` on that UsageReport, ``/metrics`` needs ``get`` on
the non-resource URL. Answers are cached for a few seconds per token (never the token itself:
its SHA-256), so a scraper does not cost two API calls per scrape.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.api.common import GROUP

CACHE_SECONDS = 10.0
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class User:
    """An authenticated user as the API server knows them."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Access:
    """What a request asks for: a report's document, or a non-resource path."""

    namespace: str = ""
    report: str = ""
    path: str = ""


class AuthUnavailable(RuntimeError):
    """The API server could not answer a review (the request gets 503, never access)."""


@dataclass
class _Cache:
    entries: dict[tuple[str, ...], tuple[float, object]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, ...]) -> object | None:
        with self.lock:
            hit = self.entries.get(key)
            if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
                return None
            return hit[1]

    def put(self, key: tuple[str, ...], value: object) -> None:
        with self.lock:
            if len(self.entries) >= CACHE_ENTRIES:
                self.entries.clear()
            self.entries[key] = (time.monotonic(), value)


class KubernetesAuth:
    """TokenReview and SubjectAccessReview through the operator's own client."""

    def __init__(self, api: client.ApiClient) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self._users = _Cache()
        self._decisions = _Cache()

    def authenticate(self, token: str) -> User | None:
        """The user the token belongs to, or None when it is not valid."""
        key = (hashlib.sha256(token.encode()).hexdigest(),)
        cached = self._users.get(key)
        if cached is not None:
            return cached if isinstance(cached, User) else None
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        try:
            status = self.authn.create_token_review(review).status
        except ApiException as exc:
            raise AuthUnavailable(f"TokenReview failed: {exc.status} {exc.reason}") from exc
        user: User | None = None
        if status is not None and status.authenticated and status.user is not None:
            info = status.user
            extra = tuple(sorted((k, tuple(v)) for k, v in (info.extra or {}).items()))
            user = User(info.username or "", info.uid or "", tuple(info.groups or ()), extra)
        self._users.put(key, user if user is not None else False)
        return user

    def allowed(self, user: User, access: Access) -> bool:
        """Whether ``user`` may have ``access`` (RBAC, as the API server decides)."""
        key = (user.name, user.uid, *user.groups, access.namespace, access.report, access.path)
        cached = self._decisions.get(key)
        if isinstance(cached, bool):
            return cached
        spec = client.V1SubjectAccessReviewSpec(
            user=user.name,
            uid=user.uid or None,
            groups=list(user.groups),
            extra={k: list(v) for k, v in user.extra} or None,
            resource_attributes=client.V1ResourceAttributes(
                group=GROUP, resource="usagereports", verb="get",
                namespace=access.namespace, name=access.report,
            ) if access.report else None,
            non_resource_attributes=client.V1NonResourceAttributes(path=access.path, verb="get")
            if not access.report else None,
        )  # fmt: skip
        try:
            review = self.authz.create_subject_access_review(
                client.V1SubjectAccessReview(spec=spec)
            )
        except ApiException as exc:
            raise AuthUnavailable(f"SubjectAccessReview failed: {exc.status} {exc.reason}") from exc
        decision = bool(review.status and review.status.allowed)
        self._decisions.put(key, decision)
        return decision

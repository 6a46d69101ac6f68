"""Who is asking, and may they: bearer tokens checked with the Kubernetes API.

The operator's HTTP endpoint authenticates a request's bearer token with a TokenReview and
authorises the user with a SubjectAccessReview, as kube-rbac-proxy and controller-runtime's
authentication filter do: exports need ``get`` on that UsageReport, ``/metrics`` needs ``get`` on
the non-resource URL. Answers are cached for a few seconds per token (never the token itself:
its SHA-256), so a scraper does not cost two API calls per scrape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.ttl import TtlCache
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


class KubernetesAuth:
    """TokenReview and SubjectAccessReview through the operator's own client."""

    def __init__(self, api: client.ApiClient) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self._users: TtlCache[User | None] = TtlCache(CACHE_SECONDS, CACHE_ENTRIES)
        self._decisions: TtlCache[bool] = TtlCache(CACHE_SECONDS, CACHE_ENTRIES)

    def authenticate(self, token: str) -> User | None:
        """The user the token belongs to, or None when it is not valid."""
        key = hashlib.sha256(token.encode()).hexdigest()
        return self._users.get(key, lambda: self._review(token))

    def _review(self, token: str) -> User | None:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
        try:
            status = self.authn.create_token_review(review).status
        except ApiException as exc:
            raise AuthUnavailable(f"TokenReview failed: {exc.status} {exc.reason}") from exc
        if status is None or not status.authenticated or status.user is None:
            return None
        info = status.user
        extra = tuple(sorted((k, tuple(v)) for k, v in (info.extra or {}).items()))
        return User(info.username or "", info.uid or "", tuple(info.groups or ()), extra)

    def allowed(self, user: User, access: Access) -> bool:
        """Whether ``user`` may have ``access`` (RBAC, as the API server decides)."""
        key = (user, access)
        return self._decisions.get(key, lambda: self._decide(user, access))

    def _decide(self, user: User, access: Access) -> bool:
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
        return bool(review.status and review.status.allowed)

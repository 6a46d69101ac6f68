"""Unexpected failures become readable condition messages."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from chargeback.services.outcome import unexpected


def test_a_refused_api_request_says_what_the_api_server_said() -> None:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps({"kind": "Status", "reason": "Forbidden",
                           "message": "namespace team-a is being terminated"})  # fmt: skip
    reason, message = unexpected(exc)
    assert reason == "ReconcileFailed"
    assert message == "the API server answered HTTP 403: namespace team-a is being terminated"
    # Without a Status body: the HTTP status and reason.
    assert unexpected(ApiException(status=500, reason="Internal"))[1] == (
        "the API server answered HTTP 500: 500 Internal")  # fmt: skip
    assert unexpected(ValueError("odd"))[1] == "ValueError: odd"

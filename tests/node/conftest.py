"""The test node: a kubelet with containerd, pulling the operator image from a real registry.

`make release` publishes the image, the chart and the OLM bundle to a registry on loopback
(the session's ``release`` fixture, tests/conftest.py), as a user publishes to theirs; the node's
containerd pulls the image from there, as a cluster does. Only the pause image is loaded from an
archive.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeback.testing.node import Node
from chargeback.testing.tools import image_archive
from tests.conftest import Release


@pytest.fixture(scope="module")
def node(release: Release) -> Iterator[Node]:
    """Control plane, containerd, kubelet, scheduler and proxy; the registry's host configured."""
    with Node([image_archive("chargeback-pause-1")], registries=[release.registry.host]) as started:
        yield started

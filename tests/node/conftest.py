"""The test node: a kubelet with containerd running the operator image, as users install it."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeback.testing.node import Node
from chargeback.testing.tools import image_archive
from tests.conftest import ROOT
from tests.e2e.test_chart import packaged_chart

VERSION_TAG = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/chargeback-operator-node:{VERSION_TAG}"

__all__ = ["packaged_chart"]  # the archive users install (tests/e2e/test_chart.py)


@pytest.fixture(scope="session")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make image`, saved as the archive a node loads (podman's layer cache: a cheap rebuild)."""
    built = subprocess.run(["make", "image", f"IMAGE={IMAGE}"], cwd=ROOT, capture_output=True,
                           text=True, check=False, timeout=1500)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    archive = tmp_path_factory.mktemp("images") / "operator.tar"
    saved = subprocess.run(["podman", "save", "-q", "--format", "docker-archive", "-o",
                            str(archive), IMAGE], capture_output=True, text=True, check=False,
                           timeout=600)  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    return archive


@pytest.fixture(scope="module")
def node(operator_image: Path) -> Iterator[Node]:
    """Control plane, containerd, kubelet, scheduler and proxy, with both images loaded."""
    with Node([image_archive("chargeback-pause-1"), operator_image]) as started:
        yield started

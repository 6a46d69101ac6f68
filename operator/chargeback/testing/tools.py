"""Where the platform's binaries live: the versioned build cache and Debian's packages."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from chargeback.testing.process import ComponentError

CACHE_ROOT = Path(os.environ.get("CHARGEBACK_CACHE", Path.home() / ".cache" / "chargeback"))


def bin_dir() -> Path:
    """The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm."""
    override = os.environ.get("CHARGEBACK_BIN_DIR")
    return Path(override) if override else CACHE_ROOT / "bin" / "current"


def image_archive(name: str) -> Path:
    """An image archive built by ``make tools`` (the test node's pause image)."""
    path = CACHE_ROOT / "images" / f"{name}.tar"
    if not path.is_file():
        raise ComponentError(f"{path} not found; run `make tools`")
    return path


def binary(name: str) -> Path:
    """Locate a tool by name, in the build cache first, then Debian's locations and PATH."""
    candidates = [bin_dir() / name]
    candidates += [Path(p) for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ComponentError(f"{name} not found (looked in {bin_dir()} and PATH); run `make tools`")


FOCUS_VALIDATOR_VERSION = "1.0.0"


def focus_validator() -> Path:
    """The FinOps Foundation's focus-validator, in the virtualenv `make tools` made for it."""
    path = CACHE_ROOT / f"focus-validator-{FOCUS_VALIDATOR_VERSION}" / "bin" / "focus-validator"
    if not path.is_file():
        raise ComponentError(f"{path} not found; run `make tools`")
    return path


PERCLI_VERSION = "v0.52.0"


def _versioned(name: str, version: str) -> Path:
    """A tool `make tools` built into a directory of its version."""
    path = CACHE_ROOT / "bin" / f"{name}-{version}" / name
    if not path.is_file():
        raise ComponentError(f"{path} not found; run `make tools`")
    return path


def percli() -> Path:
    """Perses' CLI (its linter validates dashboards), built by `make tools`."""
    return _versioned("percli", PERCLI_VERSION)


THANOS_VERSION = "v0.42.4"


def thanos() -> Path:
    """Thanos (sidecar and querier), built by `make tools`."""
    return _versioned("thanos", THANOS_VERSION)

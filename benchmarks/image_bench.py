"""Size of the operator image: what the base costs, what the project adds, and which packages.

Builds the image as `make image` does, then reads sizes from podman: the image and its base
(uncompressed, as podman reports them), the `podman save` archive, and the size of each large
package inside the image's virtualenv.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/chargeback-operator-bench:latest"
SITE = "/opt/chargeback/lib/python3*/site-packages"
MB = 1_000_000


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout


def measure_image() -> dict[str, Any]:
    """Build the image and measure it."""
    subprocess.run(["make", "image", f"IMAGE={IMAGE}"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", IMAGE))
    base = _podman("image", "inspect", "--format", '{{index .Labels "dev.chargeback.base"}}',
                   IMAGE).strip()  # fmt: skip
    added = size - int(_podman("image", "inspect", "--format", "{{.Size}}", base))
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "image.tar"
        _podman("save", "-o", str(archive), IMAGE)
        saved = archive.stat().st_size
    listing = _podman("run", "--rm", "--entrypoint", "sh", IMAGE, "-c",
                      f"cd {SITE} && du -sk * | sort -rn")  # fmt: skip
    packages = [(name, int(kib) * 1024)
                for kib, name in (line.split("\t") for line in listing.splitlines())]  # fmt: skip
    return {"size": size, "added": added, "base": base, "saved": saved, "packages": packages}


NUMERIC = ("numpy", "numpy.libs", "scipy", "scipy.libs", "pandas", "statsmodels", "patsy",
           "formulaic", "narwhals")  # fmt: skip
"""The forecaster's numeric stack: statsmodels and what it pulls in."""


def section(image: dict[str, Any]) -> str:
    """The image section of docs/benchmarks.md."""
    largest = image["packages"][:14]
    rows = "\n".join(f"| `{name}` | {size / MB:.0f} MB |" for name, size in largest)
    numeric = sum(size for name, size in image["packages"] if name in NUMERIC)
    total = sum(size for _, size in image["packages"])
    return f"""## The operator image

Built by `make image` with podman on `{image["base"]}` (where UBI 9
cannot be pulled, `make image` builds a Debian 12 base; the project's layers are the same on
either). Sizes are uncompressed unless noted.

| measure | size |
|---|---|
| image | {image["size"] / MB:.0f} MB |
| project's layers (above the base) | **{image["added"] / MB:.0f} MB** (target <= 300 MB) |
| `podman save` archive | {image["saved"] / MB:.0f} MB |

On disk (`du`, whole blocks) the virtualenv takes {total / MB:.0f} MB, of which the
forecaster's numeric stack (statsmodels and what it pulls in: {", ".join(NUMERIC)})
is **{numeric / MB:.0f} MB**; numpy and scipy each vendor their own OpenBLAS (`*.libs`). The
largest packages:

| package | size |
|---|---|
{rows}
"""

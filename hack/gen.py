"""Regenerate generated artefacts: `python hack/gen.py crds` writes crds/ from the API models."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from chargeback.api.crd import all_crds

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from operator/chargeback/api by `make crds`. Do not edit.\n"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        name: HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
        for name, crd in all_crds().items()
    }


def main() -> None:
    """Write the artefacts named on the command line."""
    if sys.argv[1:] != ["crds"]:
        raise SystemExit("usage: gen.py crds")
    for name, text in render_crds().items():
        (ROOT / "crds" / name).write_text(text)
        print(f"Wrote crds/{name}")


if __name__ == "__main__":
    main()

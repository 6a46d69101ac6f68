"""The CRDs: generated from the models without drift, and conventional (an "API lint")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hack.gen import render_api_doc, render_crds

from tests.conftest import ROOT


def test_crds_and_api_doc_are_generated_from_the_models() -> None:
    for name, text in render_crds().items():
        on_disk = (ROOT / "crds" / name).read_text()
        assert on_disk == text, f"crds/{name} is stale: run `make crds`"
    assert (ROOT / "docs" / "api.md").read_text() == render_api_doc(), "run `make crds`"


def _crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in render_crds().values()]


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


@pytest.mark.parametrize("crd", _crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_api_conventions(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    problems = []
    for section in ("spec", "status"):
        for path, node in _walk(root["properties"][section], section):
            if "type" not in node:
                problems.append(f"{path}: no type (not structural)")
            if path != section and not node.get("description") and not path.endswith("[]"):
                problems.append(f"{path}: no description")
            if node.get("type") == "number":
                problems.append(f"{path}: floating-point number (use a decimal string)")
            if node.get("type") == "array" and "maxItems" not in node:
                problems.append(f"{path}: unbounded list")
            if node.get("type") == "string" and not (
                {"maxLength", "enum"} & node.keys() or node.get("format") == "date-time"
            ):
                problems.append(f"{path}: unbounded string")
            leaf = path.rsplit(".", 1)[-1]
            if leaf in {"price", "cost"} and "pattern" not in node:
                problems.append(f"{path}: money without a decimal pattern")
            if leaf == "conditions":
                assert node["x-kubernetes-list-type"] == "map", path
                assert node["x-kubernetes-list-map-keys"] == ["type"], path
            if leaf == "phase":
                problems.append(f"{path}: phase strings are not used; use conditions")
    assert problems == []
    assert "observedGeneration" in root["properties"]["status"]["properties"]

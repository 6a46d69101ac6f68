"""Regenerate generated artefacts from the API models: crds/ and docs/api.md (`make crds`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    for key, label in (("pattern", "pattern"), ("minimum", "min"), ("maximum", "max"),
                       ("minLength", "min length"), ("maxLength", "max length"),
                       ("minItems", "min items"), ("maxItems", "max items"),
                       ("default", "default")):  # fmt: skip
        if key in node:
            value = json.dumps(node[key]) if key == "default" else node[key]
            parts.append(f"{label} `{value}`")
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if node.get("x-kubernetes-list-type") == "map":
        parts.append("unique by " + ", ".join(node["x-kubernetes-list-map-keys"]))
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(f"rule: {rule['message']}")
    return "; ".join(parts)


def _rows(node: dict[str, Any], path: str, required: bool) -> list[str]:
    kind = node.get("type", "")
    if kind == "array":
        kind = f"[]{node['items'].get('type', '')}"
    description = " ".join(node.get("description", "").split()).replace("|", "\\|")
    constraints = _constraints(node).replace("|", "\\|")
    rows = [f"| `{path}` | {kind} | {'yes' if required else ''} | {description} | {constraints} |"]
    children = node.get("properties") or node.get("items", {}).get("properties") or {}
    needed = set(node.get("required") or node.get("items", {}).get("required") or [])
    prefix = f"{path}[]" if kind.startswith("[]") else path
    for name, child in children.items():
        rows += _rows(child, f"{prefix}.{name}", name in needed)
    return rows


def render_api_doc() -> str:
    """docs/api.md: every field of every kind, with constraints and the examples."""
    out = [
        "# API reference",
        "",
        "Generated from `operator/chargeback/api` by `make crds`. Do not edit.",
        "Group `chargeback.dev`, version `v1alpha1`.",
    ]
    for crd in all_crds().values():
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        root = version["schema"]["openAPIV3Schema"]
        columns = ", ".join(c["name"] for c in version["additionalPrinterColumns"])
        scope = f"Scope: {crd['spec']['scope']}. Short name: `{names['shortNames'][0]}`."
        header = "| field | type | required | description | constraints |"
        out += ["", f"## {names['kind']}", "", root["description"], ""]
        out += [f"{scope} Printer columns: {columns}.", "", header, "|---|---|---|---|---|"]
        for section in ("spec", "status"):
            if section in root["properties"]:
                out += _rows(root["properties"][section], section, section == "spec")
        for example in sorted((ROOT / "docs" / "examples").glob("*.yaml")):
            if f"kind: {names['kind']}" in example.read_text():
                out += ["", f"Example (`docs/examples/{example.name}`):", "", "```yaml",
                        example.read_text().rstrip(), "```"]  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    """Write the artefacts named on the command line."""
    if sys.argv[1:] != ["crds"]:
        raise SystemExit("usage: gen.py crds")
    for name, text in render_crds().items():
        for folder in ("crds", "charts/chargeback-operator/crds"):
            (ROOT / folder / name).write_text(text)
            print(f"Wrote {folder}/{name}")
    (ROOT / "docs" / "api.md").write_text(render_api_doc())
    print("Wrote docs/api.md")


if __name__ == "__main__":
    main()

"""The OLM bundle for OperatorHub (`make bundle`), generated from the chart and crds/.

The chart is rendered by helm with its defaults (OpenShift's), and the bundle is built from what
comes out: the ClusterServiceVersion's install strategy takes the chart's Deployment as it is, its
permissions are the rules of every ClusterRole the chart binds to the operator's ServiceAccount,
and the chart's other objects that OLM may install (the Service, the users' ClusterRoles) go in
beside it. So a change to the chart's RBAC or Deployment is a change to the bundle, and
tests/e2e/test_release.py checks that the two agree.

    python hack/bundle.py --image REGISTRY/chargeback-operator:VERSION --output bundle/

writes ``manifests/`` (the CSV, the CRDs, the extra objects), ``metadata/annotations.yaml`` and
``bundle.Dockerfile`` (the bundle image: `make release` builds and pushes it).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "chargeback-operator"
PACKAGE = "chargeback-operator"
CHANNEL = "alpha"
NAME = PACKAGE
"""The release name the chart is rendered with: it names the ServiceAccount, Deployment, Service."""
NAMESPACE = "olm-install-namespace"
"""A placeholder: OLM installs into the namespace of the OperatorGroup, known only then."""
REPOSITORY = "https://github.com/chargeback-operator/chargeback-operator"

# OLM grants a CSV's permissions as rules of roles it makes; it cannot bind a role that exists
# elsewhere. The chart binds two such roles, so their rules are written out here.
EXTERNAL_ROLES: dict[str, list[dict[str, Any]]] = {
    # Kubernetes' bootstrap role (TokenReview and SubjectAccessReview for the HTTP endpoint).
    "system:auth-delegator": [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ],
    # OpenShift's cluster-monitoring-view (cluster-monitoring-operator's cluster-role-view):
    # reading metrics through Thanos Querier.
    "cluster-monitoring-view": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["prometheuses/api"],
            "resourceNames": ["k8s"],
            "verbs": ["get", "create", "update"],
        },
    ],
}

# Kinds a bundle may carry besides the CSV and CRDs, that the chart renders.
EXTRA_KINDS = {"Service", "ClusterRole"}

ICON = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
<rect width="64" height="64" rx="12" fill="#1f4e79"/>
<rect x="12" y="36" width="8" height="16" fill="#9fd3ff"/>
<rect x="28" y="24" width="8" height="28" fill="#9fd3ff"/>
<rect x="44" y="12" width="8" height="40" fill="#ffd166"/>
</svg>
"""

DESCRIPTION = """Billing-grade chargeback for AI models served behind a gateway (Red Hat
Models-as-a-Service, Envoy AI Gateway, Kong, LiteLLM, vLLM). The operator reads the gateway's
token counters from Prometheus or Thanos Querier, turns them into exact usage per user, team,
model and tier, keeps it in a durable SQL ledger beyond Prometheus retention, prices it from
`TierPricing` resources with decimal money, and shows it in `UsageReport` status, finance exports
(CSV, JSON, FinOps FOCUS), HTML statements and generated Grafana and Perses dashboards.

## Before you install

The ledger lives on a PersistentVolumeClaim named `chargeback-operator-ledger` in the namespace
the operator is installed into. Create it first (ReadWriteOnce; docs/scaling.md in the
repository gives the ledger's size per usage row):

    oc create -n <namespace> -f - <<EOF
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata: {name: chargeback-operator-ledger}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
    EOF

The operator reads metrics through `thanos-querier.openshift-monitoring.svc:9091` with its
ServiceAccount token. To point it elsewhere, set `CHARGEBACK_PROMETHEUS_URL` in the
Subscription's `spec.config.env`.

## Then

1. `oc apply` a `TierPricing` (prices per tier and model),
2. grant namespaces their usage with a `UsageScope`,
3. create a `UsageReport` and read `oc get usagereports`.
"""


def render_chart(helm: str, image: str) -> list[dict[str, Any]]:
    """The chart's objects as helm renders them with its defaults and this image."""
    repository, tag = image.rsplit(":", 1)
    done = subprocess.run(
        [
            helm,
            "template",
            NAME,
            str(CHART),
            "-n",
            NAMESPACE,
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"bundle: helm template failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind, in rendering order."""
    return [o for o in objects if o.get("kind") == kind]


def operator_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rule the chart grants the operator's ServiceAccount, through its bindings."""
    roles = {r["metadata"]["name"]: r.get("rules", []) for r in of_kind(objects, "ClusterRole")}
    rules: list[dict[str, Any]] = []
    for binding in of_kind(objects, "ClusterRoleBinding"):
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == NAME for s in subjects):
            continue
        role = binding["roleRef"]["name"]
        if role in roles:
            rules += roles[role]
        elif role in EXTERNAL_ROLES:
            rules += EXTERNAL_ROLES[role]
        else:
            sys.exit(
                f"bundle: the chart binds the operator to ClusterRole {role}, whose rules "
                "this generator does not know: add them to EXTERNAL_ROLES"
            )
    if of_kind(objects, "RoleBinding"):
        sys.exit("bundle: the chart now has RoleBindings: map them to the CSV's permissions")
    return rules


def _managed_by_olm(labels: dict[str, str]) -> dict[str, str]:
    return {**labels, "app.kubernetes.io/managed-by": "olm"}


def deployment_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's Deployment, the install namespace read from the pod instead of rendered in."""
    (deployment,) = of_kind(objects, "Deployment")
    spec: dict[str, Any] = json.loads(json.dumps(deployment["spec"]))
    template = spec["template"]
    template["metadata"]["labels"] = _managed_by_olm(template["metadata"]["labels"])
    for container in template["spec"]["containers"]:
        for env in container.get("env", []):
            if env.get("value") == NAMESPACE:
                del env["value"]
                env["valueFrom"] = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    if NAMESPACE in json.dumps(spec):
        sys.exit("bundle: the Deployment names the release namespace where OLM cannot fill it in")
    return spec


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, from crds/ (which `make crds` generates from the API models)."""
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))}


def _words(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", kind)


def owned(crd: dict[str, Any]) -> dict[str, Any]:
    """The CSV's entry for one CRD: its storage version, kind and description."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return {
        "name": crd["metadata"]["name"],
        "version": version["name"],
        "kind": crd["spec"]["names"]["kind"],
        "displayName": _words(crd["spec"]["names"]["kind"]),
        "description": version["schema"]["openAPIV3Schema"]["description"],
    }


def examples() -> list[dict[str, Any]]:
    """The samples of docs/examples/, shown by the console as each kind's example."""
    found = []
    for name in ("tierpricing.yaml", "usagescope.yaml", "usagereport-monthly.yaml"):
        found += [
            doc for doc in yaml.safe_load_all((ROOT / "docs/examples" / name).read_text()) if doc
        ]
    return found


def version() -> str:
    """The one version of a release: pyproject.toml's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def default_image() -> str:
    """The chart's default image at this version."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return f"{values['image']['repository']}:{version()}"


def chart_meta() -> dict[str, Any]:
    """Chart.yaml."""
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


def csv(objects: list[dict[str, Any]], image: str) -> dict[str, Any]:
    """The ClusterServiceVersion."""
    meta = chart_meta()
    (deployment,) = of_kind(objects, "Deployment")
    min_kube = re.sub(r"^>=\s*|-0$", "", meta["kubeVersion"])
    return {
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": f"{PACKAGE}.v{version()}",
            "annotations": {
                "alm-examples": json.dumps(examples(), indent=2),
                "capabilities": "Basic Install",
                "categories": "AI/Machine Learning,Monitoring",
                "containerImage": image,
                "description": meta["description"],
                "repository": REPOSITORY,
                "support": "chargeback-operator project",
                "operatorframework.io/suggested-namespace": "chargeback-system",
            },
        },
        "spec": {
            "displayName": "Chargeback Operator",
            "description": DESCRIPTION,
            "version": version(),
            "minKubeVersion": min_kube,
            "maturity": CHANNEL,
            "provider": {"name": "chargeback-operator project", "url": REPOSITORY},
            "maintainers": [
                {"name": "chargeback-operator maintainers", "email": "maintainers@chargeback.dev"}
            ],
            "links": [
                {"name": "Documentation", "url": f"{REPOSITORY}/tree/main/docs"},
                {"name": "Source", "url": REPOSITORY},
            ],
            "keywords": meta["keywords"],
            "icon": [
                {
                    "base64data": base64.b64encode(ICON.encode()).decode(),
                    "mediatype": "image/svg+xml",
                }
            ],
            "installModes": [
                {"type": "OwnNamespace", "supported": False},
                {"type": "SingleNamespace", "supported": False},
                {"type": "MultiNamespace", "supported": False},
                # Prices and scopes are cluster-wide; reports are read in every namespace.
                {"type": "AllNamespaces", "supported": True},
            ],
            "customresourcedefinitions": {"owned": [owned(c) for c in crds().values()]},
            "install": {
                "strategy": "deployment",
                "spec": {
                    "clusterPermissions": [
                        {"serviceAccountName": NAME, "rules": operator_rules(objects)}
                    ],
                    "deployments": [
                        {
                            "name": deployment["metadata"]["name"],
                            "label": _managed_by_olm(deployment["metadata"]["labels"]),
                            "spec": deployment_spec(objects),
                        }
                    ],
                },
            },
        },
    }


def extras(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """File name -> the chart's objects a bundle may carry, but the operator's own role."""
    found = {}
    for obj in objects:
        own_role = obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == NAME
        if obj["kind"] not in EXTRA_KINDS or own_role:
            continue
        copy = json.loads(json.dumps(obj))
        copy["metadata"].pop("namespace", None)
        copy["metadata"]["labels"] = _managed_by_olm(copy["metadata"].get("labels", {}))
        name = copy["metadata"]["name"].replace(":", "-")
        found[f"{name}_{copy['apiVersion'].split('/')[0]}_{copy['kind'].lower()}.yaml"] = copy
    return found


ANNOTATIONS = {
    "operators.operatorframework.io.bundle.mediatype.v1": "registry+v1",
    "operators.operatorframework.io.bundle.manifests.v1": "manifests/",
    "operators.operatorframework.io.bundle.metadata.v1": "metadata/",
    "operators.operatorframework.io.bundle.package.v1": PACKAGE,
    "operators.operatorframework.io.bundle.channels.v1": CHANNEL,
    "operators.operatorframework.io.bundle.channel.default.v1": CHANNEL,
}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the description, alm-examples) as literal blocks, readable in review."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)


def dump(obj: Any) -> str:
    """YAML as the bundle files hold it."""
    return "# Generated by `make bundle` (hack/bundle.py). Do not edit.\n" + yaml.dump(
        obj, Dumper=_Dumper, sort_keys=False, width=100
    )


def write_bundle(output: Path, helm: str, image: str) -> None:
    """The whole bundle in ``output`` (replaced)."""
    objects = render_chart(helm, image)
    shutil.rmtree(output, ignore_errors=True)
    manifests, metadata = output / "manifests", output / "metadata"
    manifests.mkdir(parents=True)
    metadata.mkdir()
    (manifests / f"{PACKAGE}.clusterserviceversion.yaml").write_text(dump(csv(objects, image)))
    for name, crd in crds().items():
        (manifests / name).write_text(dump(crd))
    for name, obj in extras(objects).items():
        (manifests / name).write_text(dump(obj))
    (metadata / "annotations.yaml").write_text(dump({"annotations": ANNOTATIONS}))
    labels = "".join(f"LABEL {k}={v}\n" for k, v in ANNOTATIONS.items())
    (output / "bundle.Dockerfile").write_text(
        f"# The OLM bundle image (`make release` builds it).\nFROM scratch\n{labels}"
        "COPY manifests /manifests/\nCOPY metadata /metadata/\n"
    )


def main() -> None:
    """Write the bundle the command line asks for (--image, --output, --helm)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image",
        default=default_image(),
        help="the operator image, REPOSITORY:TAG (default: the chart's)",
    )
    parser.add_argument("--output", required=True, type=Path, help="the bundle directory")
    parser.add_argument("--helm", default="helm", help="the helm binary")
    args = parser.parse_args()
    if ":" not in args.image.rsplit("/", 1)[-1]:
        parser.error(f"--image {args.image}: give REPOSITORY:VERSION")
    write_bundle(args.output, args.helm, args.image)
    print(f"[bundle] Wrote {args.output} for {args.image}")


if __name__ == "__main__":
    main()

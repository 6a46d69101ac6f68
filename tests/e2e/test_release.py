"""Releases as users meet them: the image from an empty machine, `make release` to a real
registry, the OLM bundle validated by operator-sdk, and the install docs' image references.

The registry is Debian's docker-registry (the CNCF distribution registry) on loopback; the
release it holds is pushed once per session (``release`` in tests/conftest.py) and installed on
a real node by tests/node/test_chart_on_node.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chargeback.testing.process import free_port
from chargeback.testing.registry import RegistryServer
from chargeback.testing.tools import CACHE_ROOT, binary
from tests.conftest import (
    ROOT,
    VERSION_TAG,
    CleanInstall,
    Release,
    forget_release_images,
    make_release,
)
from tests.test_docs import readme_block

CHART = ROOT / "charts" / "chargeback-operator"
INSTALL_DOC = "docs/install-openshift.md"
OPERATOR_SDK = CACHE_ROOT / "bin" / "operator-sdk-v1.42.2" / "operator-sdk"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """helm from the repository root, where the docs' commands run."""
    return subprocess.run(
        [str(binary("helm")), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def rendered(*args: str) -> list[dict[str, Any]]:
    """`helm template` of the chart (or of ``args``' chart), as objects."""
    done = helm("template", *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def deployment_image(objects: list[dict[str, Any]]) -> str:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


# --- One version -----------------------------------------------------------------------------


def test_one_version_for_package_chart_and_image(clean_install: CleanInstall) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == VERSION_TAG
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == ""  # the chart's appVersion
    assert deployment_image(rendered("x", str(CHART))).endswith(f":{VERSION_TAG}")
    printed = subprocess.run(
        [str(clean_install.bin / "chargeback"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip() == f"chargeback, version {VERSION_TAG}"


# --- The image on a machine that never built it ----------------------------------------------


@pytest.fixture
def empty_storage(tmp_path: Path) -> Iterator[dict[str, str]]:
    """podman's environment with a container storage of its own, empty, removed afterwards."""
    root = tmp_path / "storage"
    conf = tmp_path / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    yield env
    subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True, check=False)
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_image_on_a_machine_that_never_built_it(empty_storage: dict[str, str]) -> None:
    def podman(*args: str) -> str:
        return subprocess.run(
            ["podman", *args],
            env=empty_storage,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout

    assert podman("images", "-q").strip() == ""  # nothing cached: no base, no layers
    began = time.monotonic()
    built = subprocess.run(
        ["make", "image", "IMAGE=localhost/chargeback-cold:test"],
        cwd=ROOT,
        env=empty_storage,
        capture_output=True,
        text=True,
        check=False,
        timeout=1700,
    )
    elapsed = time.monotonic() - began
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "Building local base" in built.stdout  # the path a new machine takes
    assert "Usage: chargeback" in podman("run", "--rm", "localhost/chargeback-cold:test", "--help")
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "cold-image-build.json").write_text(
        json.dumps({"make image, empty container storage (s)": round(elapsed, 1)})
    )


# --- make release: what it refuses, before anything is pushed --------------------------------


def last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("[release] error:")]
    assert len(lines) == 1, done.stdout[-2000:] + done.stderr[-2000:]
    return lines[0]


def test_release_without_registry_says_how_to_give_one() -> None:
    done = make_release(None)
    assert done.returncode != 0
    assert "REGISTRY is not set: make release REGISTRY=host[:port]/path" in last_error(done)
    with_scheme = make_release("http://localhost:5000/x")
    assert "has a scheme" in last_error(with_scheme)
    upper = make_release("localhost:5000/MyOrg")
    assert "the path after the host may hold only lower-case letters" in last_error(upper)


def test_release_to_an_unreachable_registry_fails_before_building() -> None:
    host = f"127.0.0.1:{free_port()}"
    done = make_release(f"{host}/chargeback", "INSECURE=1")
    assert done.returncode != 0
    assert f"registry {host} is unreachable over http" in last_error(done)
    assert "Building the image" not in done.stdout


def test_release_over_https_to_a_plain_http_registry_says_insecure(release: Release) -> None:
    done = make_release(release.name)
    assert "does not answer HTTPS but answers plain HTTP: add INSECURE=1" in last_error(done)


def test_release_refused_credentials_are_named(tmp_path: Path) -> None:
    with RegistryServer(htpasswd=True, workdir=tmp_path / "locked") as locked:
        anonymous = make_release(
            f"{locked.host}/chargeback",
            "INSECURE=1",
            REGISTRY_AUTH_FILE=str(tmp_path / "none.json"),
        )
        assert "asks for credentials and podman has none: podman login" in last_error(anonymous)
        auth = tmp_path / "auth.json"
        token = base64.b64encode(b"alice:wrong").decode()
        auth.write_text(json.dumps({"auths": {locked.host: {"auth": token}}}))
        wrong = make_release(
            f"{locked.host}/chargeback", "INSECURE=1", REGISTRY_AUTH_FILE=str(auth)
        )
        assert "refused the credentials podman has for it: podman login" in last_error(wrong)
        assert "Building the image" not in wrong.stdout
        stored = locked.workdir / "data" / "docker" / "registry" / "v2" / "repositories"
        assert not stored.exists()  # nothing was pushed


def test_release_of_a_version_already_there_is_refused(release: Release) -> None:
    again = make_release(release.name, "INSECURE=1")
    assert again.returncode != 0
    message = last_error(again)
    assert f"version {VERSION_TAG} is already released in {release.name}" in message
    assert f"image {release.image}" in message
    assert f"chart {release.chart}:{VERSION_TAG}" in message
    assert "raise the version in pyproject.toml" in message
    assert "Building the image" not in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_release_that_fails_halfway_says_what_was_pushed(release: Release, tmp_path: Path) -> None:
    # The registry cannot take uploads to the chart's repository: a file stands where their
    # directory goes. Look-ups there still answer "not found", the image and the bundle are
    # stored, and the chart's upload fails (HTTP 500). It starts with the session release's blobs
    # (hard links) and no tags, so the image's layers need not travel again.
    half_dir = tmp_path / "half"
    half_dir.mkdir()
    subprocess.run(["cp", "-al", str(release.registry.workdir / "data"), str(half_dir)], check=True)
    repositories = half_dir / "data" / "docker" / "registry" / "v2" / "repositories"
    for tags in list(repositories.glob("**/_manifests/tags")):
        shutil.rmtree(tags)
    uploads = repositories / "chargeback" / "charts" / "chargeback-operator" / "_uploads"
    shutil.rmtree(uploads, ignore_errors=True)
    uploads.parent.mkdir(parents=True, exist_ok=True)
    uploads.write_text("not a directory\n")
    with RegistryServer(workdir=half_dir) as half:
        try:
            done = make_release(f"{half.host}/chargeback", "INSECURE=1")
        finally:
            forget_release_images(f"{half.host}/chargeback")
        assert done.returncode != 0
        image = f"{half.host}/chargeback/chargeback-operator:{VERSION_TAG}"
        bundle = f"{half.host}/chargeback/chargeback-operator-bundle:v{VERSION_TAG}"
        chart = f"oci://{half.host}/chargeback/charts/chargeback-operator:{VERSION_TAG}"
        assert last_error(done).startswith(f"[release] error: pushing the chart {chart} failed")
        assert f"[release] pushed: image {image}, bundle {bundle}" in done.stderr
        assert f"[release] not pushed: chart {chart}" in done.stderr
        assert half.tags("chargeback/chargeback-operator") == [VERSION_TAG]


def test_release_pushed_the_three_artifacts(release: Release) -> None:
    assert release.registry.tags("chargeback/chargeback-operator") == [VERSION_TAG]
    assert release.registry.tags("chargeback/chargeback-operator-bundle") == [f"v{VERSION_TAG}"]
    assert release.registry.tags("chargeback/charts/chargeback-operator") == [VERSION_TAG]
    # The released chart names the image released beside it, at the one version.
    shown = helm("show", "chart", "--plain-http", release.chart, "--version", VERSION_TAG)
    assert shown.returncode == 0, shown.stderr
    chart = yaml.safe_load(shown.stdout)
    assert chart["version"] == chart["appVersion"] == VERSION_TAG
    objects = rendered("x", release.chart, "--version", VERSION_TAG, "--plain-http")
    assert deployment_image(objects) == release.image
    # The bundle image carries the bundle, labelled as OLM reads it, for the released image.
    bundle = f"{release.name}/chargeback-operator-bundle:v{VERSION_TAG}"
    labels = json.loads(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{json .Labels}}", bundle],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert labels["operators.operatorframework.io.bundle.package.v1"] == "chargeback-operator"
    assert labels["operators.operatorframework.io.bundle.mediatype.v1"] == "registry+v1"
    for line in ("image", "bundle", "chart"):
        assert re.search(rf"\] +{line} +\S+", release.output), release.output


# --- The OLM bundle -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make bundle` into a directory of its own (validated by operator-sdk as it is made)."""
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    done = subprocess.run(
        ["make", "bundle", f"BUNDLE_DIR={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All validation tests have completed successfully" in done.stdout + done.stderr
    return out


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(OPERATOR_SDK),
            "bundle",
            "validate",
            str(path),
            "--select-optional",
            "suite=operatorframework",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def csv_of(bundle: Path) -> dict[str, Any]:
    (path,) = (bundle / "manifests").glob("*.clusterserviceversion.yaml")
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def test_bundle_passes_operator_sdk_validation_and_a_broken_one_does_not(
    bundle: Path, tmp_path: Path
) -> None:
    done = validate(bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERRO" not in done.stdout + done.stderr
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "manifests" / "chargeback.dev_usagescopes.yaml").unlink()  # owned, not shipped
    refused = validate(broken)
    assert refused.returncode != 0
    assert 'owned CRD \\"chargeback.dev/v1alpha1, Kind=UsageScope\\" not found' in refused.stdout


def rules_key(rules: list[dict[str, Any]]) -> list[str]:
    """Rules as comparable lines: one per (groups, resource, name, verb) they grant."""
    lines = set()
    for rule in rules:
        for group in rule.get("apiGroups", [None]):
            for resource in rule.get("resources", rule.get("nonResourceURLs", [])):
                for name in rule.get("resourceNames", ["*"]):
                    for verb in rule["verbs"]:
                        lines.add(f"{group}|{resource}|{name}|{verb}")
    return sorted(lines)


def test_bundle_permissions_are_the_charts_rbac(bundle: Path, api_client: client.ApiClient) -> None:
    objects = rendered("chargeback-operator", str(CHART), "-n", "chargeback-system")
    roles = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "ClusterRole"}
    # system:auth-delegator as this API server defines it; cluster-monitoring-view is OpenShift's
    # (not on this API server): its rules are the cluster-monitoring-operator's definition.
    delegator = client.RbacAuthorizationV1Api(api_client).read_cluster_role("system:auth-delegator")
    roles["system:auth-delegator"] = api_client.sanitize_for_serialization(delegator.rules)
    roles["cluster-monitoring-view"] = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["prometheuses/api"],
            "resourceNames": ["k8s"],
            "verbs": ["get", "create", "update"],
        },
    ]
    granted: list[dict[str, Any]] = []
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        if any(s["name"] == "chargeback-operator" for s in binding["subjects"]):
            granted += roles[binding["roleRef"]["name"]]
    assert not [o for o in objects if o["kind"] in {"Role", "RoleBinding"}]
    spec = csv_of(bundle)["spec"]["install"]["spec"]
    (permissions,) = spec["clusterPermissions"]
    assert permissions["serviceAccountName"] == "chargeback-operator"
    assert rules_key(permissions["rules"]) == rules_key(granted)
    assert "permissions" not in spec


def test_bundle_deployment_and_crds_are_the_charts(bundle: Path) -> None:
    objects = rendered("chargeback-operator", str(CHART), "-n", "chargeback-system")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (installed,) = csv_of(bundle)["spec"]["install"]["spec"]["deployments"]
    assert installed["name"] == deployment["metadata"]["name"]
    chart_pod, bundle_pod = deployment["spec"]["template"], installed["spec"]["template"]
    assert bundle_pod["spec"]["securityContext"] == chart_pod["spec"]["securityContext"]
    assert bundle_pod["spec"]["volumes"] == chart_pod["spec"]["volumes"]
    assert bundle_pod["spec"]["serviceAccountName"] == "chargeback-operator"
    chart_env = {e["name"]: e for e in chart_pod["spec"]["containers"][0]["env"]}
    bundle_env = {e["name"]: e for e in bundle_pod["spec"]["containers"][0]["env"]}
    # The install namespace comes from the pod in OLM; everything else is the chart's.
    namespace_from_pod = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert bundle_env.pop("CHARGEBACK_DASHBOARD_NAMESPACE")["valueFrom"] == namespace_from_pod
    assert chart_env.pop("CHARGEBACK_DASHBOARD_NAMESPACE")["value"] == "chargeback-system"
    assert bundle_env == chart_env
    container = {k: v for k, v in bundle_pod["spec"]["containers"][0].items() if k != "env"}
    assert container == {k: v for k, v in chart_pod["spec"]["containers"][0].items() if k != "env"}
    # Every CRD, as crds/ holds it, owned by the CSV with its description.
    owned = {c["name"]: c for c in csv_of(bundle)["spec"]["customresourcedefinitions"]["owned"]}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert yaml.safe_load((bundle / "manifests" / path.name).read_text()) == crd
        assert owned[crd["metadata"]["name"]]["description"]
    examples = json.loads(csv_of(bundle)["metadata"]["annotations"]["alm-examples"])
    assert {e["kind"] for e in examples} == {"TierPricing", "UsageScope", "UsageReport"}


# --- The install docs' image references -------------------------------------------------------


def doc_lines(first: str) -> list[str]:
    block = readme_block(first, INSTALL_DOC).replace("\\\n", " ")
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_openshift_build_route_renders_the_image_it_builds() -> None:
    """Route (a). `oc` cannot run here (no OpenShift): the image stream's pull spec is derived
    from the docs' own `oc new-build`, and the docs' `helm install` is rendered with helm."""
    lines = doc_lines("oc new-project")
    (project,) = [shlex.split(line)[2] for line in lines if line.startswith("oc new-project")]
    (build,) = [shlex.split(line) for line in lines if line.startswith("oc new-build")]
    assert {"--binary", "--strategy=docker"} <= set(build)
    name = build[build.index("--name") + 1]
    assert build[build.index("-n") + 1] == project
    # OpenShift's docker strategy reads `Dockerfile` unless the BuildConfig names another file.
    (patch,) = [shlex.split(line) for line in lines if line.startswith("oc patch")]
    assert patch[2] == f"bc/{name}"
    strategy = json.loads(patch[patch.index("-p") + 1])["spec"]["strategy"]["dockerStrategy"]
    assert (ROOT / strategy["dockerfilePath"]).is_file()
    assert not (ROOT / "Dockerfile").exists()
    (start,) = [shlex.split(line) for line in lines if line.startswith("oc start-build")]
    assert start[2] == name
    assert "--from-dir=." in start
    # An OpenShift build's output: the internal registry's image stream, tag latest.
    built = f"image-registry.openshift-image-registry.svc:5000/{project}/{name}:latest"
    (install,) = [shlex.split(line) for line in lines if line.startswith("helm install")]
    assert install[:2] == ["helm", "install"]
    assert deployment_image(rendered(*install[2:])) == built
    # The chart's default repository is that image stream: the --set only says it out loud.
    defaults = rendered("chargeback", str(CHART), "-n", project)
    assert deployment_image(defaults) == built.replace(":latest", f":{VERSION_TAG}")


def test_release_route_installs_the_image_it_released(release: Release) -> None:
    """Route (b), rendered from the registry (tests/node runs it on a node)."""
    lines = doc_lines("REGISTRY=")
    assert lines[1] == "make release REGISTRY=$REGISTRY"
    (install,) = [line for line in lines if line.startswith("helm install")]
    args = shlex.split(install.replace("$REGISTRY", release.name))
    assert args[args.index("--version") + 1] == VERSION_TAG
    image = deployment_image(rendered(*args[2:], "--plain-http"))
    assert image == release.image


def test_readme_use_it_names_the_release_route() -> None:
    readme = (ROOT / "README.md").read_text()
    use_it = " ".join(readme[readme.index("## Use it") : readme.index("## Requirements")].split())
    assert "make release REGISTRY=" in use_it
    assert "helm install chargeback oci://" in use_it

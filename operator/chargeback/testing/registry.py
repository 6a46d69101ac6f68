"""A real OCI registry (Debian's docker-registry, the CNCF distribution registry 2.8) on loopback.

Plain HTTP on ``127.0.0.1`` (podman ``--tls-verify=false``, helm ``--plain-http``, containerd's
``hosts.toml`` with an ``http://`` host), the way `make release INSECURE=1` speaks to it. With
``htpasswd`` set, every request needs basic authentication with credentials nobody is given:
the case of a registry that refuses a push.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from chargeback.testing.process import ManagedProcess, ServedProcess, free_port
from chargeback.testing.tools import binary

# A well-formed bcrypt entry (cost 5) whose password no test knows.
_LOCKED = "nobody:$2y$05$C6Rj5fh/aeJvjt6OwsEm0u1BmfbrF3nGyRcCpnHkGsxhOjsv8ZLQ6\n"


class RegistryServer(ServedProcess):
    """One registry process with its storage in a temporary directory."""

    def __init__(self, *, htpasswd: bool = False, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chargeback-registry-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        config = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'data'}}}}}",
            f"http: {{addr: '{self.host}'}}",
        ]
        if htpasswd:
            (self.workdir / "htpasswd").write_text(_LOCKED)
            config.append(f"auth: {{htpasswd: {{realm: test, path: {self.workdir / 'htpasswd'}}}}}")
        (self.workdir / "config.yml").write_text("\n".join(config) + "\n")
        self.process = ManagedProcess(
            "docker-registry",
            [str(binary("docker-registry")), "serve", str(self.workdir / "config.yml")],
            self.workdir / "registry.log",
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except urllib.error.HTTPError as err:
            return err.code == 401  # up, and asking for credentials

    def tags(self, repository: str) -> list[str]:
        """The tags of ``repository`` (empty when it does not exist)."""
        try:
            with urllib.request.urlopen(  # noqa: S310 - loopback URL
                f"{self.url}/v2/{repository}/tags/list", timeout=10
            ) as response:
                return list(json.load(response).get("tags") or [])
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise

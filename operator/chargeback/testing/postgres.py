"""A private PostgreSQL cluster in a temporary directory, listening on a loopback port.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the ``postgres``
user that Debian's package creates and its commands run through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from chargeback.testing.process import ComponentError, ManagedProcess, free_port
from chargeback.testing.tools import binary

START_TIMEOUT = 60.0
SUPERUSER = "postgres"


class PostgresServer:
    """initdb + postgres in a temp dir; ``create_database`` gives each test its own database."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="chargeback-pg-"))
        self.datadir = self.workdir / "data"
        self.port = free_port()
        self.run_as = SUPERUSER if os.geteuid() == 0 else None
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self.process = ManagedProcess(
            "postgres",
            [
                str(binary("postgres")),
                "-D", str(self.datadir),
                "-p", str(self.port),
                "-k", str(self.workdir),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            self.workdir / "postgres.log",
            user=self.run_as,
        )  # fmt: skip

    def start(self) -> None:
        """Initialise the cluster and start the server."""
        argv = [str(binary("initdb")), "-D", str(self.datadir), "-U", SUPERUSER,
                "--auth=trust", "-E", "UTF8", "--no-sync"]  # fmt: skip
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ComponentError(f"initdb failed: {result.stdout[-1000:]}{result.stderr[-2000:]}")
        self.process.start()
        self.process.wait_ready(self._ready, START_TIMEOUT)

    def dsn(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _ready(self) -> bool:
        with psycopg.connect(self._conninfo(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its SQLAlchemy URL."""
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def close(self) -> None:
        """Fast shutdown (SIGINT) and removal of the data directory."""
        self.process.stop(sig=signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

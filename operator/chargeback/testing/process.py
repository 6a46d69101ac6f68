"""Supervision of one external process: start, wait for readiness, show its log on failure, stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

LOG_TAIL_LINES = 40


class ComponentError(RuntimeError):
    """A platform component failed to start or stopped unexpectedly."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a log file, or a note when it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A child process whose output goes to a log file and which is stopped reliably."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.user = user
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the process in its own process group, appending output to the log."""
        argv = self.argv
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )

    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns True; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ComponentError(
                    f"{self.name} exited during start-up (code {self._exit_code()}); "
                    f"log tail:\n{log_tail(self.log_path)}"
                )
            try:
                if probe():
                    return
            except Exception:  # noqa: S110 - not ready yet, whatever the probe raised
                pass
            time.sleep(0.2)
        self.stop()
        raise ComponentError(
            f"{self.name} was not ready after {timeout:.0f}s; log tail:\n{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Signal the process group, then kill it if it does not exit in time."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass

    def _exit_code(self) -> int | None:
        return self._proc.returncode if self._proc else None


class ServedProcess:
    """A server in a work directory of its own, as a context manager.

    On entry it is started and awaited; on exit, also when it never became ready, it is stopped
    and its directory removed.
    """

    process: ManagedProcess
    workdir: Path
    start_timeout = 30.0

    def _ready(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.process.start()
            self.process.wait_ready(self._ready, self.start_timeout)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

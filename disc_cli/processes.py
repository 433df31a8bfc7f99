"""Child processes and ports, shared by `disc demo`, the benchmarks and the tests that start real
servers: one way to start `disc` in a subprocess, to find a free port and to stop a process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


class Child:
    """A child process in its own process group, its output in a log file.

    ``stop`` ends the whole group: SIGTERM (a Celery worker finishes its current task first), then
    SIGKILL after ``grace_s``.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 20.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything the child left in its group
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def disc_argv(*args: str) -> list[str]:
    """Run `disc` with this interpreter, whether or not the console script is on PATH."""
    return [sys.executable, "-m", "disc_cli.main", *args]

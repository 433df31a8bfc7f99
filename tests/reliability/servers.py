"""Private PostgreSQL and Redis servers that fault tests may stop, kill and restart.

Restarting the machine's shared servers would break every other test running beside this
suite, so these tests run their own: a throwaway PostgreSQL cluster (``initdb`` into a
temporary folder) and a throwaway ``redis-server``, each on a free loopback port, removed at
teardown. PostgreSQL refuses to run as root; when the tests run as root the cluster belongs to
the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from disc_cli.processes import free_port


def _wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _pg_bin_dir() -> Path:
    explicit = os.environ.get("DISC_TEST_PG_BIN")
    if explicit:
        return Path(explicit)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; set DISC_TEST_PG_BIN")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of its own (trust auth, user ``postgres``, fsync off), listening on
    loopback and on any ``extra_addresses`` (the address other test hosts reach it by)."""

    def __init__(self, extra_addresses: tuple[str, ...] = ()) -> None:
        self.extra_addresses = extra_addresses
        self.bin = _pg_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="disc-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, user="postgres")
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        if extra_addresses:
            with open(self.data / "pg_hba.conf", "a") as hba:
                for address in extra_addresses:
                    hba.write(f"host all all {address.rsplit('.', 1)[0]}.0/24 trust\n")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()}\n{log[-2000:]}")

    def start(self) -> None:
        addresses = ",".join(("127.0.0.1", *self.extra_addresses))
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={addresses} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions cleanly; ``immediate`` is a crash (recovery runs at the next start)."""
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` of its own, without persistence: a restart loses every message in it."""

    def __init__(self, extra_addresses: tuple[str, ...] = ()) -> None:
        self.extra_addresses = extra_addresses
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="disc-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *self.extra_addresses,
             # Reached from another test host (a network namespace) without a password.
             *(["--protected-mode", "no"] if self.extra_addresses else []), "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_for_port(self.port, 30, self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

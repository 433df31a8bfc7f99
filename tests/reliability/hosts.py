"""A second test "host": a network namespace joined to this one by a veth pair.

A process started in it has its own loopback and sees this machine only at ``host_address``:
it reaches exactly the servers that listen there (the private PostgreSQL, Redis and S3 of the
scale-out tests), not anything bound to this machine's 127.0.0.1. Needs root and iproute2;
``NetworkHost.create`` returns None where namespaces cannot be made, and callers fall back to
processes that differ only in their folders and environment.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


def _addresses_in_use() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout


class NetworkHost:
    def __init__(self, name: str, veth: str, subnet: str):
        self.name = name
        self.veth = veth
        self.host_address = f"{subnet}.1"    # this machine, as the namespace sees it
        self.guest_address = f"{subnet}.2"   # the namespace, as this machine sees it

    @classmethod
    def create(cls) -> NetworkHost | None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return None
        tag = uuid.uuid4().hex[:6]
        in_use = _addresses_in_use()
        # A /30 of its own, so that a namespace left by a killed run cannot shadow this one.
        subnet = next(s for s in (f"10.231.{random.randrange(256)}" for _ in range(1000)) if f" {s}." not in in_use)
        host = cls(f"disc-host-{tag}", f"dh{tag}", subnet)
        try:
            _ip("netns", "add", host.name)
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", f"{host.veth}g")
            _ip("link", "set", f"{host.veth}g", "netns", host.name)
            _ip("addr", "add", f"{host.host_address}/30", "dev", host.veth)
            _ip("link", "set", host.veth, "up")
            _ip("addr", "add", f"{host.guest_address}/30", "dev", f"{host.veth}g", netns=host.name)
            _ip("link", "set", f"{host.veth}g", "up", netns=host.name)
            _ip("link", "set", "lo", "up", netns=host.name)
        except (subprocess.CalledProcessError, OSError):
            host.destroy()
            return None
        return host

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)

"""A two-node Ray cluster on this machine, for the benchmarks and tests that need a real one.

A head and a worker node are started with `ray start` on loopback (one CPU each, no GPU, each with its own temp
dir and zoofit cache, zoofit importable from this checkout; Ray's token authentication off). Their processes
are found by their temp dirs and ended by their ids, with their descendants (the workers), leaving any other
Ray on the machine alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
BIN = Path(sys.executable).parent
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """Nodes ``A`` (the head, GCS on ``port``) and ``B``; ``prefix`` names their temp dirs (``/tmp/<prefix>A``:
    short, as Ray's socket paths must be) and caches (``/tmp/<prefix>A-cache``)."""

    def __init__(self, prefix: str, port: int | None = None, agent_ports: tuple[int, int] | None = None) -> None:
        self.prefix, self.port = prefix, port or free_port()
        self.agent_ports = agent_ports or (free_port(), free_port())
        self.temp_dirs = (f"/tmp/{prefix}A", f"/tmp/{prefix}B")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def node_env(self, name: str) -> dict[str, str]:
        """A node's environment: zoofit importable, its own zoofit cache (as on another machine)."""
        return {**os.environ, "PYTHONPATH": str(SRC), "ZOOFIT_CACHE_DIR": f"/tmp/{self.prefix}{name}-cache",
                "RAY_ADDRESS": "", **NO_AUTH}  # fmt: skip

    def start(self) -> None:
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
        self._ray("A", "--head", "--port", str(self.port), "--include-dashboard", "false", *common)
        self._ray("B", "--address", self.address, *common)

    def _ray(self, name: str, *arguments: str) -> None:
        index = "AB".index(name)
        command = [str(BIN / "ray"), "start", "--temp-dir", self.temp_dirs[index], "--dashboard-agent-listen-port",
                   str(self.agent_ports[index]), *arguments]  # fmt: skip
        subprocess.run(command, check=True, env=self.node_env(name), stdout=subprocess.DEVNULL)

    def kill_head(self) -> None:
        """SIGKILL the head node's processes (its GCS, raylet and workers): the cluster is gone."""
        self._kill(self.temp_dirs[:1])

    def stop(self) -> None:
        """End both nodes' processes; remove their temp dirs and caches."""
        self._kill(self.temp_dirs)
        for name, temp_dir in zip("AB", self.temp_dirs, strict=True):
            shutil.rmtree(f"/tmp/{self.prefix}{name}-cache", ignore_errors=True)
            shutil.rmtree(temp_dir, ignore_errors=True)

    def trial_workers(self) -> list[int]:
        """PIDs of this cluster's worker processes now running a unit (process title ``ray::_run_unit``)."""
        listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        ours = processes_under(self.temp_dirs)
        return [
            pid for line in listing.splitlines() if "ray::_run_unit" in line and (pid := int(line.split()[0])) in ours
        ]

    def _kill(self, temp_dirs: tuple[str, ...]) -> None:
        for pid in processes_under(temp_dirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def processes_under(temp_dirs: tuple[str, ...]) -> set[int]:
    """The processes whose command line names one of ``temp_dirs``, and their descendants."""
    children: dict[int, list[int]] = {}
    roots = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            args = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
        if any(folder in args for folder in temp_dirs):
            roots.append(int(stat.parent.name))
    found, queue = set(), roots
    while queue:
        found.add(pid := queue.pop())
        queue += children.get(pid, [])
    return found - {os.getpid()}

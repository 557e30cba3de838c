"""Whether a Ray cluster answers at an address, within a bound: before joining it, and while a run uses it.

Ray bounds neither: ``ray.init`` at an address where nothing answers retries for many minutes, printing its
client's warnings (ray-project/ray#46863 asked for a timeout and was closed without one), and a driver whose
cluster's head died waits for results until Ray ends the process a minute later. So the cluster's GCS is
probed first, on its own: a TCP connection, then the HTTP/2 greeting that every gRPC server (Ray's GCS is one)
answers with a SETTINGS frame. A closed port, a silent host and a server of another kind (a web server, the
dashboard's port) each give one line, and nothing of Ray's is started. With ``RAY_USE_TLS`` set, the greeting
would need TLS: the TCP connection alone is the probe.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from zoofit.errors import ZoofitError

#: HTTP/2's client preface, then an empty SETTINGS frame (9-byte header: length 0, type 4, no flags, stream 0).
GREETING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS = 4
#: What to check, in every message about a cluster that does not answer.
ADVICE = "check that the cluster is up (`ray status` on its head) and the port (the GCS port, 6379 by default)"


class ClusterUnreachable(ZoofitError):
    """No Ray cluster answers at the address a run would join, or the one it joined stopped answering."""


@dataclass(frozen=True)
class Target:
    """A cluster's address: ``host:port`` of its GCS (or of its Ray Client server, for ``ray://``)."""

    address: str
    origin: str = ""  # where the address came from, where not given: " (from $RAY_ADDRESS)"

    @property
    def where(self) -> str:
        return f"{self.address}{self.origin}"

    def endpoint(self) -> tuple[str, int]:
        """(host, port); a malformed address is one line."""
        host, _, port = self.address.split("://")[-1].rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise ClusterUnreachable(f"the Ray address '{self.where}' is not HOST:PORT (say 10.0.0.5:6379)")
        return host.strip("[]"), int(port)


def target(address: str | None) -> Target | None:
    """The cluster ``ray.init(address)`` joins: ``address``, else ``$RAY_ADDRESS`` where ``address`` is ``None``
    or ``"auto"`` (as Ray reads it). ``None`` where Ray finds a cluster on this machine or starts one by itself."""
    if address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        return Target(os.environ["RAY_ADDRESS"], " (from $RAY_ADDRESS)")
    return None if address in (None, "auto", "local") else Target(address)


def silence(cluster: Target, timeout: float) -> str | None:
    """``None`` where a gRPC server answers at ``cluster`` within ``timeout`` seconds; else what happened."""
    host, port = cluster.endpoint()
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return None
            connection.settimeout(max(0.05, deadline - time.monotonic()))
            connection.sendall(GREETING)
            header = _receive(connection, 9)
    except socket.gaierror:
        return f"its host '{host}' is unknown"
    except TimeoutError:
        return f"nothing answered within {timeout:g} s"
    except OSError as error:  # refused, unreachable, reset
        return (error.strerror or str(error)).lower()
    if len(header) < 9 or header[3] != SETTINGS:
        return "it answers, but not as a Ray cluster does (no gRPC there)"
    return None


def _receive(connection: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes: fewer where the other end closes first."""
    received = b""
    while len(received) < size and (chunk := connection.recv(size - len(received))):
        received += chunk
    return received


def check(cluster: Target, timeout: float) -> None:
    """Raise one line unless a Ray cluster answers at ``cluster`` within ``timeout`` seconds."""
    if (problem := silence(cluster, timeout)) is not None:
        raise ClusterUnreachable(f"cannot join the Ray cluster at {cluster.where}: {problem}; {ADVICE}")


class Watch:
    """A joined cluster, watched while a run uses it: its GCS is probed (for at most ``poll`` seconds each time),
    and once it has not answered for ``timeout`` seconds (its head died, its machine went away), one line."""

    def __init__(self, cluster: Target, timeout: float) -> None:
        self.cluster, self.timeout = cluster, timeout
        self.poll = min(5.0, timeout / 4)
        self._answered = time.monotonic()

    def check(self) -> bool:
        """Whether the cluster answers now; raise once it has been silent for ``timeout``."""
        if (problem := silence(self.cluster, self.poll)) is None:
            self._answered = time.monotonic()
            return True
        if time.monotonic() - self._answered >= self.timeout:
            raise ClusterUnreachable(
                f"lost the Ray cluster at {self.cluster.where}: no answer for {self.timeout:g} s ({problem}); "
                "check that its head is up (`ray status` on it), then rerun the same command to resume from what "
                "was stored"
            )
        return False

    def wait(self) -> None:
        """Return once the cluster answers (raise once it has been silent for ``timeout``)."""
        while not self.check():
            time.sleep(self.poll)

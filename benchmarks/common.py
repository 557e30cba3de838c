"""Shared pieces of the benchmarks: the machine description, a fresh zoofit invocation, saving figures."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch

RESULTS = Path(__file__).parent / "results"


def describe() -> dict[str, object]:
    """CPU/GPU, versions and date: saved beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels' instruction set: AVX2, AVX512, ...
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # 1, 5, 15 min: others may share the machine
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The git commit of the code measured (None outside a git checkout)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                               cwd=Path(__file__).parent)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip()


def run_fresh(arguments: list[str], read: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``zoofit ARGUMENTS --out OUT`` with an empty cache (so nothing is reused: weights are fetched
    and converted, features extracted) and return ``read(OUT)`` with wall time and peak RSS added."""
    with tempfile.TemporaryDirectory(prefix="zoofit-bench-") as folder:
        out = Path(folder) / "out"
        command = ["zoofit", *arguments, "--out", str(out)]
        start = time.perf_counter()
        process = subprocess.Popen(command, env={**os.environ, "ZOOFIT_CACHE_DIR": str(Path(folder) / "cache")})
        peak = PeakMemory(process.pid)
        if process.wait():
            raise subprocess.CalledProcessError(process.returncode, command)
        wall = time.perf_counter() - start
        figures = read(out)
    return {
        "command": " ".join(["zoofit", *arguments]),
        "wall_seconds": round(wall, 1),
        **peak.stop(),
        **figures,
        "machine": describe(),
    }


class PeakMemory:
    """The highest memory of a process and its descendants (trial workers included), sampled from /proc:
    ``rss`` sums each process's resident set every 0.5 s (pages shared between processes, such as torch's
    libraries, count once per process); ``pss`` shares them out, so it is what the machine really holds. PSS
    costs ~25 ms per GiB-sized process to read, so it is sampled every 5 s (training memory is a plateau)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.pss, self._done = pid, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return {"peak_rss_gib": round(self.rss / 2**30, 2), "peak_pss_gib": round(self.pss / 2**30, 2)}

    def _sample(self) -> None:
        tick = 0
        while not self._done.wait(0.5):
            pids = _tree(self.pid)
            self.rss = max(self.rss, sum(_rss(pid) for pid in pids))
            if tick % 10 == 0:
                self.pss = max(self.pss, sum(_pss(pid) for pid in pids))
            tick += 1


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue += children.get(pid, [])
    return found


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0  # the process has gone


def _pss(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith("Pss:")), 0)


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write ``results/NAME-<cpu|gpu>.json`` and print the figures."""
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"{name}-{'gpu' if figures['machine']['gpu'] else 'cpu'}.json"
    target.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"wrote {target}")
    return target

"""A real two-node Ray cluster on this machine: `zoofit run --executor ray` completes, and survives kill -9 of
the worker process of a running trial with the same result. Not in CI (a minute or two of two CPUs).

A head and a worker node are started with `ray start` (loopback only, one CPU each, each with its own temp
dir and zoofit cache); the driver is a separate `zoofit run` whose run folder and cache lie in a folder only it
uses. Run 1: undisturbed. Run 2 (fresh run folder): once the ranking is written, the Ray worker process of a
running trial (process title `ray::_run_unit`) is killed with SIGKILL; Ray runs the trial again and the run
must give the same summary figures. Writes benchmarks/results/ray_cluster-<cpu|gpu>.json.

    python benchmarks/ray_cluster.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402
from local_ray import BIN, NO_AUTH, SRC, LocalCluster  # noqa: E402

from zoofit.layout import RANKING  # noqa: E402
from zoofit.result import RunResult  # noqa: E402

CLUSTER = LocalCluster("ray", port=6391, agent_ports=(52401, 52402))
ADDRESSES = (
    "given as 127.0.0.1 (ray start --node-ip-address, --address); Ray registers each node under this "
    "machine's own interface address instead (it replaces 127.0.0.1), so all traffic stays on this machine"
)
ZOO = """name: tiny-two
models:
  - id: tiny_resnet
    arch: test_resnet
    weights: random
    preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
  - id: tiny_effnet
    arch: test_efficientnet
    weights: random
    preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
"""
RUN = ["--lrs", "0.01,0.03", "--top-k", "1", "--steps", "400", "--batch-size", "16", "--image-size", "32",
       "--shift-images", "0", "--precision", "fp32", "--seed", "0"]  # fmt: skip


def write_data(root: Path) -> Path:
    """Three close colour classes of 24x24 images under heavy noise (not all told apart): 12 train, 4 val, 4
    test each."""
    colours = {"cat": (130, 110, 100), "dog": (110, 115, 130), "fox": (115, 130, 110)}
    for split, count in {"train": 12, "val": 4, "test": 4}.items():
        for name, colour in colours.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng(zlib.crc32(f"{split}/{name}/{i}".encode()))
                pixels = np.clip(np.array(colour) + rng.integers(-90, 90, (24, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def run(driver: Path, data: Path, zoo: Path, out: str, kill: bool) -> dict[str, Any]:
    """``zoofit run --executor ray`` as a driver outside the cluster; with ``kill``, SIGKILL one running trial's
    worker once the ranking is written."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "RAY_ADDRESS": CLUSTER.address,
           "ZOOFIT_CACHE_DIR": str(driver / "cache"), **NO_AUTH}  # fmt: skip
    command = [str(BIN / "zoofit"), "run", "--data", str(data), "--zoo", str(zoo), "--out", out, *RUN,
               "--executor", "ray"]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=driver, env=env, stdout=subprocess.DEVNULL)
    killed = None
    while kill and killed is None and process.poll() is None:
        running = CLUSTER.trial_workers() if (driver / out / RANKING).exists() else []
        if running:
            time.sleep(2.0)  # well into training
            killed = CLUSTER.trial_workers()[0] if CLUSTER.trial_workers() else None
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    if process.wait():
        raise subprocess.CalledProcessError(process.returncode, command)
    result = RunResult.read(driver / out)
    return {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "killed_trial_worker_pid": killed,
        "ensemble_test": {"accuracy": result.ensemble.test.accuracy, "nll": result.ensemble.test.nll},
        "best_single_test": {"accuracy": result.best_single.test.accuracy, "nll": result.best_single.test.nll},
        "units": {"computed": result.units.computed, "reused": result.units.reused},
    }


def main() -> None:
    CLUSTER.stop()
    with tempfile.TemporaryDirectory(prefix="zoofit-driver-") as folder:
        driver = Path(folder)
        data, zoo = write_data(driver / "data"), driver / "zoo.yaml"
        zoo.write_text(ZOO)
        try:
            CLUSTER.start()
            os.environ.update(NO_AUTH)
            import ray as ray_module

            ray_module.init(address=CLUSTER.address, logging_level="ERROR")
            nodes = [
                {"address": n["NodeManagerAddress"], "alive": n["Alive"], "cpus": n["Resources"].get("CPU")}
                for n in ray_module.nodes()
            ]
            ray_module.shutdown()
            clean = run(driver, data, zoo, "run-clean", kill=False)
            killed = run(driver, data, zoo, "run-killed", kill=True)
        finally:
            CLUSTER.stop()
    same = (clean["ensemble_test"], clean["best_single_test"]) == (killed["ensemble_test"], killed["best_single_test"])
    figures = {
        "cluster": {"nodes": nodes, "addresses": ADDRESSES, "temp_dirs": list(CLUSTER.temp_dirs)},
        "run_folder": "only in the driver's temporary folder; the nodes have their own zoofit caches",
        "sweep": " ".join(RUN),
        "clean": clean,
        "killed": killed,
        "kill_survived_with_the_same_result": same and killed["killed_trial_worker_pid"] is not None,
        "note": "the killed run finished: Ray ran the killed trial again (without a retry the run stops with "
        "'a Ray worker or node died'); its features were reused from the driver's cache of the clean run",
        "machine": describe(),
    }
    save("ray_cluster", figures)
    if not figures["kill_survived_with_the_same_result"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

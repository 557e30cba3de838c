"""Joining a Ray cluster is bounded (``--ray-timeout``): where no cluster answers on 127.0.0.1 (a closed port, a
plain web server, a port that never answers, ``$RAY_ADDRESS`` pointing to a dead one), one line within the bound
and nothing written; a real two-node cluster whose head is killed mid-run ends the run in one line within the
bound, and a rerun resumes from what was stored."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_run import error_line
from zoofit.cli import app
from zoofit.layout import RANKING
from zoofit.result import RunResult

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from local_ray import BIN, NO_AUTH, SRC, LocalCluster, free_port  # noqa: E402

ray = pytest.importorskip("ray")
runner = CliRunner()
BOUND = 2.0  # --ray-timeout in these tests
MARGIN = 10.0  # seconds beyond the bound that a loaded 2-core machine may take to print the line
ADVICE = "check that the cluster is up (`ray status` on its head) and the port"


@pytest.fixture
def no_ray_joined() -> None:
    """This process not joined to any Ray (another test file's local Ray is left): the probe runs."""
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def web_server() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1: its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def joined(command: str, data: Path, out: Path, *options: str) -> tuple[str, float]:
    """The one error line of ``command --executor ray`` into ``out`` with the short bound, and its seconds."""
    start = time.monotonic()
    result = runner.invoke(app, [command, "--data", str(data), "--zoo", "demo", "--out", str(out), "--executor",
                                 "ray", "--ray-timeout", str(BOUND), *options])  # fmt: skip
    return error_line(result), time.monotonic() - start


@pytest.mark.parametrize("command", ["rank", "run"])
def test_a_closed_port_is_one_line_within_the_bound(no_ray_joined, command, make_image_folder, tmp_path) -> None:
    port = free_port()
    line, seconds = joined(command, make_image_folder(layout="split"), tmp_path / "out", "--ray-address",
                           f"127.0.0.1:{port}")  # fmt: skip
    assert line.startswith(f"error: cannot join the Ray cluster at 127.0.0.1:{port}: connection refused; {ADVICE}")
    assert seconds < BOUND + MARGIN and not (tmp_path / "out").exists()
    assert not ray.is_initialized()  # nothing of Ray's was started


def test_a_web_server_is_not_a_ray_cluster(no_ray_joined, web_server, make_image_folder, tmp_path) -> None:
    line, seconds = joined("run", make_image_folder(layout="split"), tmp_path / "out", "--ray-address",
                           f"127.0.0.1:{web_server}")  # fmt: skip
    assert line.startswith(f"error: cannot join the Ray cluster at 127.0.0.1:{web_server}: it answers, but not as")
    assert ADVICE in line and seconds < BOUND + MARGIN and not (tmp_path / "out").exists()


def test_a_port_that_never_answers_waits_the_bound(no_ray_joined, silent_port, make_image_folder, tmp_path) -> None:
    line, seconds = joined("rank", make_image_folder(layout="split"), tmp_path / "out", "--ray-address",
                           f"127.0.0.1:{silent_port}")  # fmt: skip
    assert f"127.0.0.1:{silent_port}: nothing answered within {BOUND:g} s; {ADVICE}" in line
    assert BOUND <= seconds < BOUND + MARGIN and not (tmp_path / "out").exists()


def test_ray_address_from_the_environment_is_named(no_ray_joined, make_image_folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", address := f"127.0.0.1:{free_port()}")
    line, seconds = joined("run", make_image_folder(layout="split"), tmp_path / "out")
    assert f"cannot join the Ray cluster at {address} (from $RAY_ADDRESS): connection refused" in line
    assert seconds < BOUND + MARGIN and not (tmp_path / "out").exists()


def test_the_bound_is_checked_and_goes_with_ray(make_image_folder, tmp_path) -> None:
    base = ["run", "--data", str(make_image_folder(layout="split")), "--out", str(tmp_path / "out")]
    line = error_line(runner.invoke(app, [*base, "--executor", "ray", "--ray-timeout", "0"]))
    assert line == "error: --ray-timeout must be a positive number of seconds, not 0.0"
    line = error_line(runner.invoke(app, [*base, "--ray-timeout", "5"]))
    assert line == "error: --ray-timeout is not a setting of the local executor"
    assert "HOST:PORT" in error_line(runner.invoke(app, [*base, "--executor", "ray", "--ray-address", "nowhere"]))


TWO_MODELS = """name: tiny-two
models:
  - {id: tiny_resnet, arch: test_resnet, weights: random,
     preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}
  - {id: tiny_effnet, arch: test_efficientnet, weights: random,
     preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}
"""
#: One trial per model, long enough on one CPU that the head is killed while one runs.
SWEEP = ["--lrs", "0.01", "--top-k", "2", "--steps", "150", "--batch-size", "8", "--image-size", "32",
         "--shift-images", "0", "--precision", "fp32", "--members", "trial", "--seed-baseline", "0"]  # fmt: skip
#: A line of Ray's own (its C++ log format: "[2026-12-02 13:22:58,665 E 13327 13343] file.cc:1545: ...").
RAY_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\]")


def test_a_head_killed_mid_run_ends_it_in_one_line_and_a_rerun_resumes(make_image_folder, tmp_path) -> None:
    """A ``zoofit run`` process (the driver) on a two-node cluster on 127.0.0.1; once the ranking is written and
    a trial runs, the head's processes are killed: the run ends within the bound with one line (and Ray's own
    lines at most a couple); the same command on ``--executor local`` then reuses the stored features."""
    data, zoo, out, cache = make_image_folder(layout="split"), tmp_path / "zoo.yaml", tmp_path / "run", tmp_path / "c"
    zoo.write_text(TWO_MODELS)
    common = ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(out), "--cache-dir", str(cache), *SWEEP]
    cluster = LocalCluster(f"zt{os.getpid() % 100000}")
    try:
        cluster.start()
        driver = subprocess.Popen(
            [str(BIN / "zoofit"), *common, "--executor", "ray", "--ray-address", cluster.address, "--ray-timeout", "4"],
            env={**os.environ, "PYTHONPATH": str(SRC), "RAY_ADDRESS": "", **NO_AUTH},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while not ((out / RANKING).exists() and cluster.trial_workers()) and driver.poll() is None:
            assert time.monotonic() < deadline, "no trial started on the cluster"
            time.sleep(0.2)
        cluster.kill_head()
        killed, lines, seconds = time.monotonic(), [], None
        threading.Timer(120, driver.kill).start()  # a driver that hangs fails the test, not the suite
        for line in driver.stdout:  # (Ray's exit then takes a few seconds more: it waits for its cluster)
            lines.append(line.rstrip())
            if line.startswith("error:"):
                seconds = time.monotonic() - killed
        driver.wait(timeout=60)
    finally:
        cluster.stop()
    output = "\n".join(lines)
    errors = [line for line in lines if line.startswith("error:")]
    assert driver.returncode == 2 and len(errors) == 1 and "Traceback" not in output, output
    assert errors[0].startswith(f"error: lost the Ray cluster at {cluster.address}: no answer for 4 s"), output
    assert "rerun the same command to resume" in errors[0] and 4 <= seconds < 4 + MARGIN, seconds
    assert len([line for line in output.splitlines() if RAY_LOG_LINE.match(line)]) <= 2, output  # no flood

    again = runner.invoke(app, [*common, "--executor", "local"])
    assert again.exit_code == 0, again.output
    assert RunResult.read(out).units.reused >= 2  # both models' features, stored by the driver before the kill

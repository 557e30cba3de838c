"""Several processes at once: cache entries made once under file locks, one writer per run folder, one dataset
per run folder. Real processes throughout (a thread lock would pass a test with threads)."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.test_rank import write_tiny_zoo_file
from tests.test_zoo import wheel_spec
from zoofit import ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.data import ImageSet
from zoofit.errors import ParameterError
from zoofit.layout import SUMMARY, WRITER
from zoofit.store import RunStore
from zoofit.zoo import ModelSpec

PROCESSES, ROUNDS = 4, 10

# ---------------------------------------------------------------- the cache


def make_entries(spec: ModelSpec, images: ImageSet, roots: list[str], barrier, results) -> None:
    """In a spawned process: per round, wait for the others, then load ``spec`` and extract its features into
    the round's cache; report the conversions this process made, whether its features were cached, and digests
    of its weights and features (or the error)."""
    torch.set_num_threads(1)
    from zoofit.rank.features import extract_features
    from zoofit.store import Cache
    from zoofit.zoo import load_model

    conversions: list[str] = []
    counter = logging.Handler()
    counter.emit = lambda record: conversions.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("zoofit")
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    for root in roots:
        barrier.wait(timeout=120)
        before = len([line for line in conversions if line.startswith("preparing weights")])
        try:
            cache = Cache(Path(root))
            loaded = load_model(spec, cache)
            features = extract_features(loaded, images, device="cpu", precision="fp32", cache=cache)
        except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
            results.put({"root": root, "error": f"{type(error).__name__}: {error}"})
            continue
        weights = b"".join(tensor.numpy().tobytes() for tensor in loaded.model.state_dict().values())
        results.put({
            "root": root,
            "error": None,
            "conversions": len([line for line in conversions if line.startswith("preparing weights")]) - before,
            "cached": features.cached,
            "weights": hashlib.sha256(weights).hexdigest(),
            "features": hashlib.sha256(features.values.tobytes()).hexdigest(),
        })  # fmt: skip


def test_processes_started_together_on_an_empty_cache_make_each_entry_once(tmp_path: Path, monkeypatch) -> None:
    spec, _ = wheel_spec(tmp_path, monkeypatch)  # a local wheel: pip download --no-index --find-links
    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8), np.arange(6) % 2, ("a", "b"))
    roots = [str(tmp_path / f"cache-{index}") for index in range(ROUNDS)]  # one empty cache per round
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=make_entries, args=(spec, images, roots, barrier, results)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=180) for _ in range(PROCESSES * ROUNDS)]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            worker.kill()
    assert [report["error"] for report in reports if report["error"]] == []
    for root in roots:
        round_reports = [report for report in reports if report["root"] == root]
        assert len(round_reports) == PROCESSES
        assert sum(report["conversions"] for report in round_reports) == 1  # one conversion per round
        assert sum(not report["cached"] for report in round_reports) == 1  # the features extracted once
        entries = sorted(path.relative_to(root).parts[0] for path in Path(root).rglob("*.safetensors"))
        assert entries == ["feature-rows", "weights"]  # one shard of rows, no temporary file left behind
    assert len({report["weights"] for report in reports}) == 1
    assert len({report["features"] for report in reports}) == 1


# ---------------------------------------------------------------- the run folder

runner = CliRunner()
SWEEP = {"lrs": (0.01,), "steps": (2,), "batch_size": 8, "image_size": 32, "shift_images": 0}


def test_a_second_writer_of_a_run_folder_is_refused_while_the_first_lives(make_image_folder, tmp_path: Path) -> None:
    data, zoo, out = make_image_folder(per_class=8, layout="split"), write_tiny_zoo_file(tmp_path), tmp_path / "run"
    command = [sys.executable, "-m", "zoofit.cli", "run", "--data", str(data), "--zoo", str(zoo), "--out", str(out),
               "--lrs", "0.001,0.003,0.01,0.03", "--steps", "200", "--batch-size", "8", "--image-size", "32"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / WRITER).is_file() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, "the first run should still be writing"
        for args in (["run", "--data", str(data), "--zoo", str(zoo)], ["rank", "--data", str(data), "--zoo", str(zoo)]):
            second = runner.invoke(app, [*args, "--out", str(out)])
            assert second.exit_code == 2
            assert second.output.startswith(f"error: --out '{out}' is being written by process {first.pid} (")
            assert f"run --data {data}" in second.output  # its command line
            assert second.output.rstrip().endswith("wait for it to end or give another folder")
        with pytest.raises(ParameterError, match=f"is being written by process {first.pid}"):
            ZooFit(str(zoo), precision="fp32", sweep=preset("quick").override(**SWEEP)).fit(
                load_data(str(data)), out
            )  # the library's own lock
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    RunStore(out).check_writer()  # a killed writer holds nothing (and its folder resumes: see test_run)


def test_another_dataset_into_a_finished_run_folder_is_refused(make_image_folder, tmp_path: Path) -> None:
    zoo, out = write_tiny_zoo_file(tmp_path), tmp_path / "run"
    first, other = make_image_folder(per_class=8, layout="split"), make_image_folder(per_class=6, layout="split")
    ZooFit(str(zoo), precision="fp32", sweep=preset("quick").override(**SWEEP)).fit(load_data(str(first)), out)
    summary = (out / SUMMARY).read_text()
    assert json.loads((out / "data.json").read_text())["fingerprint"] == load_data(str(first)).fingerprint

    result = runner.invoke(app, ["run", "--data", str(other), "--zoo", str(zoo), "--out", str(out)])
    assert result.exit_code == 2
    error = result.output.rstrip().splitlines()[-1]  # after the lines of the data's decoding
    assert error.startswith(f"error: --out '{out}' holds a run on other data (images-split-8: 3 classes, 24 train")
    assert error.endswith("give a new folder for this data")
    assert (out / SUMMARY).read_text() == summary  # untouched

    again = ZooFit(str(zoo), precision="fp32", sweep=preset("quick").override(**SWEEP)).fit(
        load_data(str(first)), out
    )  # the same data resumes
    assert again.result_.units.computed == 0

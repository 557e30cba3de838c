"""What a model's first pass and a training step cost on a GPU, each variant in a fresh process so no kernel
is loaded beforehand:

- first_pass: by memory format (channels_last or NCHW) and cuDNN (heuristics, autotuning, or off);
- training: by memory format, the whole step (forward, backward, SGD) captured once as a CUDA graph and
  replayed (the GPU's own time), or run eagerly;
- lanes: several MobileNetV2s (128 px) training at once on the one GPU, images/s of them all: in 1, 2 or 4 processes
  (the sweep's workers today; the GPU time-slices between processes), or in 1-4 threads of one process, each on
  its own CUDA stream (kernels of different streams can run side by side), eager or replaying graphs.

It explains the figures of gpu_suite.py (issue 4): which first-use costs zoofit's ranking pays per model, and
what would make the paper preset's trials (small models at batch 64) faster. A plain timm loop on random
inputs, 224 px, bf16. Writes results/gpu_probe-gpu.json after every variant (gpu_probe-GROUP...-gpu.json when
only some groups run). On an H200 the training group ran 4.4 minutes (cut before efficientnet_b0's graph):
MobileNetV2 trains at 2,188 images/s eagerly and 2,297 replaying the whole step as one graph, so
its step is bound by the GPU's ~28 ms of small kernels in a row, not by launching them. lanes is new: it asks
whether streams of one process overlap those kernels where processes cannot.

    python benchmarks/gpu_probe.py [first_pass] [training] [lanes] [--note TEXT]   # groups (default: all)
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

# cuDNN: "heuristics" (zoofit's setting), "benchmark" (autotuning) or "off" (PyTorch's own kernels).
FIRST_PASS = [(arch, layout, cudnn) for arch in ("efficientnet_b0", "mobilenetv3_large_100", "convnext_tiny")
              for layout, cudnn in (("nchw", "heuristics"), ("nchw", "off"), ("channels_last", "heuristics"),
                                    ("channels_last", "benchmark"))]  # fmt: skip
# Graphs first: a replayed step is the GPU's own time, without Python's launches to hide a layout's difference
# (cuDNN autotuning changed eager steps by under 6% on an H200, results/gpu_probe-training-gpu.json).
TRAINING = [(arch, layout, "heuristics", mode) for mode in ("graph", "eager")
            for arch in ("mobilenetv2_100", "efficientnet_b0") for layout in ("nchw", "channels_last")]  # fmt: skip
LANES = [(count, "processes", "eager") for count in (1, 2, 4)]
LANES += [(count, "threads", "graph") for count in (1, 2, 4)] + [(4, "threads", "eager")]


LANE_SIZE = 128


def _prepare(arch: str, layout: str, cudnn: str, training: bool) -> tuple[torch.nn.Module, torch.device]:
    device = torch.device("cuda")
    torch.ones(1, device=device).sum().item()  # the CUDA context is no model's cost
    torch.backends.cudnn.enabled = cudnn != "off"
    torch.backends.cudnn.benchmark = cudnn == "benchmark"
    model = timm.create_model(arch, num_classes=10).to(device).train(training)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model, device


def _layout(inputs: torch.Tensor, layout: str) -> torch.Tensor:
    return inputs.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else inputs


def first_pass(arch: str, layout: str, cudnn: str, images: int = 1000, batch: int = 256) -> dict[str, float]:
    """Seconds of the first and of a second pass over ``images`` random images (bf16, no grad)."""
    model, device = _prepare(arch, layout, cudnn, training=False)
    inputs = _layout(torch.randn(images, 3, 224, 224, device=device), layout)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for first in range(0, images, batch):
                model.forward_features(inputs[first : first + batch])
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return {"first_pass": round(seconds[0], 3), "steady_pass": round(seconds[1], 3)}


def training(arch: str, layout: str, cudnn: str, mode: str, batch: int = 64, steps: int = 40) -> dict[str, float]:
    """Images per second of SGD steps after 10 untimed ones (bf16 autocast, one fixed batch); ``mode``
    "graph" replays the whole step captured as one CUDA graph."""
    step = _training_step(arch, layout, cudnn, mode, batch)
    return {"images_per_s": round(steps * batch / _seconds(step, steps), 1)}


def _training_step(arch: str, layout: str, cudnn: str, mode: str, batch: int, size: int = 224) -> Callable[[], None]:
    """One SGD step of ``arch`` on a fixed random batch of ``size`` px, warmed up (and captured, for
    "graph"); a graph replays on the stream current when it is called."""
    model, device = _prepare(arch, layout, cudnn, training=True)
    inputs = _layout(torch.randn(batch, 3, size, size, device=device), layout)
    labels = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=mode != "graph"):
            loss = F.cross_entropy(model(inputs).float(), labels)
        if mode != "graph":
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    side = torch.cuda.Stream()  # warm-up off the default stream, as capture requires
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(10):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    if mode != "graph":
        return step
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # backward in the graph allocates the gradients from its pool
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def _seconds(step: Callable[[], None], steps: int) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def lanes(count: int, kind: str, mode: str, steps: int = 100, batch: int = 64) -> dict[str, float]:
    """Images per second of ``count`` mobilenetv2_100 models (NCHW, 128 px: the paper preset's size for
    small images such as Fashion-MNIST's) training at once: in as many processes
    (time-sliced on the GPU), or in threads of this process, each on its own CUDA stream (their kernels can
    run side by side), eager or replaying CUDA graphs."""
    if kind == "threads":
        return _thread_lanes(count, mode, steps, batch)
    spawn = multiprocessing.get_context("spawn")
    ready, seconds = spawn.Barrier(count), spawn.Queue()
    workers = [spawn.Process(target=_lane, args=(ready, seconds, steps, batch)) for _ in range(count)]
    for worker in workers:
        worker.start()
    results = [seconds.get(timeout=170) for _ in workers]
    for worker in workers:
        worker.join()
    failures = [result for result in results if isinstance(result, str)]
    if failures:
        raise RuntimeError(failures[0])
    slowest = max(results)
    return {"images_per_s": round(count * steps * batch / slowest, 1), "slowest_lane_seconds": round(slowest, 2)}


def _thread_lanes(count: int, mode: str, steps: int, batch: int) -> dict[str, float]:
    streams = [torch.cuda.Stream() for _ in range(count)]
    step_functions = []
    for stream in streams:  # built and captured one after another, each on its own stream
        with torch.cuda.stream(stream):
            step_functions.append(_training_step("mobilenetv2_100", "nchw", "heuristics", mode, batch, LANE_SIZE))
    torch.cuda.synchronize()
    ready, errors = threading.Barrier(count), []

    def run(index: int) -> None:
        try:
            with torch.cuda.stream(streams[index]):
                ready.wait()
                for _ in range(steps):
                    step_functions[index]()
        except Exception as error:  # noqa: BLE001 - raised below, after every lane has stopped
            errors.append(f"lane {index}: {type(error).__name__}: {error}")
            ready.abort()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(errors[0])
    return {"images_per_s": round(count * steps * batch / seconds, 1), "seconds": round(seconds, 2)}


def _lane(ready: Any, seconds: Any, steps: int, batch: int) -> None:
    """One lane of :func:`lanes`: puts its seconds, or its error as text (after releasing the others)."""
    try:
        step = _training_step("mobilenetv2_100", "nchw", "heuristics", "eager", batch, LANE_SIZE)
        torch.cuda.synchronize()
    except Exception as error:  # noqa: BLE001 - reported by the parent
        ready.abort()
        seconds.put(f"{type(error).__name__}: {error}")
        return
    try:
        ready.wait()  # every lane warmed up: they start together
    except threading.BrokenBarrierError:
        seconds.put("another lane failed")
        return
    seconds.put(_seconds(step, steps))


def main(groups: list[str], note: str | None) -> None:
    figures: dict = {"machine": describe(), "note": note, **{group: {} for group in groups}}
    for group in groups:
        for variant in GROUPS[group]:
            name = " ".join(map(str, variant))
            command = [sys.executable, __file__, "--variant", group, *map(str, variant)]
            try:
                run = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
                figures[group][name] = json.loads(run.stdout)
            except (subprocess.SubprocessError, json.JSONDecodeError) as error:
                figures[group][name] = {"error": f"{error} {getattr(error, 'stderr', '') or ''}"[-300:]}
            save("-".join(["gpu_probe", *groups]) if groups != list(GROUPS) else "gpu_probe", figures)


GROUPS = {"first_pass": FIRST_PASS, "training": TRAINING, "lanes": LANES}
MEASURES = {"first_pass": first_pass, "training": training, "lanes": lanes}


def _parse(text: str) -> int | str:
    return int(text) if text.isdigit() else text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--variant"]:
        print(json.dumps(MEASURES[sys.argv[2]](*map(_parse, sys.argv[3:]))))
    else:
        arguments = sys.argv[1:]
        note = arguments.pop(arguments.index("--note") + 1) if "--note" in arguments else None
        chosen = [argument for argument in arguments if argument != "--note"] or list(GROUPS)
        unknown = set(chosen) - set(GROUPS)
        if unknown:
            raise SystemExit(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
        main(chosen, note)

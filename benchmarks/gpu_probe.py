"""What a model's first pass and a training step cost on a GPU, by memory format (channels_last or NCHW)
and cuDNN autotuning (on or off), each variant in a fresh process so no kernel is loaded beforehand.

It explains the figures of gpu_suite.py (issue 4): which first-use costs zoofit's ranking pays per model, and
which settings make a trial's training step fastest. A plain timm loop on random inputs, 224 px, bf16.
Writes results/gpu_probe-gpu.json after every variant; all 17 variants take about 6 minutes on an H200 (the
committed run was cut at 4 minutes, after the first three training variants).

    python benchmarks/gpu_probe.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

FIRST_PASS = [(arch, layout, tuned) for arch in ("efficientnet_b0", "mobilenetv3_large_100", "convnext_tiny")
              for layout, tuned in (("nchw", False), ("channels_last", False), ("channels_last", True))]  # fmt: skip
TRAINING = [(arch, layout, tuned) for arch in ("mobilenetv2_100", "efficientnet_b0")
            for layout, tuned in (("nchw", False), ("channels_last", False), ("nchw", True), ("channels_last", True))]  # fmt: skip


def _prepare(arch: str, layout: str, tuned: bool, training: bool) -> tuple[torch.nn.Module, torch.device]:
    device = torch.device("cuda")
    torch.ones(1, device=device).sum().item()  # the CUDA context is no model's cost
    torch.backends.cudnn.benchmark = tuned
    model = timm.create_model(arch, num_classes=10).to(device).train(training)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model, device


def _layout(inputs: torch.Tensor, layout: str) -> torch.Tensor:
    return inputs.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else inputs


def first_pass(arch: str, layout: str, tuned: bool, images: int = 1000, batch: int = 256) -> dict[str, float]:
    """Seconds of the first and of a second pass over ``images`` random images (bf16, no grad)."""
    model, device = _prepare(arch, layout, tuned, training=False)
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


def training(arch: str, layout: str, tuned: bool, batch: int = 64, steps: int = 40) -> dict[str, float]:
    """Images per second of SGD steps after 10 untimed ones (bf16 autocast, one fixed batch)."""
    model, device = _prepare(arch, layout, tuned, training=True)
    inputs = _layout(torch.randn(batch, 3, 224, 224, device=device), layout)
    labels = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = 0.0
    for step in range(10 + steps):
        if step == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(inputs).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return {"images_per_s": round(steps * batch / (time.perf_counter() - start), 1)}


def main() -> None:
    figures: dict = {"machine": describe(), "first_pass": {}, "training": {}}
    for kind, variants in (("first_pass", FIRST_PASS), ("training", TRAINING)):
        for arch, layout, tuned in variants:
            name = f"{arch} {layout} {'cudnn-benchmark' if tuned else 'heuristics'}"
            command = [sys.executable, __file__, kind, arch, layout, str(int(tuned))]
            try:
                run = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
                figures[kind][name] = json.loads(run.stdout)
            except (subprocess.SubprocessError, json.JSONDecodeError) as error:
                figures[kind][name] = {"error": f"{error} {getattr(error, 'stderr', '') or ''}"[-300:]}
            save("gpu_probe", figures)


if __name__ == "__main__":
    if len(sys.argv) == 5:
        measure = {"first_pass": first_pass, "training": training}[sys.argv[1]]
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4] == "1")))
    else:
        main()

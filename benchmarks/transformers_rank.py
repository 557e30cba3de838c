"""Ranking a Hugging Face ``transformers`` model against a plain ``transformers`` forward loop, side by side in one
process: the same random-weight checkpoint (a ViT-Tiny and a small ConvNeXt, saved locally with their
image-processor configs), the same images at the same size (224 px, so neither side resizes), batch size and
threads. zoofit's side is ``Ranker.fit`` with an empty cache (load, preprocessing, features, kNN); the plain side
is ``from_pretrained``, then uint8 -> float -> normalised tensors and ``model(pixel_values=...)`` per batch.
Measured alternately (A B A B ...), the median kept. Writes benchmarks/results/transformers_rank-<cpu|gpu>.json.

    python benchmarks/transformers_rank.py [--images 256] [--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import Ranker  # noqa: E402
from zoofit.data import ImageSet  # noqa: E402
from zoofit.zoo import ModelSpec, Zoo  # noqa: E402

SIZE, BATCH = 224, 32


def write_models(root: Path, smoke: bool) -> dict[str, Path]:
    """Random-weight checkpoints with their image processors, in local folders."""
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessor,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    layers = 2 if smoke else 12
    vit = ViTForImageClassification(ViTConfig(hidden_size=192, num_hidden_layers=layers, num_attention_heads=3,
                                              intermediate_size=768, num_labels=1000))  # fmt: skip
    convnext = ConvNextForImageClassification(
        ConvNextConfig(hidden_sizes=[48, 96, 192, 384], depths=[1, 1, 1, 1] if smoke else [2, 2, 6, 2])
    )
    folders = {}
    for name, model, processor in (
        ("vit-tiny", vit, ViTImageProcessor(size={"height": SIZE, "width": SIZE})),
        ("convnext-small", convnext, ConvNextImageProcessor(size={"shortest_edge": SIZE}, crop_pct=1.0)),
    ):
        folders[name] = root / name
        model.save_pretrained(folders[name])
        processor.save_pretrained(folders[name])
    return folders


def plain_loop(folder: Path, images: np.ndarray) -> float:
    """Seconds of the plain way: load, then normalise and forward each batch."""
    from transformers import AutoModelForImageClassification
    from transformers.image_processing_utils import ImageProcessingMixin

    start = time.perf_counter()
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    config, _ = ImageProcessingMixin.get_image_processor_dict(str(folder))
    mean = torch.tensor(config["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["image_std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        for first in range(0, len(images), BATCH):
            pixels = torch.from_numpy(images[first : first + BATCH]).permute(0, 3, 1, 2).float() / 255
            model(pixel_values=(pixels - mean) / std).logits.float()
    return time.perf_counter() - start


def zoofit_ranking(folder: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Seconds of ``Ranker.fit`` on the one model, with an empty cache."""
    spec = ModelSpec(id=folder.name, arch=f"transformers:{folder}", weights=f"transformers:{folder}")
    data = ImageSet(images, labels, tuple(str(c) for c in range(int(labels.max()) + 1)))
    with tempfile.TemporaryDirectory(prefix="zoofit-hf-rank-") as cache:
        start = time.perf_counter()
        Ranker(Zoo("one", (spec,)), cache_dir=cache, precision="fp32", feature_batch_size=BATCH, device="cpu").fit(data)
        return time.perf_counter() - start


def alternately(pairs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(repeats):
        for name, measure in pairs.items():
            times[name].append(round(measure(), 3))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run that checks the script")
    args = parser.parse_args()
    count, repeats = (16, 1) if args.smoke else (args.images, args.repeats)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.arange(count) % 4
    figures: dict[str, object] = {
        "machine": describe(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "images": count,
        "size": SIZE,
        "batch_size": BATCH,
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="zoofit-hf-models-") as root:
        for name, folder in write_models(Path(root), args.smoke).items():
            plain_loop(folder, images[:BATCH])  # warm both paths' imports and kernels once
            zoofit_ranking(folder, images[:BATCH], labels[:BATCH])
            times = alternately(
                {"plain_seconds": lambda f=folder: plain_loop(f, images),
                 "zoofit_seconds": lambda f=folder: zoofit_ranking(f, images, labels)}, repeats
            )  # fmt: skip
            medians = {key: statistics.median(value) for key, value in times.items()}
            figures[name] = {**times, "ratio": round(medians["zoofit_seconds"] / medians["plain_seconds"], 3)}
    figures["load_average_after"] = os.getloadavg()
    save("transformers_rank" + ("-smoke" if args.smoke else ""), figures)


if __name__ == "__main__":
    main()

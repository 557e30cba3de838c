"""zoofit's speed measured side by side with plain timm loops, in one process (CPU suite of issue 4).

1. feature extraction: zoofit's ranking path vs a plain timm forward loop (PIL transforms per image, the
   usual way) on the same model, images, batch size, precision and resolution;
2. fine-tuning: zoofit's trial loop vs a plain timm train-step loop on ready tensors (same model, batch,
   precision);
3. kNN: its time for 1k/10k/50k images and its share of the ranking time at 1k;
4. scaling: ranking wall time against the number of models and of images (slopes, fixed cost per model).

Each pair is measured alternately (A B A B ...) and the median kept, so a noisy machine shifts both.
Writes benchmarks/results/cpu_suite-<cpu|gpu>.json.

    python benchmarks/cpu_suite.py [--smoke]     # --smoke: seconds-long version that checks the suite runs
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import Ranker, Zoo  # noqa: E402
from zoofit.data import ImageSet, Splits, load_data  # noqa: E402
from zoofit.device import resolve_precision  # noqa: E402
from zoofit.finetune import train_trial  # noqa: E402
from zoofit.rank import extract_features, loo_knn_accuracy  # noqa: E402
from zoofit.sweep_config import TrialConfig, preset  # noqa: E402
from zoofit.zoo import ModelSpec, load_model, load_zoo  # noqa: E402

CPU = torch.device("cpu")


def alternate(first: Callable[[], float], second: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Median throughput of two measurements taken in turns."""
    a, b = [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def random_spec(spec: ModelSpec) -> ModelSpec:
    """The same architecture and preprocessing with random weights: throughput does not depend on weights."""
    return ModelSpec(id=spec.id, arch=spec.arch, weights="random", arch_kwargs=spec.arch_kwargs,
                     num_classes=spec.num_classes, preprocessing=spec.preprocessing)  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def feature_extraction(
    images: ImageSet, size: int | None, batch: int, rounds: int, device: torch.device = CPU, extra: tuple = ()
) -> dict[str, Any]:
    """zoofit vs plain per model of the demo zoo and the ``extra`` specs (``size`` None: each model's own)."""
    precision = resolve_precision("auto", device)
    models = {
        spec.id: compare_features(spec, images, size, batch, precision, rounds, device)
        for spec in [*load_zoo("demo").models, *extra]
    }
    return {"resolution": size or "own", "batch_size": batch, "precision": precision, "images": len(images),
            "models": models}  # fmt: skip


def compare_features(
    spec: ModelSpec, images: ImageSet, size: int | None, batch: int, precision: str, rounds: int, device: torch.device
) -> dict[str, float]:
    loaded = load_model(random_spec(spec))
    prep = loaded.preprocessing.with_size(size)

    def zoofit_path() -> float:
        start = time.perf_counter()
        extract_features(loaded, images, prep=prep, batch_size=batch, device=device, precision=precision)
        return len(images) / (time.perf_counter() - start)

    plain_model = timm.create_model(spec.arch, num_classes=0, **spec.arch_kwargs).eval().to(device)
    side = prep.input_size
    transform = timm.data.create_transform(
        input_size=(3, side, side), interpolation=prep.interpolation, mean=prep.mean, std=prep.std,
        crop_pct=prep.crop_pct,
    )  # fmt: skip
    pictures = [Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image) for image in images.images]

    def plain_loop() -> float:  # the usual way: PIL transforms per image, then the model
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for first in range(0, len(pictures), batch):
                batch_pixels = torch.stack([transform(p.convert("RGB")) for p in pictures[first : first + batch]])
                plain_model(batch_pixels.to(device)).float().cpu()
        synchronize(device)
        return len(pictures) / (time.perf_counter() - start)

    ours, plain = alternate(zoofit_path, plain_loop, rounds)
    return {
        "zoofit_images_per_s": round(ours, 1),
        "plain_images_per_s": round(plain, 1),
        "ratio": round(ours / plain, 2),
    }


def fine_tuning(
    splits: Splits, size: int, batch: int, steps: int, rounds: int, device: torch.device = CPU
) -> dict[str, Any]:
    spec = random_spec(load_zoo("demo").select(["mobilenetv2_imagenet"]).models[0])
    precision = resolve_precision("auto", device, training=True)
    config = TrialConfig(lr=0.01, steps=steps, batch_size=batch, image_size=size)
    no_eval = Splits(splits.name, splits.train, splits.val.subset(np.arange(batch)), None)

    losses = {}

    def zoofit_trial(cuda_graphs: bool = True, freeze_stride: int = 0) -> float:
        trained = train_trial(
            load_model(spec), no_eval, replace(config, freeze_stride=freeze_stride), device=device,
            precision=precision, cuda_graphs=cuda_graphs,
        )  # fmt: skip
        if not freeze_stride:
            losses[cuda_graphs] = float(trained.losses[-10:].mean())
        return steps * batch / trained.seconds  # includes the (tiny) validation pass, and capturing graphs

    model = timm.create_model(spec.arch, num_classes=splits.train.num_classes).train().to(device)
    inputs = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, splits.train.num_classes, (batch,), device=device)

    def plain_loop() -> float:  # the usual way, on ready tensors: no data loading at all
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = F.cross_entropy(model(inputs).float(), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        synchronize(device)
        return steps * batch / (time.perf_counter() - start)

    ours, plain = alternate(zoofit_trial, plain_loop, rounds)
    figures = {"model": spec.arch, "resolution": size, "batch_size": batch, "steps": steps, "precision": precision,
               "zoofit_images_per_s": round(ours, 1), "plain_images_per_s": round(plain, 1),
               "ratio": round(ours / plain, 2)}  # fmt: skip
    stride = preset("quick").search.freeze_stride[0]
    frozen = statistics.median(zoofit_trial(freeze_stride=stride) for _ in range(rounds))
    figures.update({f"zoofit_frozen_to_stride_{stride}_images_per_s": round(frozen, 1),
                    "frozen_over_whole": round(frozen / ours, 2)})  # fmt: skip
    if device.type == "cuda":  # what the CUDA graphs buy, and that they train the same (last 10 losses)
        eager = statistics.median(zoofit_trial(cuda_graphs=False) for _ in range(rounds))
        figures.update(zoofit_eager_images_per_s=round(eager, 1), graphs_over_eager=round(ours / eager, 2),
                       final_loss_graphs=round(losses[True], 4), final_loss_eager=round(losses[False], 4))  # fmt: skip
    return figures


def knn(sizes: list[int], dim: int = 1280) -> dict[str, float]:
    rng = np.random.default_rng(0)
    seconds = {}
    for n in sizes:
        features = rng.normal(size=(n, dim)).astype(np.float32)
        labels = rng.integers(0, 10, n)
        start = time.perf_counter()
        loo_knn_accuracy(features, labels)
        seconds[str(n)] = round(time.perf_counter() - start, 3)
    return seconds


def ranking_seconds(specs: list[ModelSpec], images: ImageSet, size: int, tmp: Path) -> float:
    start = time.perf_counter()
    Ranker(Zoo("bench", tuple(specs)), image_size=size, cache_dir=tmp / f"{time.perf_counter_ns()}").fit(images)
    return time.perf_counter() - start


def slope(xs: list[int], ys: list[float]) -> tuple[float, float]:
    fitted_slope, intercept = np.polyfit(xs, ys, 1)
    return float(fitted_slope), float(intercept)


def scaling(images: ImageSet, size: int, model_counts: list[int], image_counts: list[int], tmp: Path) -> dict:
    archs = ["resnet18", "mobilenetv3_large_100", "efficientnet_b0", "regnety_016"]
    specs = [ModelSpec(id=f"{archs[i % 4]}_{i}", arch=archs[i % 4], weights="random") for i in range(max(model_counts))]
    by_models = [ranking_seconds(specs[:n], images.subset(np.arange(250)), size, tmp) for n in model_counts]
    by_images = [ranking_seconds(specs[:1], images.subset(np.arange(n)), size, tmp) for n in image_counts]
    per_model, _ = slope(model_counts, by_models)
    per_image, fixed = slope(image_counts, by_images)
    return {
        "resolution": size,
        "seconds_by_models_at_250_images": dict(zip(map(str, model_counts), map(round2, by_models), strict=True)),
        "seconds_by_images_one_model": dict(zip(map(str, image_counts), map(round2, by_images), strict=True)),
        "seconds_per_model_at_250_images": round2(per_model),
        "seconds_per_image_one_model": round(per_image, 5),
        "fixed_seconds_per_model": round2(fixed),
    }


def round2(value: float) -> float:
    return round(value, 2)


def main(smoke: bool) -> None:
    splits = load_data("fashion-mnist")
    images = splits.ranking_set
    if smoke:
        figures = {
            "features": feature_extraction(images.subset(np.arange(32)), 32, 16, rounds=1),
            "fine_tuning": fine_tuning(splits, 32, 8, steps=2, rounds=1),
            "knn_seconds": knn([200]),
        }
        print(figures)
        return
    pool = load_data("fashion-mnist", train_size=4000, val_fraction=0.1).ranking_set
    with tempfile.TemporaryDirectory() as folder:
        features = feature_extraction(images.subset(np.arange(512)), 112, 16, rounds=3)
        tuning = fine_tuning(splits, 112, 32, steps=20, rounds=3)
        knn_seconds = knn([1000, 10000, 50000])
        one_model = ranking_seconds([random_spec(load_zoo("demo").models[0])], images, 112, Path(folder))
        scale = scaling(pool, 64, [1, 2, 4, 8], [250, 500, 1000, 2000, 4000], Path(folder))
    figures = {
        "features": features,
        "fine_tuning": tuning,
        "knn_seconds": knn_seconds,
        "knn_share_of_ranking_at_1k": round(knn_seconds["1000"] / one_model, 4),
        "ranking_seconds_one_model_1k_images_112px": round2(one_model),
        "scaling": scale,
        "machine": describe(),
    }
    save("cpu_suite", figures)


if __name__ == "__main__":
    main("--smoke" in sys.argv)

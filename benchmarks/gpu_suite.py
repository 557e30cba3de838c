"""The GPU run of issue 4 in one command, saved with the device name. The whole suite may need more than the
10 minutes one device command may run (the paper run alone took 341 s on an H200 at 224 px): split it with
--sections.
Sections, in the order they run:

1. feature extraction, zoofit vs a plain timm loop: the demo zoo plus resnet50 and vit_small (random
   weights), 1,000 images at each model's own resolution, batch 256, bf16;
2. fine-tuning, zoofit's trial loop vs a plain train-step loop: mobilenetv2_100, 224 px, batch 64, bf16 (on a
   GPU also zoofit's loop without CUDA graphs, and the last losses of both);
3. ranking a 15-architecture zoo (random weights from local safetensors, 1,000 images, 224 px, bf16): a
   naive loop's load / first pass (warm-up) / steady pass per model, against zoofit's ranking wall time
   (and one or eight models at once, and depthwise convolutions kept off cuDNN, in either layout), each in
   a fresh process; floor: zoofit <= 3x the sum of the steady forward times;
4. kNN seconds at 1k/10k/50k images;
5. scaling: ranking wall time against the number of random-init models (1/2/4/8, 250 images) and of images
   (250 ... 4,000, the 1,000 images repeated), 224 px: slopes and the fixed cost per model;
6. `zoofit run --preset paper` on Fashion-MNIST (800 train / 200 val / 10k test): wall time per stage.

Needs Fashion-MNIST and the demo weights in the zoofit cache; for a GPU machine without internet,
benchmarks/device_bundle.py packs them with a run.sh that sets this up.
The figures are saved to results/gpu_suite-gpu.json after every section; a section that breaks is
recorded as its error and the next one runs.

    python benchmarks/gpu_suite.py [--note TEXT]   # TEXT is saved with the figures (how the run was set up)
    python benchmarks/gpu_suite.py --sections zoo_ranking,paper_run   # only these; the others' figures stay
    python benchmarks/gpu_suite.py --smoke         # a CPU version, about 30 s, that checks the script runs
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, describe, save  # noqa: E402
from cpu_suite import feature_extraction, fine_tuning, knn, scaling, synchronize  # noqa: E402

from zoofit import Ranker  # noqa: E402
from zoofit.data import ImageSet, load_data  # noqa: E402
from zoofit.device import resolve_device  # noqa: E402
from zoofit.result import RunResult  # noqa: E402
from zoofit.zoo import ModelSpec  # noqa: E402

ZOO_15 = [
    "resnet18", "resnet50", "resnet101", "resnetv2_50x1_bit", "efficientnet_b0", "efficientnet_b3", "convnext_tiny",
    "convnext_base", "regnety_016", "vit_small_patch16_224", "vit_base_patch16_224", "deit_small_patch16_224",
    "swin_tiny_patch4_window7_224", "mobilenetv3_large_100", "densenet121",
]  # fmt: skip
SMOKE_ZOO = ["resnet18", "mobilenetv3_large_100"]
IMAGE_COUNTS = [250, 500, 1000, 2000, 4000]


def repeated(images: ImageSet, count: int) -> ImageSet:
    """``count`` images: ``images`` over and over (the GPU machine carries only the 1,000 sampled ones)."""
    return images.subset(np.arange(count) % len(images))


def write_random_zoo(archs: list[str], folder: Path) -> Path:
    """Random-init weights of each architecture as local safetensors, and a zoo file of ``file:`` models."""
    lines = ["name: random15", "models:"]
    for arch in archs:
        path = folder / f"{arch}.safetensors"
        if not path.exists():
            save_file(timm.create_model(arch).state_dict(), str(path))
        lines += [f"  - id: {arch}", f"    arch: {arch}", f"    weights: file:{path}"]
    zoo = folder / "zoo.yaml"
    zoo.write_text("\n".join(lines) + "\n")
    return zoo


def naive_zoo_loop(zoo: Path, size: int, batch: int, train_size: int) -> dict[str, dict[str, float]]:
    """The usual loop over a zoo: per model, load it, one pass over the images (warm-up), one more (steady)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.ones(1, device=device).sum().item()  # the CUDA context is not any model's cost
    images = len(load_data("fashion-mnist", train_size=train_size or None).ranking_set)
    inputs = torch.randn(images, 3, size, size, device=device)
    per_model = {}
    for line in zoo.read_text().splitlines():
        if not line.strip().startswith("weights: file:"):
            continue
        path = Path(line.split("file:", 1)[1])
        start = time.perf_counter()
        model = timm.create_model(path.stem)
        model.load_state_dict(load_file(str(path)))
        model = model.to(device).eval()
        synchronize(device)
        loaded = time.perf_counter()
        passes = []
        for _ in range(2):
            begin = time.perf_counter()
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                for first in range(0, images, batch):
                    model.forward_head(model.forward_features(inputs[first : first + batch]), pre_logits=True)
            synchronize(device)
            passes.append(time.perf_counter() - begin)
        per_model[path.stem] = {"load": loaded - start, "first_pass": passes[0], "steady_pass": passes[1]}
    return per_model


def zoo_ranking(folder: Path, archs: list[str], size: int, batch: int, train_size: int | None) -> dict[str, Any]:
    zoo = write_random_zoo(archs, folder)
    options = [str(zoo), str(size), str(batch), str(train_size or 0)]
    naive = json.loads(_run_self("--naive-zoo", *options))
    steady = sum(model["steady_pass"] for model in naive.values())
    zoofit = json.loads(_run_self("--zoofit-rank", *options, str(folder / "cache"), "0", "none"))
    variants = {  # what ranking models at once buys, and what first uses of cuDNN cost a one-off pass
        "one_model_at_a_time": ("1", "none"),
        "eight_at_once": ("8", "none"),
        "native_depthwise": ("0", "native_depthwise"),
        "channels_last_native_depthwise": ("0", "channels_last,native_depthwise"),
    }
    variant_seconds: dict[str, float | str] = {}
    variant_per_model: dict[str, dict[str, float]] = {}
    for name, flags in variants.items():
        try:
            variant = json.loads(_run_self("--zoofit-rank", *options, str(folder / name), *flags))
            variant_seconds[name] = round(variant["seconds"], 2)
            variant_per_model[name] = variant["per_model"]
        except (RuntimeError, subprocess.TimeoutExpired) as error:  # the main figures above still count
            variant_seconds[name] = f"{type(error).__name__}: {error}"[-300:]
    return {
        "models": len(archs),
        "images": zoofit["images"],
        "resolution": size,
        "batch_size": batch,
        "naive_seconds": {
            part: round(sum(model[part] for model in naive.values()), 2)
            for part in ("load", "first_pass", "steady_pass")
        },
        "naive_total_over_steady": round(sum(sum(m.values()) for m in naive.values()) / steady, 2),
        "zoofit_seconds": round(zoofit["seconds"], 2),
        "zoofit_over_steady": round(zoofit["seconds"] / steady, 2),
        "zoofit_variant_seconds": variant_seconds,
        "naive_per_model": {arch: {k: round(v, 3) for k, v in m.items()} for arch, m in naive.items()},
        "zoofit_per_model": zoofit["per_model"],
        "variant_per_model": variant_per_model,
    }


def zoofit_rank(
    zoo: Path, size: int, batch: int, train_size: int, cache: Path, at_once: int, tweaks: str
) -> dict[str, Any]:
    """zoofit's ranking of ``zoo`` (with an empty feature cache), timed around ``fit`` in this process;
    ``at_once`` 0 is zoofit's default. ``tweaks`` ("none" or a comma list) tries what zoofit does not (yet):
    ``cudnn_off``; ``channels_last`` models and inputs; ``native_depthwise``, depthwise convolutions fed NCHW
    tensors, which PyTorch runs in bf16 with its own kernel instead of cuDNN's (ConvNeXt's blocks hand theirs
    channels_last-strided tensors, after a permute, even in an NCHW model)."""
    import zoofit.device
    import zoofit.rank.features

    images = load_data("fashion-mnist", train_size=train_size or None).ranking_set
    ranker = Ranker(
        str(zoo), image_size=size, feature_batch_size=batch, cache_dir=cache, models_at_once=at_once or None
    )
    if "channels_last" in tweaks:
        zoofit.device.memory_format = lambda device: torch.channels_last
    if "native_depthwise" in tweaks:
        to_device = zoofit.rank.features.to_device
        zoofit.rank.features.to_device = lambda model, device: native_depthwise(to_device(model, device))
    start = time.perf_counter()
    with torch.backends.cudnn.flags(enabled="cudnn_off" not in tweaks):
        ranker.fit(images)
    seconds = time.perf_counter() - start
    per_model = {row.model: round(row.seconds, 3) for row in ranker.ranking_}
    return {"images": len(images), "seconds": seconds, "per_model": per_model}


def native_depthwise(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with NCHW weights and inputs for its depthwise convolutions (from then on)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
            module.weight.data = module.weight.data.contiguous()
            module.register_forward_pre_hook(lambda _, args: (args[0].contiguous(), *args[1:]))
    return model


def paper_run(folder: Path, extra: list[str]) -> dict[str, Any]:
    out = folder / "paper"
    arguments = ["run", "--data", "fashion-mnist", "--zoo", "demo", "--preset", "paper", *extra]
    start = time.perf_counter()  # the zoofit of this interpreter, whatever PATH holds
    subprocess.run([sys.executable, "-m", "zoofit.cli", *arguments, "--out", str(out)], check=True, timeout=500)
    wall = time.perf_counter() - start
    result = RunResult.read(out)
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    return {
        "command": " ".join(["zoofit", *arguments]),
        "image_size": result.sweep.search.image_size,  # None: each model's own
        "process_wall_seconds": round(wall, 1),
        "wall_seconds": round(result.wall_seconds, 1),
        "stage_seconds": result.stage_seconds,
        "trials": len(list((out / "trials").iterdir())),
        "trial_seconds": {f"{row['model']} lr={row['lr']}": round(float(row["seconds"]), 1) for row in trials},
        "rank_seconds": {
            row["model"]: round(row["seconds"], 2) for row in json.loads((out / "ranking.json").read_text())["ranked"]
        },
        "test_accuracy": result.ensemble.test.accuracy,
        "test_nll": result.ensemble.test.nll,
        "best_single": asdict(result.best_single),
    }


def _run_self(*arguments: str) -> str:
    """This script's stdout in a fresh process; a failure raises with the end of its stderr."""
    run = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, timeout=240)
    if run.returncode:
        raise RuntimeError(f"{arguments[0]} failed: {run.stderr[-500:]}")
    return run.stdout


def main(smoke: bool, note: str | None, chosen: list[str] | None = None) -> None:
    """Every section in turn (or the ``chosen`` ones: their figures replace those of the saved results); a
    section that breaks is recorded as its error, and the figures are saved after each one, so a run cut
    short still leaves what it measured."""
    device = resolve_device("auto")
    if device.type != "cuda" and not smoke:
        raise SystemExit("no GPU visible: run benchmarks/cpu_suite.py here, or gpu_suite.py --smoke to check it")
    splits = load_data("fashion-mnist")
    images = splits.ranking_set
    extra = [ModelSpec(id=arch, arch=arch, weights="random") for arch in ("resnet50", "vit_small_patch16_224")]
    figures: dict[str, Any] = {"machine": describe(), "note": note}
    with tempfile.TemporaryDirectory(prefix="zoofit-gpu-") as folder:
        if smoke:
            sections = {
                "features": lambda: feature_extraction(images.subset(np.arange(16)), 32, 8, 1, device),
                "fine_tuning": lambda: fine_tuning(splits, 32, 8, 2, 1, device),
                "zoo_ranking": lambda: zoo_ranking(Path(folder), SMOKE_ZOO, 32, 8, train_size=40),
                "paper_run": lambda: paper_run(
                    Path(folder),
                    [
                        "--top-k",
                        "1",
                        "--lrs",
                        "0.01",
                        "--steps",
                        "2",
                        "--image-size",
                        "32",
                        "--train-size",
                        "40",
                        "--shift-images",
                        "100",
                    ],
                ),  # fmt: skip
                "scaling": lambda: scaling(images, 32, [1, 2], [16, 32], Path(folder)),
            }
        else:
            sections = {
                "features": lambda: feature_extraction(images, None, 256, 3, device, extra=tuple(extra)),
                "fine_tuning": lambda: fine_tuning(splits, 224, 64, 100, 3, device),
                "zoo_ranking": lambda: zoo_ranking(Path(folder), ZOO_15, 224, 256, train_size=None),
                "knn_seconds": lambda: knn([1000, 10000, 50000]),
                "scaling": lambda: scaling(repeated(images, 4000), 224, [1, 2, 4, 8], IMAGE_COUNTS, Path(folder)),
                "paper_run": lambda: paper_run(Path(folder), []),  # the longest, last
            }
        if chosen:
            unknown = set(chosen) - set(sections)
            if unknown:
                raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(sections)}")
            sections = {name: sections[name] for name in chosen}
            saved = RESULTS / "gpu_suite-gpu.json"
            if saved.exists() and not smoke:
                earlier = json.loads(saved.read_text())
                figures = {**earlier, **figures, "rerun": {"sections": chosen, "others_from": earlier["machine"]}}
        for name, measure in sections.items():
            start = time.perf_counter()
            try:
                figures[name] = measure()
            except Exception as error:  # noqa: BLE001 - recorded, and the next section still runs
                figures[name] = {"error": f"{type(error).__name__}: {error}"}
            print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
            if smoke:
                print(json.dumps(figures[name], indent=2))
            else:
                save("gpu_suite", figures)
        if smoke and any("error" in value for value in figures.values() if isinstance(value, dict)):
            raise SystemExit("a section failed (see its error above)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--naive-zoo"]:
        zoo, size, batch, train_size = sys.argv[2:6]
        print(json.dumps(naive_zoo_loop(Path(zoo), int(size), int(batch), int(train_size))))
    elif sys.argv[1:2] == ["--zoofit-rank"]:
        zoo, size, batch, train_size, cache, at_once, tweaks = sys.argv[2:9]
        print(
            json.dumps(
                zoofit_rank(Path(zoo), int(size), int(batch), int(train_size), Path(cache), int(at_once), tweaks)
            )
        )
    else:
        note = sys.argv[sys.argv.index("--note") + 1] if "--note" in sys.argv else None
        sections = sys.argv[sys.argv.index("--sections") + 1].split(",") if "--sections" in sys.argv else None
        main("--smoke" in sys.argv, note, sections)

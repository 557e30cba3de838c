"""Ranking a big zoo of real timm architectures: zoofit against a naive loop and against plain timm's steady passes.

Builds a local Hugging Face hub cache of random-weight checkpoints under real pretrained tags (one tag per
architecture, at most ``--max-params`` M parameters, at most three architectures per family), then, offline
(``HF_HUB_OFFLINE=1``), in one run on ``--images`` random images at ``--size`` px:

- zoofit: ``Ranker`` over the zoo (fixed-size models at their own size, its default lanes), wall time, each
  model's seconds in its lane and recorded failures;
- naive: for each model, ``timm.create_model(pretrained=True)`` -> one pass over the images -> next;
- steady: each model's second pass over the same images alone, in plain timm, summed.

    PYTHONPATH=src python benchmarks/zoo_scale.py            # >= 100 architectures: results/zoo_scale-cpu.json
    PYTHONPATH=src python benchmarks/zoo_scale.py --smoke    # 5 architectures, results to --out (a test runs it)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["resnet18.a1_in1k", "mobilenetv3_small_100.lamb_in1k", "vit_tiny_patch16_224.augreg_in21k",
         "efficientnet_b0.ra_in1k", "convnext_atto.d2_in1k"]  # fmt: skip


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="5 architectures (a quick check of the script)")
    parser.add_argument("--models", type=int, default=110, help="architectures to rank")
    parser.add_argument("--max-params", type=float, default=8.0, help="largest model, millions of parameters")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default results/zoo_scale-<cpu|gpu>)")
    return parser.parse_args()


ARGS = options()
HUB = Path(tempfile.mkdtemp(prefix="zoo_scale-hub-"))
os.environ.update(HF_HUB_CACHE=str(HUB), HF_HUB_OFFLINE="1")  # before huggingface_hub reads them at import
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import json  # noqa: E402
import re  # noqa: E402
from dataclasses import asdict  # noqa: E402

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from common import describe, save  # noqa: E402

from tests.conftest import write_random_checkpoints  # noqa: E402
from zoofit import Ranker  # noqa: E402
from zoofit.data import ImageSet  # noqa: E402
from zoofit.device import resolve_device  # noqa: E402
from zoofit.rank.ranker import Lanes  # noqa: E402
from zoofit.zoo import ModelSpec, Zoo  # noqa: E402


def architectures(count: int, max_params: float, per_family: int = 3) -> list[str]:
    """One pretrained tag (timm's default) per architecture, from timm's hub, small ones, ``per_family`` at most
    per family (the architecture's leading letters), in timm's order."""
    seen, picked, families = set(), [], {}
    for tag in timm.list_pretrained():
        arch = tag.split(".")[0]
        cfg = timm.models.get_pretrained_cfg(tag)
        family = re.match(r"[a-z]*", arch.removeprefix("tf_")).group(0)
        if arch in seen or arch.startswith("test_") or families.get(family, 0) >= per_family:
            continue
        seen.add(arch)
        if not cfg.hf_hub_id or cfg.custom_load or cfg.input_size[-1] > 256:
            continue
        try:
            with torch.device("meta"):
                params = sum(p.numel() for p in timm.create_model(tag).parameters()) / 1e6
        except Exception:  # noqa: BLE001, S112 - an architecture that cannot be built is left out
            continue
        if params <= max_params:
            families[family] = families.get(family, 0) + 1
            picked.append(tag)
            if len(picked) == count:
                break
    return picked


def size_of(tag: str, size: int) -> int:
    cfg = timm.models.get_pretrained_cfg(tag)
    return int(cfg.input_size[-1]) if cfg.fixed_input_size else size


def passes(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """One pass of ``model`` over ``x`` to its pre-logit features, in batches."""
    with torch.inference_mode():
        for batch in x.split(batch_size):
            model.forward_head(model.forward_features(batch), pre_logits=True)


def plain(tags: list[str], images: np.ndarray, batch_size: int) -> dict[str, object]:
    """The naive loop (build, load, one pass, next) and each model's steady (second) pass alone."""
    per_model, failed = {}, []
    for tag in tags:
        try:
            start = time.perf_counter()
            model = timm.create_model(tag, pretrained=True).eval()
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
            x = torch.nn.functional.interpolate(x, size=size_of(tag, images.shape[1]), mode="bilinear")
            mean, std = (torch.tensor(model.pretrained_cfg[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
            x = (x - mean) / std

            passes(model, x, batch_size)
            naive = time.perf_counter() - start
            start = time.perf_counter()
            passes(model, x, batch_size)
            per_model[tag] = {"naive_s": round(naive, 3), "steady_s": round(time.perf_counter() - start, 3)}
        except Exception as error:  # noqa: BLE001 - a failure is recorded, as zoofit records it
            failed.append({"model": tag, "reason": str(error).splitlines()[0] if str(error) else type(error).__name__})
    return {"per_model": per_model, "failed": failed}


def main() -> None:
    try:
        tags = SMOKE if ARGS.smoke else architectures(ARGS.models, ARGS.max_params)
        write_random_checkpoints(HUB, tags)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (ARGS.images, ARGS.size, ARGS.size, 3), dtype=np.uint8)
        data = ImageSet(images, rng.integers(0, 5, ARGS.images), tuple("abcde"))
        zoo = Zoo("zoo_scale", tuple(ModelSpec(tag, tag.split(".")[0], f"timm:{tag}") for tag in tags))
        with tempfile.TemporaryDirectory(prefix="zoo_scale-cache-") as cache:
            start = time.perf_counter()
            ranker = Ranker(
                zoo, image_size=ARGS.size, own_size_if_needed=True, feature_batch_size=ARGS.batch_size, precision="fp32",
                cache_dir=cache,
            ).fit(data)  # fmt: skip
            zoofit_wall = time.perf_counter() - start
        start = time.perf_counter()
        loop = plain(tags, images, ARGS.batch_size)
        naive_wall = time.perf_counter() - start
        steady = sum(row["steady_s"] for row in loop["per_model"].values())
        seconds = {row.model: row.seconds for row in ranker.ranking_}  # each model's features and score, in its lane
        figures = {
            "machine": describe(),
            "models": len(tags),
            "images": ARGS.images,
            "size": ARGS.size,
            "batch_size": ARGS.batch_size,
            "zoofit": {
                "wall_s": round(zoofit_wall, 1),
                "lanes": asdict(Lanes.on(resolve_device("auto"))),
                "ranked": len(ranker.ranking_),
                "failed": [asdict(skipped) for skipped in ranker.skipped_],
            },
            "naive_loop": {"wall_s": round(naive_wall - steady, 1), "failed": loop["failed"]},
            "plain_steady_sum_s": round(steady, 1),
            "zoofit_over_steady": round(zoofit_wall / steady, 2),
            "naive_over_steady": round((naive_wall - steady) / steady, 2),
            "per_model": {
                tag: {**row, "zoofit_s": round(seconds[tag], 3)} if tag in seconds else row
                for tag, row in loop["per_model"].items()
            },
        }
        if ARGS.out is None:
            save("zoo_scale", figures)
        else:
            ARGS.out.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(HUB, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Shared fixtures: generated image data and tiny random-init timm models, an isolated cache per test."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from zoofit.zoo import ModelSpec, Preprocessing, Zoo

# Distinct base colours make an easy task that even random-init features separate.
CLASS_COLOURS = {"cat": (200, 60, 40), "dog": (40, 70, 200), "fox": (60, 180, 60)}


@pytest.fixture(autouse=True)
def isolated_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Unit tests get an empty cache; integration tests keep the user's (to reuse converted weights)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("ZOOFIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def coloured_image(colour: tuple[int, int, int], size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-30, 30, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


def write_image_folder(
    root: Path, per_class: int = 6, classes=tuple(CLASS_COLOURS), layout: str = "flat", size=(24, 20)
) -> Path:
    """A folder of PNGs under ``root``: ``<class>/<i>.png`` (flat) or ``<split>/<class>/<i>.png`` (split)."""
    splits = {"train": per_class} if layout == "flat" else {"train": per_class, "val": 2, "test": 2}
    for split, count in splits.items():
        for name in classes:
            folder = root / name if layout == "flat" else root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                seed = zlib.crc32(f"{split}/{name}/{i}".encode())
                coloured_image(CLASS_COLOURS[name], size, seed).save(folder / f"{i}.png")
    return root


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make(per_class=6, classes=..., layout='flat'|'split', size=(24, 20))`` -> a folder of PNGs."""

    def make(per_class: int = 6, classes=tuple(CLASS_COLOURS), layout: str = "flat", size=(24, 20)) -> Path:
        return write_image_folder(tmp_path / f"images-{layout}-{per_class}", per_class, classes, layout, size)

    return make


def tiny_spec(model_id: str = "tiny_resnet", arch: str = "test_resnet", weights: str = "random") -> ModelSpec:
    """A small random-init timm model at 32 px: fast enough for unit tests on 2 CPU cores."""
    prep = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0)
    return ModelSpec(id=model_id, arch=arch, weights=weights, preprocessing=prep)


@pytest.fixture
def tiny_zoo() -> Zoo:
    return Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))


#: The tiny run's sweep: two learning rates per model, with soups; no robustness (its own tests cover it).
TINY_SWEEP = {
    "lrs": (0.01, 0.03),
    "steps": (12,),
    "batch_size": 8,
    "image_size": 32,
    "shift_images": 0,
    "members": ("trial", "soup", "linear"),
}


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run folder (two random-init models, two learning rates each, their soups), made once."""
    from zoofit import ZooFit, load_data, preset

    root = tmp_path_factory.mktemp("tiny-run")
    splits = load_data(str(write_image_folder(root / "images", per_class=8, layout="split")))
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    fit = ZooFit(zoo, sweep=preset("quick").override(**TINY_SWEEP), precision="fp32", workers=1,
                 cache_dir=root / "cache")  # fmt: skip
    fit.fit(splits, root / "run")
    return root / "run"


def write_hub_cache(cache: Path, repo: str, state: dict[str, torch.Tensor]) -> None:
    """The layout huggingface_hub uses: refs/main names a snapshot folder that holds the files."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision).mkdir(parents=True)
    save_file(state, str(folder / "snapshots" / revision / "model.safetensors"))


def write_random_checkpoints(cache: Path, names: list[str], seed: int = 0) -> None:
    """A Hugging Face hub cache at ``cache`` holding, for each pretrained tag of ``names``, random weights of its
    architecture (with the tag's classifier) in the repo timm downloads it from."""
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False)
        write_hub_cache(cache, cfg.hf_hub_id, {key: value.clone() for key, value in model.state_dict().items()})

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


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make(per_class=6, classes=..., layout='flat'|'split', size=(24, 20))`` -> a folder of PNGs."""

    def make(per_class: int = 6, classes=tuple(CLASS_COLOURS), layout: str = "flat", size=(24, 20)) -> Path:
        root = tmp_path / f"images-{layout}-{per_class}"
        splits = {"train": per_class} if layout == "flat" else {"train": per_class, "val": 2, "test": 2}
        for split, count in splits.items():
            for name in classes:
                folder = root / name if layout == "flat" else root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    seed = zlib.crc32(f"{split}/{name}/{i}".encode())
                    coloured_image(CLASS_COLOURS[name], size, seed).save(folder / f"{i}.png")
        return root

    return make


def tiny_spec(model_id: str = "tiny_resnet", arch: str = "test_resnet", weights: str = "random") -> ModelSpec:
    """A small random-init timm model at 32 px: fast enough for unit tests on 2 CPU cores."""
    prep = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0)
    return ModelSpec(id=model_id, arch=arch, weights=weights, preprocessing=prep)


@pytest.fixture
def tiny_zoo() -> Zoo:
    return Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))


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

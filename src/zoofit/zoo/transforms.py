"""Turning decoded uint8 images into a model's input tensor, on the model's device, a batch at a time."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zoofit.device import upload
from zoofit.zoo.spec import Preprocessing


def prepare_batch(
    images: np.ndarray | list[np.ndarray], prep: Preprocessing, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``B x 3 x S x S`` float input for a batch of ``H x W x C`` uint8 images (C = 1 or 3).

    Pixels travel to ``device`` as uint8 and are resized there (a stacked batch in one call).
    """
    if isinstance(images, np.ndarray):
        pixels = resize_crop(_to_tensor(images, device).permute(0, 3, 1, 2), prep)
    else:
        pixels = torch.cat([resize_crop(_to_tensor(image, device).permute(2, 0, 1)[None], prep) for image in images])
    mean, std = _channel_scales(tuple(prep.mean), tuple(prep.std), pixels.device)
    return normalise(pixels, mean, std)


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``B x C x S x S`` pixels (0..255, C = 1 or 3) as RGB normalised with ``mean`` and ``std`` (of 0..255)."""
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return (pixels - mean) / std


@functools.cache
def _channel_scales(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of 0..255 pixels per channel, on ``device``: made once per device, since making them
    there is a copy that would wait for the GPU at every batch (a blocking copy here, so that any thread or
    stream may use them at once)."""
    with torch.inference_mode(False):  # ordinary tensors, also when first asked for under inference mode
        return tuple(channel_scales(mean, std).to(device).unbind(0))  # type: ignore[return-value]


def channel_scales(mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``2 x 1 x 3 x 1 x 1``: mean and std of 0..255 pixels per channel."""
    return torch.tensor([list(mean), list(std)], dtype=torch.float32).view(2, 1, 3, 1, 1) * 255.0


def _to_tensor(pixels: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 pixels as a tensor on ``device`` (copied where numpy's array is read-only, e.g. memory-mapped)."""
    if not pixels.flags.writeable or not pixels.flags.c_contiguous:
        pixels = np.array(pixels, order="C")
    return upload(torch.from_numpy(pixels), device)


def resize_crop(pixels: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Resize the shorter side to ``input_size / crop_pct`` and centre-crop ``input_size`` (float 0..255)."""
    height, width = pixels.shape[-2:]
    size = prep.input_size
    shorter = max(size, math.floor(size / prep.crop_pct))
    scale = shorter / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    pixels = pixels.float()
    if (new_h, new_w) != (height, width):
        mode = prep.interpolation if prep.interpolation in ("bilinear", "bicubic") else "nearest"
        extra = {"antialias": True, "align_corners": False} if mode != "nearest" else {}
        pixels = F.interpolate(pixels, size=(new_h, new_w), mode=mode, **extra).clamp_(0, 255)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return pixels[..., top : top + size, left : left + size]

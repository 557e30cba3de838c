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
    """Resize the shorter side to ``input_size / crop_pct`` and centre-crop ``input_size`` (float 0..255).

    Sizes and nearest-neighbour indices are integer arithmetic on the image's height and width, so that
    :func:`torch.export.export` with symbolic ones captures them as expressions (in ONNX: computed sizes for
    ``Resize``, ``Gather`` and ``Slice``), not as guards, and an exported file computes what this does.
    """
    height, width = pixels.shape[-2:]
    size = prep.input_size
    shorter = max(size, math.floor(size / prep.crop_pct))
    old_shorter = torch.sym_min(height, width)
    new_h, new_w = (torch.sym_max(size, _nearest(side * shorter, old_shorter)) for side in (height, width))
    pixels = pixels.float()
    if not (_known_equal(new_h, height) and _known_equal(new_w, width)):
        pixels = _resized(pixels, prep.interpolation, new_h, new_w)
    # copies, not views: a view's strides would have torch.export guard on the new sizes (landscape vs portrait)
    return pixels.narrow_copy(-2, (new_h - size) // 2, size).narrow_copy(-1, (new_w - size) // 2, size)


def _resized(pixels: torch.Tensor, interpolation: str, height: int, width: int) -> torch.Tensor:
    """``pixels`` resized to ``height x width``: antialiased bilinear or bicubic, else nearest (the pixel at
    ``floor(i * old / new)``, exact in integers where ``F.interpolate``'s float scale and ONNX's differ)."""
    if interpolation in ("bilinear", "bicubic"):
        resized = F.interpolate(pixels, size=(height, width), mode=interpolation, antialias=True, align_corners=False)
        return resized.clamp_(0, 255)
    rows = torch.arange(height, device=pixels.device) * pixels.shape[-2] // height
    columns = torch.arange(width, device=pixels.device) * pixels.shape[-1] // width
    return pixels.index_select(-2, rows).index_select(-1, columns)


def _known_equal(size: int, other: int) -> bool:
    """Whether two sizes are equal ints: symbolic ones (under :func:`torch.export.export`) are taken as different,
    never guarded on, so that the resize is in the program (where the sizes are equal, it returns its input)."""
    return type(size) is int and type(other) is int and size == other


def _nearest(numerator: int, denominator: int) -> int:
    """The integer nearest to ``numerator / denominator`` (positive), halves up."""
    return (2 * numerator + denominator) // (2 * denominator)

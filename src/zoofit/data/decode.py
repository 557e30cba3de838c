"""Decoding image files into RGB uint8 arrays, once per run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from zoofit.execute.base import cpu_cores
from zoofit.progress import Progress, SilentProgress

log = logging.getLogger("zoofit")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

#: Images are downscaled on decoding so their shorter side is at most this many pixels: ample for
#: models up to ~450 px input, and it bounds memory for folders of large photos.
DEFAULT_MAX_SIDE = 512


class UnreadableImage(Exception):
    """The file is not a decodable image (corrupt, truncated, or another format)."""


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes held elsewhere than in a file (a dataset's column, a tar member), and where they come
    from (``name``, for messages)."""

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


#: What :func:`decode_image` reads: an image file, or an image file's bytes.
ImageFile = Path | EncodedImage


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_image(path: ImageFile, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Read ``path`` (a file, or its bytes) as an ``H x W x 3`` uint8 RGB array.

    EXIF orientation is applied; grey, palette, transparent, CMYK and 16-bit images become RGB
    (transparency is composited onto white).
    """
    try:
        with Image.open(BytesIO(path.data) if isinstance(path, EncodedImage) else path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(f"{path}: {error}") from error
    shorter = min(rgb.size)
    if shorter > max_side:
        scale = max_side / shorter
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grey: scale the 0..65535 range to 8 bits.
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(values / 257.0, 0, 255).round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_many(
    paths: Sequence[ImageFile],
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    progress: Progress | None = None,
    description: str = "decoding images",
) -> list[np.ndarray | None]:
    """Decode ``paths`` in parallel threads; an unreadable file gives ``None`` and a warning naming it."""
    progress = progress or SilentProgress()

    def decode_or_none(path: ImageFile) -> np.ndarray | None:
        try:
            return decode_image(path, max_side)
        except UnreadableImage as error:
            log.warning("skipping unreadable image %s", error)
            return None

    results: list[np.ndarray | None] = []
    workers = min(8, cpu_cores())
    with progress.task(description, total=len(paths)) as task, ThreadPoolExecutor(workers) as pool:
        for result in pool.map(decode_or_none, paths):
            results.append(result)
            task.advance()
    return results

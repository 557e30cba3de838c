"""Robustness to distribution shift: test images corrupted as in ImageNet-C, and the metrics under each corruption.

The corruptions and their five severities are ImageNet-C's (Hendrycks & Dietterich, 2019), whose parameters refer
to 224 px images. So every image is first resized (bicubic) to 224 px on its shorter side, the *reference grid*,
and corrupted there; each model then resizes it as it does any image. The clean condition goes through the same
grid, so the corruption is the only difference between conditions.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFilter

from zoofit.data import ImageSet
from zoofit.data.dataset import stack_if_uniform
from zoofit.evaluate.metrics import summarize
from zoofit.execute.base import cpu_cores

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIZE = 224  # ImageNet-C's image size, to which its parameters refer


def _noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(image / 255.0 + rng.normal(0.0, sigma, image.shape))


def _contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = image / 255.0
    mean = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8((x - mean) * factor + mean)


def _blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(sigma)), image)


def _pixelate(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    pil = _to_pil(image)
    small = pil.resize((max(1, int(pil.width * factor)), max(1, int(pil.height * factor))), Image.Resampling.BOX)
    return _from_pil(small.resize(pil.size, Image.Resampling.BOX), image)


def _jpeg(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    _to_pil(image).save(buffer, format="JPEG", quality=int(quality))
    return _from_pil(Image.open(buffer), image)


#: name -> (function, its parameter at severities 1..5), ImageNet-C's values.
CORRUPTIONS: dict[str, tuple[Callable[[np.ndarray, float, np.random.Generator], np.ndarray], tuple[float, ...]]] = {
    "gaussian_noise": (_noise, (0.08, 0.12, 0.18, 0.26, 0.38)),
    "gaussian_blur": (_blur, (1, 2, 3, 4, 6)),
    "contrast": (_contrast, (0.4, 0.3, 0.2, 0.1, 0.05)),
    "pixelate": (_pixelate, (0.6, 0.5, 0.4, 0.3, 0.25)),
    "jpeg": (_jpeg, (25, 18, 15, 10, 7)),
}


def on_reference_grid(images: ImageSet) -> ImageSet:
    """``images`` resized so that their shorter side is 224 px (the clean condition)."""
    return _map(images, _to_reference_grid)


def corrupted(images: ImageSet, name: str, severity: int, seed: int = 0) -> ImageSet:
    """``images`` on the reference grid with the corruption ``name`` at ``severity`` (1-5); labels unchanged.
    Each image's random stream is keyed by ``seed``, the corruption and the image itself, so an image is corrupted
    the same way in any sample of the images."""
    if name not in CORRUPTIONS or severity not in SEVERITIES:
        raise ValueError(f"no corruption {name!r} at severity {severity!r}: names {list(CORRUPTIONS)}, severities 1-5")
    function, parameters = CORRUPTIONS[name]
    stream = [seed, list(CORRUPTIONS).index(name), severity]

    def corrupt(image: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([*stream, zlib.crc32(np.ascontiguousarray(image))])
        return function(_to_reference_grid(image), parameters[severity - 1], rng)

    return _map(images, corrupt)


def sample(count: int, total: int, seed: int = 0) -> np.ndarray:
    """``count`` sorted indices of ``total`` drawn at random without replacement (all where there are fewer)."""
    if count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def conditions(images: ImageSet, severity: int, seed: int = 0) -> Iterator[tuple[str, ImageSet]]:
    """``("clean", images on the reference grid)``, then each corruption's images, one at a time."""
    yield "clean", on_reference_grid(images)
    for name in CORRUPTIONS:
        yield name, corrupted(images, name, severity, seed)


def shift_report(
    images: ImageSet,
    predict: Callable[[ImageSet], dict[str, np.ndarray]],
    *,
    severity: int,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of each classifier on ``images``: clean, under every corruption at ``severity``, and averaged over
    the corruptions (``mean``), as ``{condition: {classifier: {accuracy, nll, ece}}}``. ``predict(shifted)``
    gives each classifier's probabilities for the images of one condition."""
    report = {
        condition: {name: summarize(probs, images.labels) for name, probs in predict(shifted).items()}
        for condition, shifted in conditions(images, severity, seed)
    }
    report["mean"] = {
        name: {metric: float(np.mean([report[c][name][metric] for c in CORRUPTIONS])) for metric in metrics}
        for name, metrics in report["clean"].items()
    }
    return report


def _map(images: ImageSet, function: Callable[[np.ndarray], np.ndarray]) -> ImageSet:
    """``function(image)`` of every image, in threads (PIL's filters and codecs release the GIL)."""
    with ThreadPoolExecutor(min(8, cpu_cores())) as pool:
        mapped = list(pool.map(function, images.images))
    return ImageSet(stack_if_uniform(mapped), images.labels, images.class_names)


def _to_reference_grid(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = REFERENCE_SIZE / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return image
    return _from_pil(_to_pil(image).resize(size, Image.Resampling.BICUBIC), image)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(pil: Image.Image, like: np.ndarray) -> np.ndarray:
    """``pil`` as an ``H x W x C`` uint8 array with the channels of ``like`` (its own height and width)."""
    array = np.asarray(pil.convert("L" if like.shape[-1] == 1 else "RGB"))
    return array[..., None] if array.ndim == 2 else array

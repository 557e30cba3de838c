"""Robustness to distribution shift: test images corrupted as in ImageNet-C, and the metrics under each corruption.

The corruptions and their five severities follow ImageNet-C (Hendrycks & Dietterich, 2019), with every length
(the blur's sigma) scaled from their 224 px images to the image's shorter side, so a 28 px image is blurred as
much, relative to its content, as a 224 px one. They act on the decoded images, before any model's resizing.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from zoofit.data import ImageSet
from zoofit.evaluate.metrics import summarize

SEVERITIES = (1, 2, 3, 4, 5)
_REFERENCE_SIZE = 224  # ImageNet-C's image size, to which its lengths refer


def _noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(image / 255.0 + rng.normal(0.0, sigma, image.shape))


def _contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = image / 255.0
    mean = x.mean()
    return _to_uint8((x - mean) * factor + mean)


def _blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    radius = sigma * min(image.shape[:2]) / _REFERENCE_SIZE
    return _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(radius)), image)


def _pixelate(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    pil = _to_pil(image)
    small = pil.resize((max(1, round(pil.width * factor)), max(1, round(pil.height * factor))), Image.BOX)
    return _from_pil(small.resize(pil.size, Image.BOX), image)


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


def corrupted(images: ImageSet, name: str, severity: int, seed: int = 0) -> ImageSet:
    """``images`` with the corruption ``name`` at ``severity`` (1-5) applied to each; labels unchanged.
    Deterministic for a given ``seed``."""
    function, parameters = CORRUPTIONS[name]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name), severity])
    out = [function(images.images[i], parameters[severity - 1], rng) for i in range(len(images))]
    return ImageSet(np.stack(out) if isinstance(images.images, np.ndarray) else out, images.labels, images.class_names)


def sample(count: int, total: int, seed: int = 0) -> np.ndarray:
    """``count`` sorted indices of ``total`` drawn at random without replacement (all where there are fewer)."""
    if count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def shift_report(
    images: ImageSet,
    clean: dict[str, np.ndarray],
    predict: Callable[[ImageSet], dict[str, np.ndarray]],
    *,
    severity: int,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of each classifier on ``images`` as they are (``clean``: its probabilities for them, by classifier),
    under every corruption at ``severity`` (``predict(shifted)``: the same for the shifted images), and averaged
    over the corruptions (``mean``): ``{condition: {classifier: {accuracy, nll, ece}}}``."""
    probabilities = {"clean": clean} | {name: predict(corrupted(images, name, severity, seed)) for name in CORRUPTIONS}
    report = {
        condition: {name: summarize(probs, images.labels) for name, probs in by_classifier.items()}
        for condition, by_classifier in probabilities.items()
    }
    report["mean"] = {
        name: {metric: float(np.mean([report[c][name][metric] for c in CORRUPTIONS])) for metric in metrics}
        for name, metrics in report["clean"].items()
    }
    return report


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(pil: Image.Image, like: np.ndarray) -> np.ndarray:
    return np.asarray(pil.convert("L" if like.shape[-1] == 1 else "RGB")).reshape(like.shape)

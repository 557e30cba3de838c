"""Small real datasets that ship inside installed packages: ``digits`` (scikit-learn) and ``lfw-subset``
(scikit-image). Neither has a test split: give one with ``test_fraction`` (the ``offline`` suite does)."""

from __future__ import annotations

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData
from zoofit.data.sources.base import Source
from zoofit.errors import ZoofitError
from zoofit.progress import Progress


class PackagedSource(Source):
    """A dataset read from an installed package (``package``, its pip name ``requirement``), by its bare scheme."""

    bare = True
    package: str
    requirement: str

    def check(self, location: str) -> None:
        if location:
            raise ZoofitError(
                f"data '{self.scheme}:{location}': '{self.scheme}' takes no location; give '{self.scheme}'"
            )
        try:
            __import__(self.package)
        except ImportError:
            raise ZoofitError(
                f"data '{self.scheme}' needs the package {self.requirement}; install it with "
                f"'pip install {self.requirement}'"
            ) from None

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        self.check(location)
        images, labels, class_names = self.read()
        return SourceData(self.scheme, ImageSet(images[..., None], labels, class_names))

    def read(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """uint8 N x H x W grey images, integer labels, the class names."""
        raise NotImplementedError


class Digits(PackagedSource):
    """scikit-learn's 1,797 handwritten digits, 8 x 8 px in 17 grey levels (BSD)."""

    scheme = "digits"
    help = "scikit-learn's 1,797 handwritten digits, 8 x 8 px"
    package = "sklearn"
    requirement = "scikit-learn"

    def read(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255 / 16)).astype(np.uint8)
        return images, digits.target.astype(np.int64), tuple(str(d) for d in range(10))


class LfwSubset(PackagedSource):
    """scikit-image's 200 LFW crops, 25 x 25 px grey: 100 faces, then 100 non-faces (LFW's terms)."""

    scheme = "lfw-subset"
    help = "scikit-image's 200 LFW crops, 25 x 25 px: faces and non-faces"
    package = "skimage"
    requirement = "scikit-image"

    def read(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        from skimage.data import lfw_subset

        pixels = lfw_subset()
        images = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
        labels = np.repeat(np.array([0, 1], dtype=np.int64), [100, len(images) - 100])
        return images, labels, ("face", "non-face")

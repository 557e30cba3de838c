"""A dSprites-like structured task, generated: ``dsprites`` (x position) or ``dsprites:orientation``.

It follows the published definition of dSprites (Matthey et al., 2017, github.com/deepmind/dsprites-dataset):
white sprites on a black 64 x 64 canvas, generated from independent latent factors, each uniform over its
values: shape (square, ellipse, heart), scale (6 values linearly spaced in [0.5, 1]), orientation (40 values in
[0, 2 pi)), position x and y (32 values each in [0, 1]). The labels are VTAB's dSprites tasks: the x position in
16 bins (``location``, VTAB's ``dsprites/label_x_position``) or the orientation in 16 bins (``orientation``).
The images are drawn here with a fixed seed (6,000 train, 2,000 test), so the task is the same on every machine;
the sprites' outlines are those of this drawing, not of the published files.
"""

from __future__ import annotations

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData
from zoofit.data.sources.base import Source
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

CANVAS = 64
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40, endpoint=False)
POSITIONS = np.linspace(0.0, 1.0, 32)
BINS = 16
#: The label factors: its values' count, and which latent column it reads.
TASKS = {"location": 3, "orientation": 2}  # latent columns: shape, scale, orientation, x, y
COUNTS = {"train": 6000, "test": 2000}
SIZE_AT_SCALE_1 = 11.0  # half the sprite's extent in pixels at scale 1
MARGIN = 12.0  # the canvas border that the sprites' centres keep off


class DSprites(Source):
    """``dsprites`` (``location``: 16 x-position bins) or ``dsprites:orientation`` (16 orientation bins)."""

    scheme = "dsprites"
    form = "dsprites[:orientation]"
    help = "generated dSprites: 16 bins of the x position (or of the orientation)"
    bare = True

    def check(self, location: str) -> None:
        if (location or "location") not in TASKS:
            raise ZoofitError(f"data 'dsprites:{location}': the task must be one of {', '.join(TASKS)}")

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        self.check(location)
        task = location or "location"
        sets = {split: generate(count, task, seed=index) for index, (split, count) in enumerate(COUNTS.items())}
        return SourceData(f"dsprites-{task}", sets["train"], None, sets["test"])


def generate(count: int, task: str = "location", *, seed: int = 0) -> ImageSet:
    """``count`` sprites drawn from the latent factors with ``seed``, labelled by ``task``'s 16 bins."""
    rng = np.random.default_rng(seed)
    sizes = (len(SHAPES), len(SCALES), len(ORIENTATIONS), len(POSITIONS), len(POSITIONS))
    latents = np.stack([rng.integers(0, size, count) for size in sizes], axis=1)
    images = np.stack([draw(*row) for row in latents])[..., None]
    column = TASKS[task]
    labels = latents[:, column] * BINS // sizes[column]
    names = tuple(f"{task} {i}" for i in range(BINS))
    return ImageSet(images, labels, names)


def draw(shape: int, scale: int, orientation: int, x: int, y: int) -> np.ndarray:
    """One 64 x 64 uint8 sprite (0 or 255) from the indices of its latent factors."""
    from PIL import Image, ImageDraw

    outline = _outline(SHAPES[shape]) * SIZE_AT_SCALE_1 * SCALES[scale]
    angle = ORIENTATIONS[orientation]
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    span = CANVAS - 1 - 2 * MARGIN
    centre = np.array([MARGIN + POSITIONS[x] * span, MARGIN + POSITIONS[y] * span])
    points = outline @ rotation.T + centre
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points], fill=255)
    return np.asarray(canvas)


def _outline(shape: str) -> np.ndarray:
    """The shape's outline in unit coordinates (about [-1, 1]), as polygon vertices."""
    t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    if shape == "square":
        return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * 0.8
    if shape == "ellipse":
        return np.stack([np.cos(t), 0.5 * np.sin(t)], axis=1)
    heart = np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))])
    return heart.T / 17.0

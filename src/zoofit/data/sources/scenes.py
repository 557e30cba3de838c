"""CLEVR-like scenes, generated: ``scenes:count`` (how many objects) or ``scenes:distance`` (how near the nearest).

After VTAB's CLEVR tasks (Johnson et al., 2017; VTAB's ``clevr/count_all`` and ``clevr/closest_object_distance``),
drawn flat instead of rendered: 3 to 10 objects (circle, square or triangle, in one of CLEVR's 8 colours) stand on
a ground plane seen in perspective on a 64 x 64 canvas, so that a nearer object stands lower and is larger; no
object overlaps another, so each is there to be counted. The labels: the number of objects (8 classes, ``3 objects``
to ``10 objects``, drawn uniformly), or the band of the nearest object's distance (6 classes, ``nearest in band 1``
the nearest to ``nearest in band 6`` the farthest), the bands cut where each holds a sixth of the scenes. The images
are drawn with a fixed seed (2,000 train, 2,000 test), the same on every machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData
from zoofit.data.sources.base import Source
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

if TYPE_CHECKING:
    from PIL.ImageDraw import ImageDraw

CANVAS = 64
HORIZON = 18  # the ground starts this far down the canvas
COLOURS = np.array(
    [[87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20], [129, 74, 25], [129, 38, 192], [41, 208, 208],
     [255, 238, 51]], dtype=np.uint8,
)  # fmt: skip  # CLEVR's gray, red, blue, green, brown, purple, cyan, yellow
SHAPES = ("circle", "square", "triangle")
OBJECTS = range(3, 11)
BANDS = 6
PLACEMENT_TRIES = 200  # draws of an object's place before the scene is drawn again
GAP = 2.5  # pixels at least between two objects' boxes, so that no two touch
COUNTS = {"train": 2000, "test": 2000}
#: Each task's class names.
TASKS = {
    "count": tuple(f"{n} objects" for n in OBJECTS),
    "distance": tuple(f"nearest in band {band}" for band in range(1, BANDS + 1)),
}


class Scenes(Source):
    """``scenes:count`` (3 to 10 objects) or ``scenes:distance`` (6 bands of the nearest object's distance)."""

    scheme = "scenes"
    form = "scenes:count|distance"
    help = "generated CLEVR-like scenes: the number of objects, or the nearest one's distance in 6 bands"
    bare = True  # so that ``scenes`` alone is told to name its task

    def check(self, location: str) -> None:
        if location not in TASKS:
            named = f"scenes:{location}" if location else "scenes"
            raise ZoofitError(f"data '{named}': the task must be one of {', '.join(TASKS)} (as in scenes:count)")

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        self.check(location)
        sets = {split: generate(count, location, seed=index) for index, (split, count) in enumerate(COUNTS.items())}
        return SourceData(f"scenes-{location}", sets["train"], None, sets["test"])


def generate(count: int, task: str = "count", *, seed: int = 0) -> ImageSet:
    """``count`` scenes drawn with ``seed``, labelled by ``task``: their object count, or their nearest band."""
    rng = np.random.default_rng(seed)
    objects = rng.integers(OBJECTS.start, OBJECTS.stop, count)
    scenes = [scene(int(n), rng) for n in objects]
    images = np.stack([image for image, _ in scenes])
    nearest = np.array([near for _, near in scenes])
    labels = objects - OBJECTS.start if task == "count" else np.searchsorted(-BAND_EDGES, -nearest)
    return ImageSet(images, labels, TASKS[task])


def _nearest_share_below(t: float) -> float:
    """The share of scenes whose nearest object's nearness is below ``t``: each of their 3 to 10 objects' is
    uniform in [0, 1]."""
    return float(np.mean([t**n for n in OBJECTS]))


def _band_edges() -> np.ndarray:
    """The nearness where each band begins, nearest first: a sixth of the scenes in each (by bisection)."""
    edges = []
    for k in range(BANDS - 1, 0, -1):
        low, high = 0.0, 1.0
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if _nearest_share_below(mid) < k / BANDS else (low, mid)
        edges.append(low)
    return np.array(edges)


#: The nearness (1 at the front, 0 at the horizon) of the edges between the bands, nearest first.
BAND_EDGES = _band_edges()


def scene(objects: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One 64 x 64 RGB scene of ``objects`` objects, and its nearest object's nearness (1: at the front)."""
    from PIL import Image, ImageDraw

    boxes = _placed(objects, rng)
    while boxes is None:
        boxes = _placed(objects, rng)
    canvas = Image.new("RGB", (CANVAS, CANVAS), (200, 205, 210))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, HORIZON, CANVAS, CANVAS), fill=(150, 150, 145))
    for _, x, y, radius in boxes:
        colour = tuple(int(c) for c in COLOURS[rng.integers(len(COLOURS))])
        _shape(draw, SHAPES[rng.integers(len(SHAPES))], x, y, radius, colour)
    return np.asarray(canvas), max(near for near, *_ in boxes)


def _placed(objects: int, rng: np.random.Generator) -> list[tuple[float, float, float, float]] | None:
    """``(nearness, x, y, half-extent)`` of ``objects`` objects, none overlapping; None where one finds no place
    (the scene is then drawn again)."""
    placed: list[tuple[float, float, float, float]] = []
    for _ in range(objects):
        for _ in range(PLACEMENT_TRIES):
            near = rng.random()
            radius = 2.5 + 5.0 * near
            x = radius + rng.random() * (CANVAS - 1 - 2 * radius)
            y = HORIZON + 4 + near * (CANVAS - HORIZON - 6 - radius) - radius  # its base: the nearer, the lower
            if all(abs(x - u) > radius + r + GAP or abs(y - v) > radius + r + GAP for _, u, v, r in placed):
                placed.append((near, x, y, radius))
                break
        else:
            return None
    return placed


def _shape(draw: ImageDraw, shape: str, x: float, y: float, r: float, colour: tuple[int, ...]) -> None:
    """Draw ``shape`` of half-extent ``r`` centred at (``x``, ``y``), outlined in black."""
    box, black = (x - r, y - r, x + r, y + r), (0, 0, 0)
    if shape == "circle":
        draw.ellipse(box, fill=colour, outline=black)
    elif shape == "square":
        draw.rectangle(box, fill=colour, outline=black)
    else:
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=colour, outline=black)

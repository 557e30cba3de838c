"""Function matching (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and consistent"): the
teacher and the student see the *same* aggressively augmented view of a batch at each step, and the student
learns the teacher's probabilities on it (KL divergence). The views are made here, from images of any size."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zoofit.device import to_input, upload
from zoofit.ensemble.module import MemberModule
from zoofit.finetune.trial import batch_indices
from zoofit.zoo import Preprocessing

#: The share of an image's area a view's crop covers, and the crop's aspect ratios (Inception-style crops, as
#: Beyer et al. use).
CROP_AREA = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def kl_divergence(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the student's ``logits`` from the ``teacher``'s probabilities, averaged over
    the batch: the loss of function matching."""
    return F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="batchmean")


def matched_view(
    images: Sequence[np.ndarray], size: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """One augmented view of ``images`` (``H x W x C`` uint8, each of any size, C = 1 or 3), for teacher and
    student alike: each image's random crop (a share :data:`CROP_AREA` of its area, an aspect ratio in
    :data:`CROP_RATIO`) resized to ``size x size`` and flipped at random, then mixed with another image of the
    batch (mixup, the share drawn uniformly). ``N x size x size x 3`` float pixels (0..255) on ``device``."""
    crops = torch.cat([_crop(image, size, generator, device) for image in images])
    flips = upload(torch.rand(len(crops), generator=generator) < 0.5, device)[:, None, None, None]
    crops = torch.where(flips, crops.flip(-1), crops)
    partners = upload(torch.randperm(len(crops), generator=generator), device)
    shares = upload(torch.rand(len(crops), generator=generator), device)[:, None, None, None]
    return (shares * crops + (1 - shares) * crops[partners]).permute(0, 2, 3, 1)


def _crop(image: np.ndarray, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random crop of ``image`` resized to ``1 x 3 x size x size`` (antialiased bilinear, 0..255)."""
    height, width = image.shape[:2]
    area = height * width * _uniform(*CROP_AREA, generator)
    ratio = math.exp(_uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator))
    rows = min(height, max(1, round(math.sqrt(area / ratio))))
    columns = min(width, max(1, round(math.sqrt(area * ratio))))
    top = int(torch.randint(0, height - rows + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - columns + 1, (1,), generator=generator))
    part = np.ascontiguousarray(image.reshape(height, width, -1)[top : top + rows, left : left + columns])
    pixels = upload(torch.from_numpy(part), device).permute(2, 0, 1)[None].float()
    pixels = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
    return F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 255)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))


@dataclass
class TeacherClock:
    """Seconds the teacher's forward passes took, summed over the steps (on a GPU, waited for)."""

    seconds: float = 0.0


def matched_batches(
    images: Sequence[np.ndarray],
    teacher: torch.nn.Module,
    batch_size: int,
    prep: Preprocessing,
    rng: np.random.Generator,
    generator: torch.Generator,
    device: torch.device,
    *,
    clock: TeacherClock,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of function matching: ``batch_size`` of ``images`` drawn in shuffled passes, one view of
    them (:func:`matched_view`, at the student's input size), the student's input for it (its resize, crop and
    normalisation, as its exported module applies them) and the ``teacher``'s probabilities for it, computed on
    the fly (the view differs at every step; their seconds go to ``clock``)."""
    student = MemberModule(torch.nn.Identity(), prep, "student").to(device)  # its preprocessing alone
    for indices in batch_indices(len(images), batch_size, rng):
        view = matched_view([images[i] for i in indices], prep.input_size, generator, device)
        start = time.perf_counter()
        with torch.no_grad():
            targets = teacher(view).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        clock.seconds += time.perf_counter() - start
        yield to_input(student.inputs(view)), targets

"""Batched, no-grad forward passes of a model over decoded images, with the model's preprocessing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from zoofit.device import autocast, to_input
from zoofit.progress import TaskHandle
from zoofit.zoo.spec import Preprocessing
from zoofit.zoo.transforms import prepare_batch

Images = np.ndarray | Sequence[np.ndarray]


def forward_batches(
    model: torch.nn.Module,
    images: Images,
    prep: Preprocessing,
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    *,
    device: torch.device,
    precision: str,
    batch_size: int,
    task: TaskHandle | None = None,
) -> torch.Tensor:
    """``forward(model, inputs)`` over ``images`` in batches (model already on ``device``, eval mode),
    concatenated on the CPU as float32. Outputs stay on ``device`` until the last batch, so a GPU is never
    made to wait for the host between batches."""
    outputs: list[torch.Tensor] = []
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            batch = images[first : first + batch_size]
            inputs = to_input(prepare_batch(batch, prep, device))
            with autocast(device, precision):
                outputs.append(forward(model, inputs).to(torch.float32, copy=True))  # not a view of the batch
            if task is not None:
                task.advance(len(batch))
    return torch.cat(outputs).cpu()


def pre_logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The representation right before the classifier, as timm defines it for every model."""
    return model.forward_head(model.forward_features(inputs), pre_logits=True).flatten(1)


def probabilities(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs).float().softmax(dim=1)

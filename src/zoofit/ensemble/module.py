"""The ensemble as one ``torch.nn.Module``: raw uint8 images in, probabilities out.

Each member resizes, crops and normalises the images as its trial was trained and evaluated
(:func:`~zoofit.zoo.transforms.resize_crop`, the same code as the batch transform), runs its network and a
softmax; the ensemble averages the members' probabilities with their weights. ``zoofit predict``, the
:class:`~zoofit.ensemble.EnsembleClassifier`, the robustness evaluation and ``zoofit export`` all run this module.
Nothing in it fixes the images' size, so :mod:`zoofit.export` captures it for any height and width; so it is for
any network a ``MemberModule`` wraps (one member alone is an ensemble of one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoofit.device import autocast, to_input
from zoofit.zoo.spec import Preprocessing
from zoofit.zoo.transforms import channel_scales, normalise, resize_crop


class MemberModule(nn.Module):
    """One member: ``N x H x W x C`` uint8 images (C = 1 or 3, any one size) -> ``N x classes`` probabilities.

    ``precision`` ``"bf16"`` runs the network under bf16 autocast (the resize and the softmax stay in float32).
    """

    def __init__(self, network: nn.Module, preprocessing: Preprocessing, name: str, precision: str = "fp32") -> None:
        super().__init__()
        self.network = network
        self.preprocessing = preprocessing
        self.name = name
        self.precision = precision
        mean, std = channel_scales(preprocessing.mean, preprocessing.std).unbind(0)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self.inputs(images)
        with autocast(inputs.device, self.precision):
            logits = self.network(inputs)
        return logits.float().softmax(dim=1)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's pre-logit features (the classifier's input, as timm defines it) and probabilities, from
        one pass."""
        inputs = self.inputs(images)
        with autocast(inputs.device, self.precision):
            pooled = self.network.forward_features(inputs)
            features = self.network.forward_head(pooled, pre_logits=True).flatten(1)
            logits = self.network.forward_head(pooled)
        return features.float(), logits.float().softmax(dim=1)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input for ``N x H x W x C`` images (uint8, or float 0..255): resized, cropped and
        normalised as the member was trained."""
        pixels = resize_crop(images.permute(0, 3, 1, 2), self.preprocessing)
        return to_input(normalise(pixels, self.mean, self.std))


class EnsembleModule(nn.Module):
    """The weighted average of its ``members``' probabilities (``weights`` need not be normalised)."""

    def __init__(self, members: Sequence[MemberModule], weights: Sequence[float]) -> None:
        super().__init__()
        if len(members) != len(weights) or not members or sum(weights) <= 0:
            raise ValueError("an ensemble needs members with weights of a positive sum")
        self.members = nn.ModuleList(members)
        self.shares = tuple(float(w) / float(sum(weights)) for w in weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        terms = [share * member(images) for share, member in zip(self.shares, self.members, strict=True) if share]
        return torch.stack(terms).sum(dim=0)

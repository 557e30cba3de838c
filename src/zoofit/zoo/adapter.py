"""One network that is not timm's, given the API of a timm model that the rest of zoofit uses: ``forward_features``
(the pooled representation its classifier reads), ``forward_head(features, pre_logits=...)``, ``reset_classifier``,
``get_classifier``, ``num_features``, ``num_classes`` and a ``pretrained_cfg`` holding its preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from zoofit.zoo.spec import Preprocessing


class TimmLike(nn.Module):
    """``body`` (images -> pooled features, any shape that flattens to ``num_features``) and ``head`` (features ->
    logits; ``nn.Identity`` where there is no classifier). The state dict is the body's under ``body.`` and the
    head's under ``head.``."""

    def __init__(
        self,
        body: nn.Module,
        head: nn.Module,
        num_features: int,
        preprocessing: Preprocessing,
        architecture: str,
        *,
        features: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        fixed_input_size: bool = False,
    ) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.num_features = num_features
        self._features = features or (lambda body, images: body(images))
        self.pretrained_cfg: dict[str, Any] = {
            "architecture": architecture,
            "input_size": (3, preprocessing.input_size, preprocessing.input_size),
            "mean": tuple(preprocessing.mean),
            "std": tuple(preprocessing.std),
            "interpolation": preprocessing.interpolation,
            "crop_pct": preprocessing.crop_pct,
            "fixed_input_size": fixed_input_size,
            "classifier": "head",
        }

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    @property
    def num_classes(self) -> int:
        linear = _last_linear(self.head)
        return 0 if linear is None else linear.out_features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self._features(self.body, images).flatten(1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new linear classifier for ``num_classes`` (none for 0), on the device and in the dtype of the body."""
        reference = next(self.body.parameters())
        self.head = (
            nn.Linear(self.num_features, num_classes, device=reference.device, dtype=reference.dtype)
            if num_classes
            else nn.Identity()
        )


def _last_linear(module: nn.Module) -> nn.Linear | None:
    linears = [each for each in module.modules() if isinstance(each, nn.Linear)]
    return linears[-1] if linears else None


def classifier_inputs(head: nn.Module) -> int | None:
    """The number of features ``head`` reads, where its first linear layer says it."""
    linears = [each for each in head.modules() if isinstance(each, nn.Linear)]
    return linears[0].in_features if linears else None


def features_of(body: nn.Module, input_size: int, features: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> int:
    """The width of ``features(body, images)``, counted on the meta device where the body is there, else on its
    own device (one blank image)."""
    device = next(body.parameters()).device
    with torch.no_grad():
        return int(features(body, torch.zeros(1, 3, input_size, input_size, device=device)).flatten(1).shape[1])

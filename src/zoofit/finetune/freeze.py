"""Keeping a model's early layers as pre-trained: cheaper steps, since nothing flows back through them."""

from __future__ import annotations

import torch


def early_layers(model: torch.nn.Module, max_stride: int) -> list[torch.nn.Module]:
    """The modules that lie wholly before the end of the last of timm's feature stages whose output stride is
    at most ``max_stride``: the stem and the first stages, with their submodules, but not a container that
    also holds later stages. Empty for a model without ``feature_info``, or none that shallow (a ViT's first
    stage is at stride 16)."""
    info = getattr(model, "feature_info", None) or []
    stages = [stage.get("module") for stage in info if stage.get("reduction", max_stride + 1) <= max_stride]
    named = list(model.named_modules())[1:]  # pre-order: a module's submodules follow it
    names = [name for name, _ in named]
    if not stages or stages[-1] not in names:
        return []
    end = names.index(stages[-1]) + 1
    while end < len(names) and names[end].startswith(stages[-1] + "."):
        end += 1
    early = {id(module) for _, module in named[:end]}
    return [module for _, module in named[:end] if all(id(sub) in early for sub in module.modules())]


def freeze_early_layers(model: torch.nn.Module, max_stride: int) -> list[torch.nn.Module]:
    """Freeze :func:`early_layers` of ``model`` (in training mode): their weights, and their normalisation
    statistics (they run in eval mode); return them."""
    early = early_layers(model, max_stride)
    for module in early:
        module.training = False  # each submodule is in ``early`` too
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
    return early

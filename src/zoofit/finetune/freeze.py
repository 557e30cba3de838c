"""Keeping a model's early layers as pre-trained: cheaper steps, since nothing flows back through them."""

from __future__ import annotations

import itertools
import logging

import torch

from zoofit.zoo.inference import evaluating

log = logging.getLogger("zoofit")


def early_layers(model: torch.nn.Module, max_stride: int, input_size: int) -> list[torch.nn.Module]:
    """The modules whose forward pass ends no later than that of the last of timm's feature stages with an
    output stride of at most ``max_stride``: the stem and the first stages, not a container that also holds
    later stages. The order is that of one pass over a blank image of ``input_size`` px on the CPU, not that
    of registration, which some models (CoaT) do not keep. Empty for a model without such a stage (a ViT's
    first is at stride 16) or whose ``feature_info`` names a module it lacks (logged)."""
    info = getattr(model, "feature_info", None) or []
    stages = [stage.get("module") for stage in info if stage.get("reduction", max_stride + 1) <= max_stride]
    modules = dict(model.named_modules())
    if not stages:
        return []
    if stages[-1] not in modules:
        log.info("timm's feature_info names a stage '%s' that the model lacks; nothing frozen", stages[-1])
        return []
    finished = _finishing_order(model, input_size)
    end = finished.get(id(modules[stages[-1]]))
    if end is None:  # the stage never ran
        return []
    return [module for module in model.modules() if finished.get(id(module), end + 1) <= end]


def freeze_early_layers(model: torch.nn.Module, max_stride: int, input_size: int) -> list[torch.nn.Module]:
    """Freeze :func:`early_layers` of ``model`` (on the CPU, in training mode): their weights, and their
    normalisation statistics (they run in eval mode); return them. Parameters that the model holds itself,
    such as a ViT's position embedding, are not frozen."""
    early = early_layers(model, max_stride, input_size) if max_stride else []
    for module in early:
        module.training = False  # not recursive: a submodule that runs is in ``early`` too
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
    return early


def _finishing_order(model: torch.nn.Module, input_size: int) -> dict[int, int]:
    """``id(module)`` -> when its forward pass (the last, if several) returned, in one eval-mode pass of
    ``model`` over a blank image; the training flags are put back afterwards."""
    finished: dict[int, int] = {}
    counter = itertools.count()

    def note(module: torch.nn.Module, inputs: object, output: object) -> None:
        finished[id(module)] = next(counter)

    hooks = [module.register_forward_hook(note) for module in model.modules()]
    try:
        with torch.no_grad(), evaluating(model):
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
    return finished

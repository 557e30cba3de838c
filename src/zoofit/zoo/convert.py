"""Converting foreign checkpoints into timm state dicts.

Both converters rely on the same observed fact: the checkpoint holds exactly the timm model's tensors,
in the same order and shapes, under other names. They assign values by position and check every shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.errors import ModelError

_SKIPPED = "num_batches_tracked"
# Per-layer weight order of a Keras layer, which equals the order of the matching torch module's tensors.
_KERAS_WEIGHT_ORDER = (
    "kernel",
    "depthwise_kernel",
    "gamma",
    "beta",
    "moving_mean",
    "moving_variance",
    "bias",
)


def assign_by_position(
    model_state: Mapping[str, torch.Tensor], values: Sequence[torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """A state dict with ``model_state``'s names and ``values`` in order (BatchNorm counters left out of
    both sides and reset); raises :class:`ModelError` unless counts and every shape agree."""
    names = [name for name in model_state if not name.endswith(_SKIPPED)]
    if len(names) != len(values):
        raise ModelError(f"{source} holds {len(values)} tensors but the timm model has {len(names)}")
    converted: dict[str, torch.Tensor] = {}
    for name, value in zip(names, values, strict=True):
        if tuple(value.shape) != tuple(model_state[name].shape):
            raise ModelError(
                f"{source}: tensor for '{name}' has shape {tuple(value.shape)}, the model needs "
                f"{tuple(model_state[name].shape)}"
            )
        converted[name] = value.to(model_state[name].dtype).contiguous()
    for name in model_state:
        if name.endswith(_SKIPPED):
            converted[name] = torch.zeros_like(model_state[name])
    return converted


def torch_checkpoint_tensors(path: Path) -> list[torch.Tensor]:
    """The tensors of a ``.pth`` state dict in stored order (loaded with ``weights_only=True``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = unwrap_state_dict(state)
    return [tensor for name, tensor in state.items() if not name.endswith(_SKIPPED)]


def unwrap_state_dict(state: object) -> dict[str, torch.Tensor]:
    """The state dict inside common checkpoint wrappers (``{"state_dict": ...}``, ``{"model": ...}``)."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError("the checkpoint is not a state dict of tensors")
    return dict(state)


def keras_backbone_tensors(path: Path) -> list[torch.Tensor]:
    """The tensors of a Keras 3 ``.h5`` model's backbone, in layer order, in torch layout.

    The backbone is the nested functional model where there is one (a Keras application wrapped with a
    new head), else the model itself. Layers are walked in ``model_config`` order; conv kernels go
    HWIO -> OIHW, depthwise kernels HWC1 -> C1HW, dense kernels IO -> OI.
    """
    import h5py  # only Keras weights need it

    with h5py.File(path, "r") as h5:
        config = json.loads(h5.attrs["model_config"])
        layers = config["config"]["layers"]
        nested = [layer for layer in layers if layer["class_name"] in ("Functional", "Model", "Sequential")]
        group = h5["model_weights"]
        if len(nested) == 1:
            layers = nested[0]["config"]["layers"]
            group = group[nested[0]["config"]["name"]]
        tensors: list[torch.Tensor] = []
        for layer in layers:
            name = layer["config"]["name"]
            if name not in group:
                continue
            weights = _keras_layer_weights(group[name])
            for weight in _KERAS_WEIGHT_ORDER:
                if weight in weights:
                    tensors.append(_keras_to_torch(np.asarray(weights[weight]), layer["class_name"]))
    return tensors


def _keras_layer_weights(group: Any) -> dict[str, Any]:
    """A Keras layer's weights by name: Keras 3 keeps them in the layer's group, Keras 2 one group deeper (under
    the layer's name again) as ``kernel:0``."""
    import h5py

    weights = {name: value for name, value in group.items() if isinstance(value, h5py.Dataset)}
    nested = [value for value in group.values() if isinstance(value, h5py.Group)]
    if not weights and len(nested) == 1:
        return _keras_layer_weights(nested[0])
    return {name.removesuffix(":0"): value for name, value in weights.items()}


def _keras_to_torch(value: np.ndarray, layer_class: str) -> torch.Tensor:
    if value.ndim == 4:  # conv kernels: HWIO -> OIHW; depthwise HWC1 -> C1HW
        value = value.transpose(2, 3, 0, 1) if layer_class == "DepthwiseConv2D" else value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:  # dense: IO -> OI
        value = value.T
    return torch.from_numpy(np.ascontiguousarray(value))

"""The zoo: model specs, zoo files and presets, and loaders that turn any spec into a timm model."""

from zoofit.zoo.load import LoadedModel, load_model
from zoofit.zoo.spec import ModelSpec, Preprocessing
from zoofit.zoo.transforms import prepare_batch
from zoofit.zoo.zoofile import Zoo, filtered, load_zoo, preset_names

__all__ = [
    "LoadedModel",
    "ModelSpec",
    "Preprocessing",
    "Zoo",
    "filtered",
    "load_model",
    "load_zoo",
    "prepare_batch",
    "preset_names",
]

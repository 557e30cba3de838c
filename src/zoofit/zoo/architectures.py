"""Architectures that are not timm's, named ``<builder>:<location>`` in a spec's ``arch``: a Hugging Face
``transformers`` image model (``transformers:ORG/NAME[@REVISION]`` or a local folder) or any PyTorch network that
an importable factory builds (``module:pkg.mod:factory``). Each becomes a :class:`~zoofit.zoo.adapter.TimmLike`,
so ranking, fine-tuning, ensembles and export use it as they use a timm model. One entry of :data:`BUILDERS` each.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoofit.errors import ModelError, ZoofitError, first_line
from zoofit.zoo.adapter import TimmLike, classifier_inputs, features_of
from zoofit.zoo.spec import Preprocessing

if TYPE_CHECKING:
    from zoofit.zoo.spec import ModelSpec

#: The attribute names under which transformers' image classifiers keep their classifier, tried in order.
_CLASSIFIERS = ("classifier", "head", "fc")
#: PIL's resampling codes, as transformers' image-processor configs write them, and zoofit's interpolation.
_RESAMPLING = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class Builder:
    """Builds the networks of ``arch: <name>:<location>``."""

    name: str
    form: str

    def check(self, spec: ModelSpec, location: str) -> None:
        """A one-line :class:`ZoofitError` where ``spec`` cannot use this architecture."""

    def build(self, spec: ModelSpec, location: str, num_classes: int | None) -> TimmLike:
        """The network with random (or its factory's) weights and ``num_classes`` classes (``None``: its own)."""
        raise NotImplementedError


#: Builders by the prefix of ``arch``.
BUILDERS: dict[str, Builder] = {}


def _registered(builder: type[Builder]) -> type[Builder]:
    BUILDERS[builder.name] = builder()
    return builder


def builder_of(arch: str) -> tuple[Builder, str] | None:
    """The builder of ``arch`` and its location; ``None`` for a timm architecture."""
    name, colon, location = arch.partition(":")
    return (BUILDERS[name], location) if colon and name in BUILDERS else None


def is_architecture(arch: str) -> bool:
    """Whether ``arch`` names a timm architecture or a builder's."""
    import timm

    return builder_of(arch) is not None or timm.is_model(arch)


def with_classes(model: TimmLike, num_classes: int | None) -> TimmLike:
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


# --- transformers -------------------------------------------------------------------------------------------------


def split_revision(location: str) -> tuple[str, str | None]:
    """``ORG/NAME@REVISION`` -> (``ORG/NAME``, ``REVISION``); a local folder keeps its name whole."""
    if Path(location).expanduser().is_dir():
        return str(Path(location).expanduser()), None
    repo, _, revision = location.partition("@")
    return repo, revision or None


def transformers_config(location: str, **overrides: Any) -> Any:
    """The model config of a hub repo or a local folder (the Hugging Face cache; offline variables apply)."""
    from transformers import AutoConfig

    repo, revision = split_revision(location)
    return AutoConfig.from_pretrained(repo, revision=revision, **overrides)


def image_processor_preprocessing(location: str) -> Preprocessing:
    """The eval preprocessing that the model's own image-processor config (``preprocessor_config.json``) gives:
    its crop (or resize) size, crop_pct (the crop over the resized shorter side), mean/std, resampling."""
    from transformers.image_processing_utils import ImageProcessingMixin

    repo, revision = split_revision(location)
    config, _ = ImageProcessingMixin.get_image_processor_dict(repo, revision=revision)
    size = _side(config.get("size"))
    crop = _side(config.get("crop_size")) if config.get("do_center_crop") else None
    input_size = crop or size or 224
    if config.get("crop_pct") and not crop:  # ConvNeXt: resize to size / crop_pct, crop size
        crop_pct = float(config["crop_pct"]) if input_size < 384 else 1.0
    else:
        crop_pct = min(1.0, input_size / size) if crop and size else 1.0
    normalised = config.get("do_normalize", True)
    mean = tuple(config.get("image_mean") or (0.5,) * 3) if normalised else (0.0,) * 3
    std = tuple(config.get("image_std") or (0.5,) * 3) if normalised else (1.0,) * 3
    interpolation = _RESAMPLING.get(config.get("resample", 3), "bicubic")
    return Preprocessing(int(input_size), mean, std, interpolation, crop_pct)  # type: ignore[arg-type]


def _side(size: Any) -> int | None:
    """The side an image-processor size names: ``shortest_edge``, ``height``, or a plain number."""
    if isinstance(size, int | float):
        return int(size)
    if isinstance(size, dict):
        side = size.get("shortest_edge") or size.get("height")
        return int(side) if side else None
    return None


def transformers_network(location: str, config: Any, *, pretrained: bool) -> nn.Module:
    """The model of ``config`` as an image classifier where the checkpoint is one, else as a backbone; with the
    checkpoint's weights (``pretrained``) or random ones."""
    from transformers import AutoModel, AutoModelForImageClassification

    classifier = any(name.endswith("ForImageClassification") for name in config.architectures or ())
    auto = AutoModelForImageClassification if classifier else AutoModel
    if not pretrained:
        return auto.from_config(config)
    repo, revision = split_revision(location)
    return auto.from_pretrained(repo, revision=revision, config=config)


def _classifier_logits(body: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return body(pixel_values=images).logits


def _backbone_pooled(body: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A backbone's pooled output where it has one, else its first token (a ViT's CLS) or its spatial mean."""
    output = body(pixel_values=images)
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled
    hidden = output.last_hidden_state
    return hidden[:, 0] if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


def adapted_transformers(network: nn.Module, location: str, preprocessing: Preprocessing) -> TimmLike:
    """``network`` (a transformers image classifier or backbone) as a :class:`TimmLike`: its classifier becomes
    the head and is replaced in the network by an identity, so the network's output is what the classifier reads
    (a ViT's CLS token, DINOv2's CLS and mean patch token, ConvNeXt's pooled map)."""
    config = network.config
    name = next((name for name in _CLASSIFIERS if isinstance(getattr(network, name, None), nn.Module)), None)
    if name is not None and "ForImageClassification" in type(network).__name__:
        head = getattr(network, name)
        setattr(network, name, nn.Identity())
        features = _classifier_logits
    else:
        head, features = nn.Identity(), _backbone_pooled
    width = classifier_inputs(head) or _hidden_width(config)
    if width is None:
        width = features_of(network, preprocessing.input_size, features)
    fixed = getattr(config, "image_size", None) is not None and "vit" in config.model_type
    return TimmLike(
        network, head, width, preprocessing, f"transformers:{location}", features=features, fixed_input_size=fixed
    )


def _hidden_width(config: Any) -> int | None:
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    if getattr(config, "model_type", "") in ("swin", "swinv2"):
        return int(config.embed_dim * 2 ** (len(config.depths) - 1))
    size = getattr(config, "hidden_size", None)
    return int(size) if size else None


def load_transformers(location: str, spec_id: str, *, pretrained: bool, **overrides: Any) -> TimmLike:
    """The transformers model at ``location`` as a :class:`TimmLike` (a :class:`ModelError` in one line where its
    config, image-processor config or weights cannot be had)."""
    if importlib.util.find_spec("transformers") is None:
        raise ZoofitError(f"model '{spec_id}': transformers: models need transformers; pip install 'zoofit[hub]'")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # zoofit reports its own progress
    try:
        config = transformers_config(location, **overrides)
        preprocessing = image_processor_preprocessing(location)
        network = transformers_network(location, config, pretrained=pretrained)
    except Exception as error:  # noqa: BLE001 - the hub and transformers raise many types; each becomes one line
        raise ModelError(
            f"model '{spec_id}': cannot load transformers model '{location}' ({first_line(error)}); it must be a "
            "local folder or in the Hugging Face cache when offline"
        ) from error
    return adapted_transformers(network, location, preprocessing)


def model_card_fields(location: str) -> dict[str, str]:
    """``license`` and ``upstream`` (the ``datasets`` it was trained on) from the model card metadata of a hub repo
    (through the Hugging Face cache) or a local folder's ``README.md``; nothing where there is no card."""
    from huggingface_hub import ModelCard

    repo, _ = split_revision(location)
    try:
        card = ModelCard.load(Path(repo) / "README.md" if Path(repo).is_dir() else repo)
    except Exception:  # noqa: BLE001 - a card is optional: no card, no fields
        return {}
    data = card.data.to_dict()
    datasets = data.get("datasets") or []
    license = data.get("license") or ""
    return {
        "license": license if isinstance(license, str) else ", ".join(license),
        "upstream": datasets if isinstance(datasets, str) else ", ".join(map(str, datasets)),
    }


@_registered
class TransformersBuilder(Builder):
    """``transformers:ORG/NAME[@REVISION]`` or ``transformers:<folder>``: built from its config (random weights);
    ``arch_kwargs`` override config values."""

    name, form = "transformers", "transformers:<org/name[@revision] or folder>"

    def build(self, spec: ModelSpec, location: str, num_classes: int | None) -> TimmLike:
        return with_classes(load_transformers(location, spec.id, pretrained=False, **spec.arch_kwargs), num_classes)


# --- any PyTorch module -------------------------------------------------------------------------------------------


def factory_of(location: str, spec_id: str) -> Callable[..., nn.Module]:
    """The factory ``pkg.mod:name`` names; a one-line :class:`ZoofitError` where it cannot be imported."""
    module_name, colon, attribute = location.partition(":")
    if not (colon and module_name and attribute):
        raise ZoofitError(f"model '{spec_id}': 'module:{location}' must have the form module:<pkg.module>:<factory>")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import error of the user's code is one line
        raise ZoofitError(
            f"model '{spec_id}': cannot import '{module_name}' ({first_line(error)}); install it or put it on "
            "PYTHONPATH"
        ) from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ZoofitError(f"model '{spec_id}': '{module_name}' has no factory '{attribute}'")
    return factory


def head_of(spec: ModelSpec) -> str | None:
    """The name of the classifier ``arch_kwargs['head']`` names (``None``: the network returns features)."""
    if "head" not in spec.arch_kwargs:
        raise ZoofitError(
            f"model '{spec.id}': a module: model needs arch_kwargs 'head', the name of its classifier to replace "
            "(null where the network returns features)"
        )
    head = spec.arch_kwargs["head"]
    if head is not None and not isinstance(head, str):
        raise ZoofitError(f"model '{spec.id}': arch_kwargs 'head' must be a module name or null, not {head!r}")
    return head


def factory_network(spec: ModelSpec, location: str) -> nn.Module:
    """The factory's network, called with ``arch_kwargs`` less ``head``."""
    kwargs = {key: value for key, value in spec.arch_kwargs.items() if key != "head"}
    network = factory_of(location, spec.id)(**kwargs)
    if not isinstance(network, nn.Module):
        raise ModelError(
            f"model '{spec.id}': factory 'module:{location}' returned {type(network).__name__}, no nn.Module"
        )
    return network


def adapted_module(network: nn.Module, spec: ModelSpec, location: str) -> TimmLike:
    """``network`` with its classifier ``arch_kwargs['head']`` (a dotted name) taken out as the head."""
    head_name = head_of(spec)
    if spec.preprocessing is None:
        raise ZoofitError(f"model '{spec.id}': a module: model needs 'preprocessing' (input size, mean, std)")
    head: nn.Module = nn.Identity()
    if head_name is not None:
        try:
            head = network.get_submodule(head_name)
        except AttributeError as error:
            children = ", ".join(name for name, _ in network.named_children())
            raise ModelError(
                f"model '{spec.id}': the network of 'module:{location}' has no module '{head_name}' (arch_kwargs "
                f"'head'); its children are {children}"
            ) from error
        parent, _, leaf = head_name.rpartition(".")
        setattr(network.get_submodule(parent) if parent else network, leaf, nn.Identity())
    width = classifier_inputs(head) or features_of(network, spec.preprocessing.input_size, lambda body, x: body(x))
    # its input size is the one its preprocessing names (a network ending in a flattened map takes no other)
    return TimmLike(network, head, width, spec.preprocessing, f"module:{location}", fixed_input_size=True)


@_registered
class ModuleBuilder(Builder):
    """``module:pkg.mod:factory``: the factory's network (``arch_kwargs`` less ``head`` are its arguments), its
    classifier ``arch_kwargs['head']`` replaced by zoofit's; ``preprocessing`` is required."""

    name, form = "module", "module:<pkg.module>:<factory>"

    def check(self, spec: ModelSpec, location: str) -> None:
        factory_of(location, spec.id)
        head_of(spec)
        if spec.preprocessing is None:
            raise ZoofitError(f"model '{spec.id}': a module: model needs 'preprocessing' (input size, mean, std)")

    def build(self, spec: ModelSpec, location: str, num_classes: int | None) -> TimmLike:
        return with_classes(adapted_module(factory_network(spec, location), spec, location), num_classes)

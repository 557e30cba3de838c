"""Weight schemes: where a spec's pre-trained weights come from, named by the prefix of ``ModelSpec.weights``.

Each scheme is one entry of :data:`SCHEMES` (kept in :mod:`zoofit.zoo.spec`, which looks a spec's scheme up): it checks a spec's fields, names what of a spec enters the content
key of everything cached about the model, and loads the model. Adding a scheme (``hf-hub:<repo>``, say) is one
new :class:`WeightScheme` subclass in this module, registered with ``@_registered``; nothing else branches on a
scheme's name.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timm
import torch

from zoofit.errors import ModelError, ZoofitError, first_line
from zoofit.zoo.architectures import (
    BUILDERS,
    adapted_module,
    builder_of,
    factory_network,
    load_transformers,
    model_card_fields,
    split_revision,
    with_classes,
)
from zoofit.zoo.hub import hub_fields, is_pattern, pretrained_cfg, pretrained_matching
from zoofit.zoo.load import assigned, converted_weights, create_model, load_state_file, load_strictly, read_state
from zoofit.zoo.spec import SCHEMES

if TYPE_CHECKING:
    from zoofit.store import Cache
    from zoofit.zoo.spec import ModelSpec

#: Fields of a spec that describe the model but change none of its outputs: they stay out of its identity.
_DESCRIPTIVE = ("id", "upstream", "license", "gflops", "params")

_process_generator = threading.Lock()  # held while random weights are drawn from the process-wide generator


class WeightScheme:
    """One source of pre-trained weights: ``ModelSpec.weights`` is ``<name>:<location>``."""

    name: str
    #: How weights of this scheme are written (for messages), and what they are, in one line.
    form: str
    help: str

    def check(self, spec: ModelSpec) -> None:
        """Raise :class:`ZoofitError` (one line) where ``spec``'s fields do not fit this scheme."""
        if not spec.location:
            raise ZoofitError(f"model '{spec.id}': weights '{spec.weights}' must have the form {self.form}")

    def identity(self, spec: ModelSpec) -> dict[str, Any]:
        """What of ``spec`` determines the model's outputs: the key of everything cached about it."""
        identity = asdict(spec)
        for descriptive in _DESCRIPTIVE:
            identity.pop(descriptive)
        return identity

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        """``spec``'s timm model on ``device`` with its weights loaded strictly; a :class:`ModelError` (one line)
        where the weights cannot be had or do not fit."""
        raise NotImplementedError

    def prefetch(self, spec: ModelSpec) -> None:
        """Fetch what :meth:`load` will read (a download), so that a later load finds it at hand; errors may
        be raised (the caller ignores them: the load reports them)."""

    def arch_of(self, location: str) -> str | None:
        """The timm architecture that weights at ``location`` name, where they name one (then a zoo file may
        leave out ``arch``)."""
        return None

    def expand(self, location: str) -> list[str]:
        """The locations that ``location`` stands for in a zoo (a pattern may stand for many)."""
        return [location]

    def described(self, location: str) -> dict[str, Any]:
        """Descriptive fields of a spec (``license``, ``upstream``) that the weights at ``location`` tell."""
        return {}

    def resolve(self, location: str, base: Path) -> str:
        """``location`` as a zoo file in the folder ``base`` writes it, made independent of the working folder."""
        return location

    def resolved(self, spec: ModelSpec, base: Path) -> ModelSpec:
        """``spec`` as a zoo file in the folder ``base`` writes it, its paths made independent of the working
        folder (its location through :meth:`resolve`)."""
        return replace(spec, weights=f"{self.name}:{self.resolve(spec.location, base)}")

    def check_architecture(self, spec: ModelSpec) -> None:
        """A one-line error where ``spec.arch`` names an architecture that is not timm's (a ``transformers:`` or
        ``module:`` one) and its builder cannot build it as ``spec`` says."""
        built = builder_of(spec.arch)
        if built is not None:
            built[0].check(spec, built[1])

    def _check_arch(self, spec: ModelSpec) -> None:
        """A one-line error where ``spec.arch`` is not the architecture that its weights name."""
        arch = self.arch_of(spec.location)
        if spec.arch != arch:
            raise ZoofitError(
                f"model '{spec.id}': arch '{spec.arch}' is not '{arch}', the architecture of its weights "
                f"'{spec.weights}'; leave 'arch' out"
            )


def _registered(scheme: type[WeightScheme]) -> type[WeightScheme]:
    """Add an instance of ``scheme`` to :data:`SCHEMES` under its name."""
    SCHEMES.add(scheme.name, scheme())
    return scheme


def prefetch_weights(spec: ModelSpec) -> None:
    """Fetch ahead what loading ``spec`` will read (its scheme's :meth:`WeightScheme.prefetch`)."""
    weight_scheme(spec).prefetch(spec)


def weight_scheme(spec: ModelSpec) -> WeightScheme:
    """The registry's entry for ``spec``'s weights; an unknown scheme is a :class:`ModelError` (one line)."""
    return spec.weight_scheme


@_registered
class TimmWeights(WeightScheme):
    """``timm:<name>``: weights through timm and the Hugging Face hub (its cache, ``HF_HUB_OFFLINE`` and token
    apply); timm builds the model from its pretrained config and loads the weights."""

    name, form = "timm", "timm:<name>"
    help = "timm's pretrained weights through the Hugging Face hub"

    def check(self, spec: ModelSpec) -> None:
        super().check(spec)
        arch = self.arch_of(spec.location)
        if not timm.is_model(arch):
            raise ZoofitError(f"model '{spec.id}': unknown timm model '{spec.location}' (see timm.list_pretrained())")
        self._check_arch(spec)

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        """Where the hub's checkpoint fits the model exactly (timm's own checkpoints do), the model is built on
        the meta device and takes the checkpoint's tensors; else timm builds it and loads the weights through
        its checkpoint filter (on the CPU: the filters expect CPU tensors)."""
        kwargs = dict(spec.arch_kwargs)
        if spec.num_classes is not None:
            kwargs["num_classes"] = spec.num_classes
        try:
            state = self._hub_state(spec)
            model = state is not None and assigned(lambda: timm.create_model(spec.location, **kwargs), state)
            model = model or timm.create_model(spec.location, pretrained=True, **kwargs)
        except Exception as error:  # noqa: BLE001 - the hub raises many types; each becomes one line
            raise ModelError(
                f"model '{spec.id}': cannot load timm weights '{spec.location}' ({first_line(error)}); they must "
                "be in the Hugging Face cache when offline"
            ) from error
        return model.to(device)

    def arch_of(self, location: str) -> str:
        return timm.models.split_model_name_tag(location)[0]

    def prefetch(self, spec: ModelSpec) -> None:
        """Download the hub checkpoint (safetensors, timm's first choice) into the Hugging Face cache."""
        from huggingface_hub import hf_hub_download

        cfg = self._hub_cfg(spec)
        if cfg is not None:
            repo, _, revision = cfg.hf_hub_id.partition("@")
            hf_hub_download(repo, cfg.hf_hub_filename or "model.safetensors", revision=revision or None)

    def _hub_state(self, spec: ModelSpec) -> dict[str, torch.Tensor] | None:
        """The state dict of the hub checkpoint that timm's pretrained config names for ``spec``'s tag."""
        cfg = self._hub_cfg(spec)
        if cfg is None:
            return None
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ()
        return timm.models.load_state_dict_from_hf(cfg.hf_hub_id, *names)

    @staticmethod
    def _hub_cfg(spec: ModelSpec) -> Any:
        """timm's pretrained config of ``spec``'s tag where it names a plain hub checkpoint (``None`` where it
        names another source, a custom loader, or the spec overrides the config)."""
        cfg = pretrained_cfg(spec.location)
        overridden = {"pretrained_cfg", "pretrained_cfg_overlay"} & spec.arch_kwargs.keys()
        if cfg is None or overridden or not cfg.hf_hub_id or cfg.custom_load or cfg.state_dict or cfg.file:
            return None
        return cfg

    def expand(self, location: str) -> list[str]:
        return pretrained_matching(location) if is_pattern(location) else [location]

    def described(self, location: str) -> dict[str, Any]:
        return hub_fields(location)


def _file_state(path: Path) -> tuple[int, int] | None:
    """A file's size and modification time (``None`` where it is missing): a rewritten file is a new model."""
    stat = path.stat() if path.exists() else None
    return (stat.st_size, stat.st_mtime_ns) if stat else None


@_registered
class FileWeights(WeightScheme):
    """``file:<path>``: a safetensors or ``.pth`` state dict for ``arch``, loaded strictly. (Not timm's
    ``pretrained_cfg_overlay=dict(file=...)``: timm adapts a checkpoint that does not fit, dropping a classifier
    of another size and running the architecture's checkpoint filter, where a file here must fit as it is.)"""

    name, form = "file", "file:<path>"
    help = "a checkpoint file (safetensors or a torch state dict)"

    def identity(self, spec: ModelSpec) -> dict[str, Any]:
        """The spec's fields and the file's size and modification time, so a rewritten file is a new model."""
        return {**super().identity(spec), "file_state": _file_state(Path(spec.location))}

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        return load_state_file(spec, Path(spec.location), device)

    def resolve(self, location: str, base: Path) -> str:
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())


@_registered
class PypiWeights(WeightScheme):
    """``pypi:<package>==<version>``: the file ``member`` of that wheel, checked against ``sha256``, converted
    with ``convert`` once into the cache and loaded strictly from there."""

    name, form = "pypi", "pypi:<package>==<version>"
    help = "a checkpoint shipped in a wheel on PyPI, converted once"

    def check(self, spec: ModelSpec) -> None:
        if not (spec.member and spec.sha256 and "==" in spec.location):
            raise ZoofitError(
                f"model '{spec.id}': pypi weights need 'pypi:<package>==<version>', 'member' and 'sha256'"
            )

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        return load_state_file(spec, converted_weights(spec, cache), device)  # converted on the CPU


@_registered
class RandomWeights(WeightScheme):
    """``random``: no pre-training (for tests and benchmarks). The same weights every time, drawn on the CPU, so
    they are the same whichever device a model is used on."""

    name, form = "random", "random"
    help = "random initial weights (for tests and baselines)"

    def check(self, spec: ModelSpec) -> None:
        pass  # needs no location

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        # The generator is the process's own, so threads loading at once take turns.
        with _process_generator, torch.random.fork_rng():
            torch.manual_seed(0)
            return create_model(spec, spec.num_classes).to(device)


@_registered
class TransformersWeights(WeightScheme):
    """``transformers:ORG/NAME[@REVISION]`` or ``transformers:<folder>``: a Hugging Face ``transformers`` image
    classifier or backbone with its checkpoint's weights (through the Hugging Face cache; ``HF_HUB_OFFLINE`` and
    the token apply) and its image processor's preprocessing; ``num_classes`` other than its own gives it a new
    head. Its architecture is ``transformers:<the same location>``."""

    name, form = "transformers", "transformers:<org/name[@revision] or folder>"
    help = "a transformers image model from the hub or a folder"

    def check(self, spec: ModelSpec) -> None:
        super().check(spec)
        self._check_arch(spec)

    def arch_of(self, location: str) -> str:
        return f"transformers:{location}"

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        model = load_transformers(spec.location, spec.id, pretrained=True, **spec.arch_kwargs)
        return with_classes(model, spec.num_classes).to(device)

    def prefetch(self, spec: ModelSpec) -> None:
        """Download the repo's configs and safetensors weights into the Hugging Face cache."""
        from huggingface_hub import snapshot_download

        repo, revision = split_revision(spec.location)
        if not Path(repo).is_dir():
            snapshot_download(repo, revision=revision, allow_patterns=["*.json", "*.safetensors"])

    def described(self, location: str) -> dict[str, Any]:
        return model_card_fields(location)

    def resolve(self, location: str, base: Path) -> str:
        """A folder relative to the zoo file, made absolute; a hub repo as it is."""
        folder = (base / location).expanduser()
        return str(folder.resolve()) if not Path(location).is_absolute() and folder.is_dir() else location

    def resolved(self, spec: ModelSpec, base: Path) -> ModelSpec:
        """The location resolved, and the architecture with it."""
        location = self.resolve(spec.location, base)
        return replace(spec, weights=f"{self.name}:{location}", arch=self.arch_of(location))


@_registered
class ModuleWeights(WeightScheme):
    """``module:pkg.mod:factory``: the network that the importable factory builds (called with ``arch_kwargs``
    less ``head``), with the weights of the file ``member`` (safetensors or a ``weights_only`` torch file, a path
    relative to the zoo file; none: the factory's own) loaded strictly; ``arch_kwargs['head']`` names its
    classifier (``null``: it returns features) and ``preprocessing`` its input size and normalisation."""

    name, form = "module", "module:<pkg.module>:<factory>"
    help = "a network built by a factory function of an importable module"

    def check(self, spec: ModelSpec) -> None:
        super().check(spec)
        self._check_arch(spec)
        BUILDERS["module"].check(spec, spec.location)

    def arch_of(self, location: str) -> str:
        return f"module:{location}"

    def identity(self, spec: ModelSpec) -> dict[str, Any]:
        """The spec's fields and the weights file's size and modification time."""
        return {**super().identity(spec), "file_state": _file_state(Path(spec.member)) if spec.member else None}

    def resolved(self, spec: ModelSpec, base: Path) -> ModelSpec:
        return replace(spec, member=FileWeights().resolve(spec.member, base)) if spec.member else spec

    def load(self, spec: ModelSpec, cache: Cache, device: torch.device | str) -> torch.nn.Module:
        """The factory's network built on the meta device where the file fits it exactly (else for real), the
        file's tensors loaded strictly; its classifier then taken out as the head."""
        if spec.member:
            state = read_state(spec, Path(spec.member))
            source = f"model '{spec.id}': weights file '{spec.member}'"
            network = assigned(lambda: factory_network(spec, spec.location), state, source)
            if network is None:
                network = factory_network(spec, spec.location)
                load_strictly(network, state, source)
        else:
            network = factory_network(spec, spec.location)
        return with_classes(adapted_module(network, spec, spec.location), spec.num_classes).to(device)

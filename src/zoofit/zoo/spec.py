"""ModelSpec: everything zoofit needs to know about one pre-trained model of the zoo."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoofit.errors import ZoofitError

#: Weight sources, each a schema prefix of ``ModelSpec.weights``.
WEIGHT_SCHEMES = ("timm", "file", "pypi", "random")
CONVERTERS = ("positional", "keras-mobilenetv2")


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

    ``weights`` names where the pre-trained weights come from:
    ``timm:<name>`` (timm / Hugging Face hub, honouring its cache and ``HF_HUB_OFFLINE``),
    ``file:<path>`` (a safetensors or ``.pth`` state dict for ``arch``),
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

    @property
    def scheme(self) -> str:
        return self.weights.partition(":")[0]

    @property
    def location(self) -> str:
        return self.weights.partition(":")[2]

    def validate(self) -> None:
        if self.scheme not in WEIGHT_SCHEMES:
            raise ZoofitError(
                f"model '{self.id}': weights '{self.weights}' must start with one of "
                f"{', '.join(s + ':' for s in WEIGHT_SCHEMES[:-1])} or be 'random'"
            )
        if self.scheme == "pypi" and not (self.member and self.sha256 and "==" in self.location):
            raise ZoofitError(
                f"model '{self.id}': pypi weights need 'pypi:<package>==<version>', 'member' and 'sha256'"
            )
        if self.convert not in CONVERTERS:
            raise ZoofitError(f"model '{self.id}': convert must be one of {', '.join(CONVERTERS)}")

    def identity(self) -> dict[str, Any]:
        """What determines this model's outputs; the key of everything cached about it."""
        identity = asdict(self)
        for descriptive in ("id", "upstream", "license", "gflops"):
            identity.pop(descriptive)
        if self.scheme == "file":
            path = Path(self.location)
            stat = path.stat() if path.exists() else None
            identity["file_state"] = (stat.st_size, stat.st_mtime_ns) if stat else None
        return identity

"""Zoo files: YAML lists of model specs, the built-in presets, and ad-hoc lists of weights (``timm:``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zoofit.checks import is_number, is_whole
from zoofit.errors import ParameterError, ZoofitError
from zoofit.zoo.architectures import BUILDERS, is_architecture
from zoofit.zoo.schemes import SCHEMES
from zoofit.zoo.spec import ModelSpec, Preprocessing

_SPEC_KEYS = {f.name for f in fields(ModelSpec)}
_PREP_KEYS = {f.name for f in fields(Preprocessing)}
_REQUIRED = ("id", "arch", "weights")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def _whole(value: Any) -> bool:
    return is_whole(value, whole_floats=True)  # YAML's 224.0 is a whole number


def _three(values: Any) -> bool:
    return isinstance(values, list) and len(values) == 3 and all(is_number(v) and v >= 0 for v in values)


#: The kind of each model key that is not text (``preprocessing`` is checked by ``_parse_preprocessing``).
_KINDS = {
    "arch_kwargs": ("a mapping", lambda value: isinstance(value, dict)),
    "num_classes": ("a whole number", _whole),
    "gflops": ("a number", is_number),
    "params": ("a number", is_number),
    "preprocessing": ("a mapping", lambda value: True),
}
_TEXT = ("text (quote it)", lambda value: isinstance(value, str))


@dataclass(frozen=True)
class Zoo:
    """A named list of model specs."""

    name: str
    models: tuple[ModelSpec, ...]
    description: str = ""

    def __len__(self) -> int:
        return len(self.models)

    def select(self, ids: list[str] | None) -> Zoo:
        """The zoo restricted to ``ids`` (in the given order); an unknown id is an error."""
        if not ids:
            return self
        by_id = {spec.id: spec for spec in self.models}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ZoofitError(
                f"unknown model id(s) {', '.join(unknown)} in zoo '{self.name}'; it has {', '.join(by_id)}"
            )
        return Zoo(self.name, tuple(by_id[i] for i in ids), self.description)


def preset_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in resources.files("zoofit.zoo.presets").iterdir()
        if p.name.endswith(".yaml")
    )


def load_zoo(
    zoo: str | Path, *, exclude: str | Sequence[str] | None = None, licenses: str | Sequence[str] | None = None
) -> Zoo:
    """A zoo from a comma-separated mix of built-in presets (``demo``, ``hub-diverse``), YAML zoo files and
    weights that name their architecture (``timm:<name>``, or ``timm:<pattern>`` with shell wildcards over timm's
    pretrained tags); then without the models whose id matches a pattern of ``exclude``, and, where ``licenses``
    is given, only those under one of those licences (compared case-insensitively)."""
    parts = [str(zoo)] if isinstance(zoo, Path) else [part for part in map(str.strip, str(zoo).split(",")) if part]
    if not parts:
        raise ZoofitError("the zoo is empty; give a preset, a YAML zoo file or timm:<name>")
    weights = [part for part in parts if _names_weights(part)]
    loaded = [_zoo_file(part) for part in parts if not _names_weights(part)]
    loaded += [_weights_zoo(weights)] if weights else []
    merged = loaded[0] if len(loaded) == 1 else _merged(loaded, ",".join(parts))
    return filtered(merged, exclude=exclude, licenses=licenses)


def _names_weights(part: str) -> bool:
    scheme, colon, _ = part.partition(":")
    return bool(colon) and scheme in SCHEMES


def _weights_zoo(parts: list[str]) -> Zoo:
    """One model for each weights of ``parts``, their schemes expanding patterns (a model that several patterns
    match comes once; an exact name given twice is an error)."""
    models: list[dict[str, Any]] = []
    exact: dict[str, bool] = {}  # each location so far: whether only exact names gave it
    for part in parts:
        name, _, location = part.partition(":")
        scheme = SCHEMES[name]
        expanded = scheme.expand(location)
        for each in expanded:
            given = expanded == [location]
            if each in exact and not (given and exact[each]):
                continue  # a pattern's model that came already
            exact[each] = given
            models.append({"id": each, "weights": f"{name}:{each}", **scheme.described(each)})
    origin = f"zoo '{','.join(parts)}'"
    return parse_zoo({"models": models}, origin=origin, name=parts[0].partition(":")[0])


def _zoo_file(text: str) -> Zoo:
    """A built-in preset or a YAML zoo file."""
    if text in preset_names():
        content = resources.files("zoofit.zoo.presets").joinpath(f"{text}.yaml").read_text(encoding="utf-8")
        return parse_zoo(yaml.safe_load(content), origin=f"preset '{text}'", name=text)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") and not path.is_file():
        raise ZoofitError(f"zoo file '{path}' does not exist; give a YAML zoo file, a preset or timm:<name>")
    if not path.is_file():
        raise ZoofitError(
            f"unknown zoo '{text}': not a built-in preset ({', '.join(preset_names())}), not a YAML file, "
            "not a 'timm:<name>' list"
        )
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ZoofitError(f"zoo file '{path}' is not valid UTF-8 YAML: {str(error).splitlines()[0]}") from error
    return parse_zoo(content, origin=f"zoo file '{path}'", name=path.stem, base=path.parent)


def _merged(zoos: list[Zoo], name: str) -> Zoo:
    """The models of ``zoos`` in order; a model in several comes once, two different models of one id are an
    error."""
    by_id: dict[str, ModelSpec] = {}
    for zoo in zoos:
        for spec in zoo.models:
            if by_id.setdefault(spec.id, spec) != spec:
                raise ZoofitError(f"zoo '{name}' has two different models with the id '{spec.id}'")
    return Zoo(name, tuple(by_id.values()), "; ".join(zoo.description for zoo in zoos if zoo.description))


def _listed(values: str | Sequence[str] | None) -> list[str]:
    if values is None:
        return []
    items = values.split(",") if isinstance(values, str) else list(values)
    return [item.strip() for item in items if item.strip()]


def filtered(
    zoo: Zoo, *, exclude: str | Sequence[str] | None = None, licenses: str | Sequence[str] | None = None
) -> Zoo:
    """``zoo`` without the models whose id matches a shell pattern of ``exclude``, and only those under one of
    ``licenses`` where any are given (lists, or comma-separated text); a :class:`ParameterError` where none is
    left."""
    exclude, licenses = _listed(exclude), _listed(licenses)
    kept = [spec for spec in zoo.models if not any(fnmatchcase(spec.id, pattern) for pattern in exclude)]
    if not kept:
        raise ParameterError.of("exclude", f"leaves none of the {len(zoo)} models of zoo '{zoo.name}'")
    if licenses:
        wanted = {license.lower() for license in licenses}
        under = sorted({spec.license or "unknown" for spec in kept})
        kept = [spec for spec in kept if spec.license.lower() in wanted]
        if not kept:
            raise ParameterError.of(
                "licenses", f"keep none of the models of zoo '{zoo.name}'; their licences are {', '.join(under)}"
            )
    return zoo if len(kept) == len(zoo) else Zoo(zoo.name, tuple(kept), zoo.description)


def parse_zoo(content: Any, *, origin: str, name: str, base: Path | None = None) -> Zoo:
    """Validate the parsed YAML of a zoo (``name`` where it names none); weights' locations (``file:`` paths) are
    taken relative to ``base``."""
    if not isinstance(content, dict) or not isinstance(content.get("models"), list) or not content["models"]:
        raise ZoofitError(f"{origin} needs a non-empty list under 'models:'")
    specs = [_parse_spec(entry, origin, base) for entry in content["models"]]
    ids = [spec.id for spec in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ZoofitError(f"{origin} lists model id(s) more than once: {', '.join(duplicates)}")
    return Zoo(str(content.get("name", name)), tuple(specs), str(content.get("description", "")))


def _parse_spec(entry: Any, origin: str, base: Path | None) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ZoofitError(f"{origin}: every model must be a mapping with at least 'id', 'arch', 'weights'")
    where = f"{origin}, model '{entry.get('id', '?')}'"
    unknown = sorted(set(entry) - _SPEC_KEYS)
    if unknown:
        raise ZoofitError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_SPEC_KEYS))}")
    name, _, location = str(entry.get("weights", "")).partition(":")
    scheme = SCHEMES[name] if name in SCHEMES else None  # an unknown one is reported by ModelSpec.validate
    if scheme is not None and "arch" not in entry and (arch := scheme.arch_of(location)):
        entry = {**entry, "arch": arch}
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise ZoofitError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {key: _typed(key, value, where) for key, value in entry.items()}
    if "preprocessing" in values:
        values["preprocessing"] = _parse_preprocessing(values["preprocessing"], where)
    spec = ModelSpec(**values)
    spec.validate()
    if scheme is not None and base is not None:
        spec = scheme.resolved(spec, base)
    if not is_architecture(spec.arch):
        raise ZoofitError(
            f"{where}: '{spec.arch}' is not a timm architecture (see timm.list_models()) nor "
            f"{' nor '.join(builder.form for builder in BUILDERS.values())}"
        )
    return spec


def _typed(key: str, value: Any, where: str) -> Any:
    """``value`` of the model key ``key``, checked to be of its kind (YAML reads ``id: 5`` as a number)."""
    kind, fits = _KINDS.get(key, _TEXT)
    if not fits(value) and (value is not None or key in _REQUIRED):  # an optional key may be left empty
        raise ZoofitError(f"{where}: '{key}' must be {kind}, not {value!r}")
    return value


def _parse_preprocessing(value: Any, where: str) -> Preprocessing:
    usage = f"{where}: preprocessing needs input_size, mean, std (optional interpolation, crop_pct); got {value}"
    if not isinstance(value, dict) or set(value) - _PREP_KEYS or not {"input_size", "mean", "std"} <= set(value):
        raise ZoofitError(usage)
    size, mean, std = value["input_size"], value["mean"], value["std"]
    interpolation, crop_pct = value.get("interpolation", "bicubic"), value.get("crop_pct", 0.875)
    if not (
        _whole(size) and size > 0 and is_number(crop_pct) and 0 < crop_pct <= 1 and interpolation in INTERPOLATIONS
        and _three(mean) and _three(std) and min(std) > 0
    ):  # fmt: skip
        raise ZoofitError(
            f"{usage}: input_size must be a positive whole number, mean and std three numbers each (std above 0), "
            f"interpolation one of {', '.join(INTERPOLATIONS)}, crop_pct in (0, 1]"
        )
    return Preprocessing(int(size), tuple(mean), tuple(std), interpolation, float(crop_pct))

"""A run's every setting as one file, ``config.yaml``: written into each run folder (and bench folder) and read
back to replay it (``zoofit run --config``, ``zoofit bench --config``; timm's ``args.yaml`` is the model).

The file mirrors the settings' own classes: ``data`` a :class:`~zoofit.data.DataConfig`, ``ranking`` a
:class:`~zoofit.rank.RankConfig`, ``sweep`` a :class:`~zoofit.sweep_config.SweepConfig` (its groups by meaning),
beside the zoo and its selection, the machine, the seed and, for a bench, its suite; ``versions`` records what
wrote it. "Each model's own size" is ``null``. Torch-free: the CLI reads it before torch loads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, get_args, get_type_hints

import dacite
import yaml

from zoofit.data.protocol import DataConfig
from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.rank.config import RankConfig
from zoofit.rank.proxies import PROXIES
from zoofit.settings import check_settings, option_fields
from zoofit.sweep_config import SweepConfig, group_of, setting_names


@dataclass(frozen=True)
class SuiteSettings:
    """A bench's own settings (see :class:`~zoofit.bench.Bench`)."""

    suite: str
    tasks: list[str] | None = None
    test_images: int | None = None
    audit: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run (``data``; ``shift_data``: ``{name: data}``) or of a bench (``suite``)."""

    zoo: str = "demo"
    models: list[str] | None = None
    exclude: list[str] | None = None
    licenses: list[str] | None = None
    data: DataConfig | None = None
    shift_data: dict[str, str] = field(default_factory=dict)
    suite: SuiteSettings | None = None
    ranking: RankConfig = field(default_factory=RankConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    executor: str = "local"
    versions: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """This config as YAML, with the versions of what writes it."""
        values = json.loads(json.dumps(asdict(replace(self, versions=versions()))))  # tuples as lists
        command = "bench" if self.suite is not None else "run"
        head = f"# Every setting of this {command}; 'zoofit {command} --config THIS_FILE' replays it.\n"
        return head + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)

    def changed(self, **values: Any) -> RunConfig:
        """This config with the given settings replaced, each routed by its name: to this config's own fields,
        the sweep's groups (``image_size`` is the sweep's: it sizes the ranking too), ``data`` or ``ranking``
        (``seed`` seeds the data's draws too)."""
        own: dict[str, Any] = {}
        data: dict[str, Any] = {}
        ranking: dict[str, Any] = {}
        sweep: dict[str, Any] = {}
        for name, value in values.items():
            if name not in _OWN | _SWEEP | _DATA | _RANKING:
                raise ParameterError.of(name, "is not a setting of a run")
            target = own if name in _OWN else sweep if name in _SWEEP else data if name in _DATA else ranking
            target[name] = value
        config = replace(self, **own)
        if "seed" in own and (config.data is not None or data):
            data.setdefault("seed", own["seed"])
        if data:
            config = replace(config, data=replace(config.data or DataConfig(""), **data))
        if ranking:
            config = replace(config, ranking=config.ranking.override(**ranking))
        return replace(config, sweep=config.sweep.override(**sweep)) if sweep else config

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """The config in the file ``path``; a :class:`ZoofitError` naming the file and the key where it cannot
        be read or a setting is wrong."""
        where = f"config file '{path}'"
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ZoofitError(f"{where} cannot be read ({first_line(error)}); give a config.yaml a run wrote") from None
        if not isinstance(values, dict):
            raise ZoofitError(f"{where} holds no settings; give a config.yaml a run wrote")
        try:
            config = dacite.from_dict(cls, _upgraded(values), config=dacite.Config(cast=[tuple], strict=True))
        except dacite.UnexpectedDataError:
            raise ZoofitError(f"{where}: key '{_unknown(cls, values)}' is not a setting; remove it") from None
        except dacite.DaciteFieldError as error:
            raise ZoofitError(f"{where}: key '{error.field_path}' {_problem(error)}; correct it") from None
        try:
            return config.validate()
        except ParameterError as error:
            raise ZoofitError(f"{where}: key {error.spelled(lambda name: repr(config.key(name)))}") from None

    def validate(self) -> RunConfig:
        """This config, where every setting passes its check (the data's source is checked where it is read)."""
        if self.data is not None:
            check_settings(self.data)
        self.ranking.validate()
        self.sweep.validate()
        return self

    def key(self, name: str) -> str:
        """The key of the setting ``name`` in the file (``sweep.search.top_k``)."""
        if name in _SWEEP:
            return f"sweep.{group_of(name)}.{name}"
        if name in _DATA and self.data is not None:
            return f"data.{name}"
        return f"ranking.{name}" if name in _RANKING else name


_OWN = {name for name in RunConfig.__dataclass_fields__ if name not in ("data", "ranking", "sweep")}
_DATA = set(DataConfig.__dataclass_fields__) - {"seed"}
_RANKING = set(RankConfig.__dataclass_fields__) | {name for kind in PROXIES.values() for name, _ in option_fields(kind)}
_SWEEP = set(setting_names())


def _upgraded(values: dict[str, Any]) -> dict[str, Any]:
    """An older file's settings in today's shape, meaning what they meant: ``sweep.ensemble.soup`` (before the
    pool had kinds) is ``members`` of fine-tuned trials, with soups where it was true (no linear heads)."""
    ensemble = values.get("sweep", {}).get("ensemble") if isinstance(values.get("sweep"), dict) else None
    if isinstance(ensemble, dict) and isinstance(ensemble.get("soup"), bool) and "members" not in ensemble:
        ensemble["members"] = ["trial", "soup"] if ensemble.pop("soup") else ["trial"]
    return values


def _unknown(kind: type, values: dict[str, Any], prefix: str = "") -> str | None:
    """The first key of ``values`` (by its path) that is no field of the dataclass ``kind`` or of those inside it."""
    hints = get_type_hints(kind)
    for key, value in values.items():
        if key not in hints:
            return prefix + key
        inner = [t for t in (hints[key], *get_args(hints[key])) if is_dataclass(t)]
        if inner and isinstance(value, dict) and (found := _unknown(inner[0], value, f"{prefix}{key}.")):
            return found
    return None


def _problem(error: dacite.DaciteFieldError) -> str:
    """What is wrong with a key's value, in words."""
    if isinstance(error, dacite.MissingValueError):
        return "is missing"
    if isinstance(error, dacite.WrongTypeError):
        kind = error.field_type
        return f"must be {getattr(kind, '__name__', str(kind))}, not {error.value!r}"
    return first_line(error)


def other_versions(recorded: dict[str, str]) -> str:
    """Those of the ``recorded`` versions that differ from the ones installed, in words ("" where none does)."""
    installed = versions()
    return ", ".join(f"{name} {version}" for name, version in recorded.items() if installed.get(name) != version)


def versions() -> dict[str, str]:
    """The versions of zoofit, torch and timm installed (read from their metadata: no import)."""
    found = {}
    for package in ("zoofit", "torch", "timm"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found

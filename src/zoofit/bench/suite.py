"""Suites: a YAML file of tasks (id, ``data`` in any form ``--data`` takes, group, protocol), built in or a user's.

A suite file::

    name: mine
    description: what the tasks are and how their protocol differs from a published one
    protocol: {train_size: 1000, val_fraction: 0.2, seed: 0}   # every task's, unless it gives its own
    tasks:
      - {id: flowers, data: path/to/flowers, group: natural}
      - {id: scans, data: scans.csv, group: specialized, protocol: {train_per_class: 50}}
    references:                                                  # published figures, each with its source
      - {label: ..., mean: 77.6, groups: {natural: ...}, source: ...}

The protocol keys are those of :class:`~zoofit.data.DataConfig`: ``train_per_class``, ``train_size``,
``val_fraction``, ``test_fraction``, ``seed``. Torch-free (the CLI checks a suite before torch loads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zoofit.data.sources import resolved
from zoofit.errors import ParameterError, ZoofitError

#: What a task's protocol may set, and the type of each.
PROTOCOL = {"train_per_class": int, "train_size": int, "val_fraction": float, "test_fraction": float, "seed": int}
_TASK_KEYS = {"id", "data", "group", "protocol", "description"}
_SUITE_KEYS = {"name", "description", "protocol", "tasks", "references"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name on every system


@dataclass(frozen=True)
class Task:
    """One task of a suite: its ``id`` (its run folder's name), ``data`` (a ``--data`` string), ``group``
    (``natural``, ``specialized``, ``structured`` in VTAB) and ``protocol`` (DataConfig's settings)."""

    id: str
    data: str
    group: str
    protocol: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def data_config(self) -> Any:
        """The task's :class:`~zoofit.data.DataConfig`."""
        from zoofit.data import DataConfig

        return DataConfig(self.data, **self.protocol)


@dataclass(frozen=True)
class Reference:
    """A published figure (accuracy in %) beside a suite's table: its ``mean`` and per-group figures, cited."""

    label: str
    source: str
    mean: float | None = None
    groups: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A named list of tasks, with the published figures that stand beside its table."""

    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    references: tuple[Reference, ...] = ()
    source: str = ""  # the file it was read from, or 'built-in'

    @property
    def groups(self) -> list[str]:
        """The groups, in the order of their first task."""
        return list(dict.fromkeys(task.group for task in self.tasks))

    def select(self, ids: list[str] | None) -> Suite:
        """The suite with only the tasks ``ids`` (in the suite's order); ``None``: all of them."""
        if ids is None:
            return self
        known = {task.id for task in self.tasks}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ParameterError.of(
                "tasks",
                f"suite '{self.name}' has no task {', '.join(map(repr, unknown))}; its tasks: {', '.join(known)}",
            )
        if len(set(ids)) != len(ids):
            raise ParameterError.of("tasks", f"names a task twice: {', '.join(ids)}")
        return Suite(self.name, tuple(t for t in self.tasks if t.id in ids), self.description, self.references,
                     self.source)  # fmt: skip


def builtin_suites() -> list[str]:
    """The names of the built-in suites."""
    folder = resources.files("zoofit.bench.suites")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(suite: str | Path | Suite) -> Suite:
    """A built-in suite by name (``offline``, ``vtab-1k``) or a suite YAML file; a one-line error where it is
    missing or malformed."""
    if isinstance(suite, Suite):
        return suite
    text = str(suite)
    if text in builtin_suites():
        content = resources.files("zoofit.bench.suites").joinpath(f"{text}.yaml").read_text(encoding="utf-8")
        return parse_suite(content, f"built-in suite '{text}'", "built-in")
    path = Path(text)
    if not path.is_file():
        raise ParameterError.of(
            "suite", f"'{text}' is neither a built-in suite ({', '.join(builtin_suites())}) nor a YAML file"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ZoofitError(f"suite file '{path}' cannot be read ({error}); give a UTF-8 YAML file") from None
    return parse_suite(content, f"suite file '{path}'", str(path), base=path.parent)


def parse_suite(content: str, where: str, source: str, base: Path | None = None) -> Suite:
    """The suite in the YAML ``content`` (``where`` names it in messages); relative data paths are resolved
    against ``base``."""
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ZoofitError(f"{where} is not valid YAML{at}; fix it (see 'zoofit bench --help' for the format)") from None
    if not isinstance(raw, dict):
        raise ZoofitError(f"{where} must be a mapping with 'name' and 'tasks'")
    _known(raw, _SUITE_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ZoofitError(f"{where} needs a 'name' (text)")
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ZoofitError(f"{where} needs 'tasks': a list of at least one task with id, data and group")
    defaults = _protocol(raw.get("protocol", {}), f"{where}: 'protocol'")
    parsed = tuple(_task(entry, i, defaults, where, base) for i, entry in enumerate(tasks, 1))
    seen: set[str] = set()
    for task in parsed:
        if task.id in seen:
            raise ZoofitError(f"{where}: task id '{task.id}' is given twice; give every task its own id")
        seen.add(task.id)
    references = raw.get("references") or []
    if not isinstance(references, list):
        raise ZoofitError(f"{where}: 'references' must be a list of published figures")
    return Suite(name, parsed, str(raw.get("description", "")).strip(),
                 tuple(_reference(r, i, where) for i, r in enumerate(references, 1)), source)  # fmt: skip


def _task(entry: Any, index: int, defaults: dict[str, Any], where: str, base: Path | None) -> Task:
    if not isinstance(entry, dict):
        raise ZoofitError(f"{where}: task {index} must be a mapping with id, data and group")
    label = f"{where}: task {index}" + (f" ('{entry['id']}')" if isinstance(entry.get("id"), str) else "")
    _known(entry, _TASK_KEYS, label)
    for key in ("id", "data", "group"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ZoofitError(f"{label} needs '{key}' (text)")
    if not _ID.match(entry["id"]):
        raise ZoofitError(f"{label}: id '{entry['id']}' must be letters, digits, '.', '_' or '-' (a folder name)")
    data = entry["data"]
    if base is not None:
        data = resolved(data, base)
    protocol = {**defaults, **_protocol(entry.get("protocol", {}), f"{label}: 'protocol'")}
    return Task(entry["id"], data, entry["group"], protocol, str(entry.get("description", "")))


def _protocol(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ZoofitError(f"{where} must be a mapping of {', '.join(PROTOCOL)}")
    _known(raw, set(PROTOCOL), where)
    for key, value in raw.items():
        kind = PROTOCOL[key]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ZoofitError(
                f"{where}: '{key}' must be {'a number' if kind is float else 'a whole number'}, not {value!r}"
            )
    return {key: PROTOCOL[key](value) for key, value in raw.items()}


def _reference(raw: Any, index: int, where: str) -> Reference:
    label = f"{where}: reference {index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("label"), str) or not isinstance(raw.get("source"), str):
        raise ZoofitError(f"{label} needs 'label' and 'source' (text), with 'mean' and/or 'groups'")
    _known(raw, {"label", "source", "mean", "groups"}, label)
    groups = raw.get("groups") or {}
    numbers = [raw.get("mean"), *groups.values()] if isinstance(groups, dict) else ["x"]
    if any(n is not None and (isinstance(n, bool) or not isinstance(n, (int, float))) for n in numbers):
        raise ZoofitError(f"{label}: 'mean' and 'groups' must be numbers (accuracy in %)")
    return Reference(raw["label"], raw["source"], raw.get("mean"), {str(k): float(v) for k, v in groups.items()})


def _known(raw: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ZoofitError(f"{where}: unknown key '{unknown[0]}'; the keys are {', '.join(sorted(keys))}")

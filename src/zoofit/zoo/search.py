"""A zoo file from the Hugging Face hub's own listing (``huggingface_hub``'s ``HfApi.list_models``): image
classifiers or feature extractors of ``transformers`` or ``timm``, filtered by licence and size, sorted by downloads
or likes, each entry annotated with its upstream datasets, licence and parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.store import write_text

TASKS = ("image-classification", "image-feature-extraction")
LIBRARIES = ("transformers", "timm")
SORTS = ("downloads", "likes")
_EXPANDED = ["cardData", "safetensors", "downloads", "likes", "library_name", "pipeline_tag", "tags"]


@dataclass
class HubSearch:
    """The models the hub lists for a query, as zoo entries (``models``), and those left out with why
    (``skipped``: id -> reason)."""

    query: dict[str, Any]
    models: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        """The zoo file at ``path`` (YAML), which ``--zoo`` takes."""
        if not self.models:
            raise ZoofitError(f"the hub lists no usable model for {self._described()}; widen the filters")
        description = f"hub search: {self._described()}"
        content = {"name": path.stem, "description": description, "models": self.models}
        write_text(path, yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
        return path

    def _described(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in self.query.items() if value is not None)


def check_search(task: str, library: str, sort: str, limit: int, max_params: float | None) -> None:
    """A one-line :class:`ParameterError` for a filter the search cannot take."""
    for name, value, allowed in (("task", task, TASKS), ("library", library, LIBRARIES), ("sort", sort, SORTS)):
        if value not in allowed:
            raise ParameterError.of(name, f"must be one of {', '.join(allowed)}, not '{value}'")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ParameterError.of("limit", f"must be a whole number of at least 1, not {limit!r}")
    if max_params is not None and (isinstance(max_params, bool) or not max_params > 0):
        raise ParameterError.of("max_params", f"must be a positive number of millions, not {max_params!r}")


def search_hub(
    *,
    task: str = "image-classification",
    library: str = "transformers",
    license: str | None = None,
    max_params: float | None = None,
    sort: str = "downloads",
    limit: int = 50,
    endpoint: str | None = None,
) -> HubSearch:
    """The hub's ``limit`` first models for ``task`` of ``library`` (under ``license``, of at most ``max_params``
    million parameters by their safetensors metadata), sorted by ``sort``, as zoo entries. The hub is
    ``endpoint``, else ``HF_ENDPOINT``, else huggingface.co; a model without parameter counts is left out where
    ``max_params`` is given, a timm model outside timm's registry is left out (timm cannot name it)."""
    from huggingface_hub import HfApi

    check_search(task, library, sort, limit, max_params)
    query = {"task": task, "library": library, "license": license, "max_params_m": max_params, "sort": sort,
             "limit": limit}  # fmt: skip
    filters = [library, *([f"license:{license}"] if license else [])]
    size = f"max:{int(max_params * 1e6)}" if max_params is not None else None
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None)
    try:
        listed = list(api.list_models(filter=filters, pipeline_tag=task, num_parameters=size, sort=sort, limit=limit,
                                      expand=_EXPANDED))  # fmt: skip
    except Exception as error:  # noqa: BLE001 - the network and the hub raise many types; each is one line
        raise ZoofitError(f"cannot list models on the hub ({first_line(error)}); check the connection") from error
    search = HubSearch(query)
    for info in listed:
        entry, reason = _entry(info, library, max_params)
        if entry is None:
            search.skipped[info.id] = reason
        else:
            search.models.append(entry)
    return search


def _entry(info: Any, library: str, max_params: float | None) -> tuple[dict[str, Any] | None, str]:
    """The zoo entry of a listed model, or ``None`` and why it is left out."""
    params = info.safetensors.total / 1e6 if info.safetensors else None
    if max_params is not None and (params is None or params > max_params):
        return None, "no parameter count" if params is None else f"{params:.1f} M parameters"
    card = info.card_data.to_dict() if info.card_data else {}
    tags = info.tags or []
    datasets = card.get("datasets") or [tag.removeprefix("dataset:") for tag in tags if tag.startswith("dataset:")]
    license = card.get("license") or next(
        (tag.removeprefix("license:") for tag in tags if tag.startswith("license:")), ""
    )
    weights = f"transformers:{info.id}"
    if library == "timm":
        import timm

        org, _, name = info.id.partition("/")
        if org != "timm" or not timm.is_model(timm.models.split_model_name_tag(name)[0]):
            return None, "a timm model outside timm's registry"
        weights = f"timm:{name}"
    entry = {
        "id": info.id,
        "weights": weights,
        "upstream": datasets if isinstance(datasets, str) else ", ".join(map(str, datasets)),
        "license": license if isinstance(license, str) else ", ".join(license),
    }
    return (entry | ({"params": round(params, 1)} if params is not None else {})), ""

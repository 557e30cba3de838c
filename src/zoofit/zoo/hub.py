"""The public zoo: timm's registry of pretrained tags, expanded from shell patterns, with what timm's pretrained
configs say of each (licence, upstream data, input size) and what counting on the meta device says (parameters,
GFLOPs)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import timm
import torch

from zoofit.errors import ZoofitError
from zoofit.zoo.load import count_gflops, create_model

if TYPE_CHECKING:
    from zoofit.zoo.spec import ModelSpec

#: Upstream data named by a pretrained tag, first match wins: (substrings of the tag, the upstream's description).
UPSTREAMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("dinov2", "lvd142m"), "self-supervised DINOv2 (LVD-142M)"),
    (("dino",), "self-supervised DINO (ImageNet-1k)"),
    (("mae",), "self-supervised MAE (ImageNet-1k)"),
    (("siglip", "webli"), "SigLIP image-text (WebLI)"),
    (("clip", "openai", "laion", "datacomp", "dfn", "metaclip"), "CLIP image-text (web-scale)"),
    (("swsl", "ig1b", "ig3b", "_ig_", ".ig", "ig_in1k"), "weakly supervised web images (Instagram), then ImageNet-1k"),
    (("ssl",), "semi-supervised YFCC100M, then ImageNet-1k"),
    (("bit", "jft"), "BiT (ImageNet-21k / JFT), then fine-tuned"),
    (("in21k", "in22k", "21k", "22k"), "ImageNet-21k/22k"),
    (("in1k", "tv_in1k", "tv2_in1k"), "ImageNet-1k"),
)


def is_pattern(name: str) -> bool:
    """Whether ``name`` holds a shell wildcard (``*``, ``?``, ``[...]``)."""
    return any(char in name for char in "*?[")


def pretrained_matching(pattern: str) -> list[str]:
    """timm's pretrained tags matching the shell pattern ``pattern`` (case-sensitive), in timm's order; a
    pattern matching none is a :class:`ZoofitError` naming it."""
    names = [name for name in timm.list_pretrained() if fnmatchcase(name, pattern)]
    if not names:
        raise ZoofitError(f"'timm:{pattern}' matches no pretrained timm model (see timm.list_pretrained())")
    return names


def pretrained_cfg(name: str) -> Any:
    """timm's pretrained config of ``name``, a tag or an architecture (its default tag); ``None`` where timm has
    none."""
    try:
        return timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown tag of a known architecture
        return None


def upstream_of(name: str) -> str:
    """The upstream data a pretrained tag (or an architecture's default tag) names; ``""`` where its tag says
    nothing known."""
    cfg = pretrained_cfg(name)
    tag = (cfg.tag or "").lower() if cfg is not None else ""
    for parts, upstream in UPSTREAMS:
        if any(part in tag for part in parts):
            return upstream
    return ""


def hub_fields(name: str) -> dict[str, Any]:
    """The descriptive fields of a spec for the pretrained tag (or architecture) ``name`` that timm's config
    gives: licence and upstream (none where timm has no config)."""
    cfg = pretrained_cfg(name)
    if cfg is None:
        return {}
    return {"license": cfg.license or "", "upstream": upstream_of(name)}


def fixed_input_size(model: Any) -> bool:
    """Whether timm's pretrained config says ``model`` takes only its own input size."""
    return bool(getattr(model, "pretrained_cfg", {}).get("fixed_input_size", False))


def model_facts(spec: ModelSpec) -> dict[str, Any]:
    """What ``zoofit zoo list`` shows of ``spec``: id, upstream, parameters (millions), forward GFLOPs per image
    at its input size, that size, whether it is fixed, licence. Parameters and GFLOPs are the spec's where it
    gives them, else counted on the meta device (no weights are read or downloaded)."""
    tagged = spec.weight_scheme.arch_of(spec.location) == spec.arch  # the weights name a pretrained tag
    cfg = pretrained_cfg(spec.location if tagged else spec.arch)
    size = spec.preprocessing.input_size if spec.preprocessing else int(cfg.input_size[-1]) if cfg else None
    params, gflops, fixed = spec.params, spec.gflops, bool(cfg and cfg.fixed_input_size)
    if params is None or gflops is None:
        with torch.device("meta"):
            model = create_model(spec, spec.num_classes).eval()  # eval: a batch norm over 1 x 1 maps counts too
        own = getattr(model, "pretrained_cfg", None) or {}  # a transformers or module: model tells its own
        size = size or (int(own["input_size"][-1]) if own.get("input_size") else None)
        fixed = fixed or fixed_input_size(model)
        params = params if params is not None else round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
        if gflops is None and size is not None:
            try:
                gflops = round(count_gflops(model, size), 2)
            except Exception:  # noqa: BLE001 - a model that cannot run on the meta device goes uncounted
                gflops = None
    return {
        "id": spec.id,
        "weights": spec.weights,
        "upstream": spec.upstream,
        "params_m": params,
        "gflops": gflops,
        "input_size": size,
        "fixed_input_size": fixed,
        "license": spec.license,
    }

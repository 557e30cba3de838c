"""What a ranking is made of, below the :class:`~zoofit.rank.ranker.Ranker` and its executors: a model loaded at
the resolution it is ranked at, the errors of its passes as one line, and the rows a ranking gives."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from zoofit.errors import ModelError, first_line
from zoofit.rank.config import RankConfig
from zoofit.store import Cache
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing, load_model
from zoofit.zoo.hub import fixed_input_size

log = logging.getLogger("zoofit")


@dataclass(frozen=True)
class RankedModel:
    """One row of the ranking."""

    model: str
    proxy: str  # the name of the proxy that scored it
    score: float  # the proxy's score: higher = better
    feature_dim: int
    seconds: float  # wall time of its features and score (its load came before; on a GPU, shared with other models)
    images_per_second: float | None  # feature extraction throughput (None where all features were cached)
    images_extracted: int  # images whose features were extracted (the others' came from the cache)
    gflops: float  # per image, at input_size
    input_size: int
    arch: str
    weights: str


@dataclass(frozen=True)
class SkippedModel:
    """A model the ranking could not use, and why (one line)."""

    model: str
    reason: str


def loaded_for_ranking(
    spec: ModelSpec, cache: Cache, device: torch.device, config: RankConfig
) -> tuple[LoadedModel, Preprocessing]:
    """``spec`` loaded, and the preprocessing it is ranked with, at whose resolution its GFLOPs are counted
    (in the loader's thread). A model that cannot take ``config.image_size`` (a fixed-size ViT, say) is ranked at
    its own where ``config.own_size_if_needed``, else it is a :class:`ModelError`."""
    image_size, own_size_if_needed = config.image_size, config.own_size_if_needed
    loaded = load_model(spec, cache, device)
    prep = loaded.preprocessing.with_size(image_size)
    own = loaded.preprocessing.input_size
    if prep.input_size != own and fixed_input_size(loaded.model) and not spec.arch_kwargs.get("dynamic_img_size"):
        if not own_size_if_needed:
            raise ModelError(
                f"model '{spec.id}' takes only its own {own} px inputs (timm's pretrained config), not "
                f"{prep.input_size}; {OWN_SIZE}"
            )
        prep = loaded.preprocessing
    try:
        with inputs_of_size(loaded, prep.input_size):
            loaded.gflops_at(prep.input_size)
    except ModelError:
        if prep == loaded.preprocessing or not own_size_if_needed:
            raise
        log.info("%s takes only its own %d px inputs: ranked at that size", spec.id, loaded.preprocessing.input_size)
        prep = loaded.preprocessing
        with inputs_of_size(loaded, prep.input_size):
            loaded.gflops_at(prep.input_size)
    return loaded, prep


OWN_SIZE = (
    "rank it at its own resolution (image_size own) or give it arch_kwargs "
    "{dynamic_img_size: true} where timm has that option"
)


@contextmanager
def inputs_of_size(loaded: LoadedModel, size: int) -> Iterator[None]:
    """Within: an error of ``loaded``'s forward passes is a :class:`ModelError` saying it failed on ``size`` px
    inputs, and what to do (a fixed-size ViT at another size, say); running out of memory, too."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        raise ModelError(
            f"model '{loaded.spec.id}' ran out of memory on {size} px inputs ({first_line(error)}); give a smaller "
            "batch_size or rank fewer models at once"
        ) from None  # not chained: the model the traceback holds can go
    except (AssertionError, RuntimeError, ValueError, IndexError) as error:
        fix = (
            "correct the input_size of its preprocessing in the zoo file"
            if size == loaded.preprocessing.input_size
            else OWN_SIZE
        )
        raise ModelError(f"model '{loaded.spec.id}' failed on {size} px inputs ({first_line(error)}); {fix}") from error

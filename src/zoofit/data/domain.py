"""Shifted domains: labelled images of other data in any ``--data`` form, their classes matched to a run's by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zoofit.data.dataset import ImageSet
from zoofit.data.decode import DEFAULT_MAX_SIDE
from zoofit.data.skips import Skipped, happened
from zoofit.data.sources import check_source, load_source
from zoofit.errors import ParameterError, ZoofitError
from zoofit.progress import Progress


@dataclass(frozen=True)
class Domain:
    """A shifted domain: its data as given, its labelled images in a run's classes, and what its reading skipped."""

    data: str
    images: ImageSet
    skipped: tuple[Skipped, ...] = ()


def load_domains(
    domains: dict[str, str],
    class_names: Sequence[str],
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    progress: Progress | None = None,
) -> dict[str, Domain]:
    """Each of ``domains`` (``{name: data}``) read by :func:`load_domain`."""
    return {
        name: load_domain(source, class_names, max_side=max_side, progress=progress) for name, source in domains.items()
    }


def parse_domains(values: Sequence[str]) -> dict[str, str]:
    """``{name: data}`` of ``NAME=DATA`` values, each data checked (no image read) and each name given once."""
    domains: dict[str, str] = {}
    for value in values:
        name, equals, source = value.partition("=")
        if not equals or not name.strip() or not source:
            raise ParameterError.of("shift_data", f"'{value}' is not NAME=DATA; write e.g. sketch=hf:ORG/NAME")
        if name.strip() in domains:
            raise ParameterError.of("shift_data", f"names the domain '{name.strip()}' twice; give each its own name")
        check_source(source)
        domains[name.strip()] = source
    return domains


def load_domain(
    source: str, class_names: Sequence[str], *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None
) -> Domain:
    """The labelled images of ``source`` (its test split; all of it where it has none), labelled by the run's
    ``class_names`` (by name): a domain may have a subset of them; a class the run does not know is a one-line
    error. What the source and the decoding skipped is counted."""
    data = load_source(source, max_side=max_side, progress=progress)
    parts = [data.test] if data.test is not None else [s for s in (data.train, data.val) if s is not None and len(s)]
    index = {name: i for i, name in enumerate(class_names)}
    mapped, skipped = [], list(data.skipped)
    for part in parts:
        unknown = [name for name in part.class_names if name not in index]
        if unknown:
            raise ZoofitError(
                f"shifted data '{source}' has classes the run does not know: {', '.join(unknown[:5])}; "
                f"its classes must be among the run's ({', '.join(class_names[:10])}{', ...' if len(class_names) > 10 else ''})"
            )
        relabel = np.array([index[name] for name in part.class_names], dtype=np.int64)
        decoded, unreadable = part.decoded(f"shifted '{source}'", max_side, progress)
        skipped.extend(happened(unreadable))
        mapped.append(ImageSet(decoded.images, relabel[decoded.labels], tuple(class_names)))
    images = mapped[0] if len(mapped) == 1 else ImageSet.concat(*mapped)
    if not len(images):
        raise ZoofitError(f"shifted data '{source}' holds no labelled images")
    return Domain(source, images, tuple(skipped))

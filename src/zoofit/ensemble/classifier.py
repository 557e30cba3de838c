"""A finished run's ensemble as a classifier: rebuilt from the run folder alone, no zoo or data needed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.data.decode import UnreadableImage, decode_image
from zoofit.device import resolve_device, resolve_precision, to_device, upload
from zoofit.ensemble.module import EnsembleModule, MemberModule
from zoofit.errors import ModelError, ZoofitError, first_line
from zoofit.layout import MANIFEST, STUDENT
from zoofit.progress import Progress, SilentProgress
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing, load_model
from zoofit.zoo.inference import fold_batch_norms

log = logging.getLogger("zoofit")
DECODE_CHUNK = 256  # images decoded at a time, so any number of images fits in memory


@dataclass
class Member:
    model: LoadedModel
    weight: float


class EnsembleClassifier:
    """Weighted average of the ensemble members' probabilities, each with its own preprocessing.

    Examples
    --------
    >>> classifier = EnsembleClassifier.load("runs/fm")              # doctest: +SKIP
    >>> classifier.predict(["shoe.png", "shirt.jpg"])                # doctest: +SKIP
    ['Sneaker', 'Shirt']
    """

    def __init__(
        self, members: list[Member], class_names: Sequence[str], *, device: str = "auto", precision: str = "auto"
    ) -> None:
        self.members = members
        self.class_names = tuple(class_names)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        modules = []
        for member in members:
            loaded = member.model
            network = to_device(loaded.model, self.device).eval()
            loaded.model = network = fold_batch_norms(network, loaded.preprocessing.input_size)
            modules.append(MemberModule(network, loaded.preprocessing, loaded.spec.id, self.precision))
        #: The ensemble as one module: uint8 ``N x H x W x C`` images in, probabilities out.
        self.module = EnsembleModule(modules, [member.weight for member in members]).to(self.device).eval()

    @classmethod
    def load(
        cls, run: str | Path, *, student: bool = False, device: str = "auto", precision: str = "auto"
    ) -> EnsembleClassifier:
        """The ensemble of the run folder ``run`` (written by ``zoofit run``); with ``student``, the one network
        distilled from it (written by ``zoofit distill`` or ``run --distill``), as an ensemble of one."""
        root = Path(run)
        if not root.is_dir():
            state = "is a file" if root.exists() else "does not exist"
            raise ZoofitError(f"run folder '{root}' {state}; give the folder a 'zoofit run' wrote")
        name = STUDENT if student else MANIFEST
        manifest = root / name
        if not manifest.is_file():
            raise ZoofitError(
                f"run folder '{root}' has no {name}: "
                + (f"distil a student first with 'zoofit distill --run {root}'" if student else
                   "the run has not finished; rerun 'zoofit run'")
            )  # fmt: skip
        try:
            content = json.loads(manifest.read_text(encoding="utf-8"))
            entries, class_names = content["members"], content["class_names"]
        except (ValueError, KeyError, TypeError) as error:
            raise _damaged(root, f"{name} is unreadable ({first_line(error)})") from error
        return cls.from_entries(root, entries, class_names, device=device, precision=precision)

    @classmethod
    def from_entries(
        cls,
        root: Path,
        entries: list[dict[str, Any]],
        class_names: Sequence[str],
        *,
        device: str = "auto",
        precision: str = "auto",
    ) -> EnsembleClassifier:
        """The members described by manifest ``entries`` (see :func:`member_entry`) of the run folder ``root``."""
        if not isinstance(entries, list) or not entries or not isinstance(class_names, list | tuple):
            raise _damaged(root, f"{MANIFEST} lists no members or no class names")
        members = []
        for entry in entries:
            try:
                spec, weight = member_spec(root, entry), float(entry["weight"])
            except (KeyError, TypeError, ValueError) as error:
                raise _damaged(root, f"a member of {MANIFEST} is incomplete ({first_line(error)})") from error
            if spec.num_classes != len(class_names):
                raise _damaged(
                    root, f"member '{spec.id}' has {spec.num_classes} classes, {MANIFEST} names {len(class_names)}"
                )
            try:
                members.append(Member(load_model(spec), weight))
            except ModelError as error:
                raise _damaged(root, str(error)) from error
        return cls(members, class_names, device=device, precision=precision)

    @property
    def gflops(self) -> float:
        return sum(member.model.gflops for member in self.members)

    def member_probabilities(
        self,
        images: Sequence[str | Path | np.ndarray],
        *,
        batch_size: int = 64,
        progress: Progress | None = None,
        skip_unreadable: bool = False,
    ) -> list[np.ndarray]:
        """Each member's ``N x classes`` probabilities for image files or decoded ``H x W x C`` uint8 arrays,
        decoded ``DECODE_CHUNK`` at a time. An image file that cannot be read is an error, or with
        ``skip_unreadable`` a warning and a row of NaN."""
        members = list(self.module.members)
        return self._forward(images, lambda x: [m(x) for m in members], len(members), batch_size, progress,
                             skip_unreadable)  # fmt: skip

    def embed(
        self,
        images: Sequence[str | Path | np.ndarray],
        member: int,
        *,
        batch_size: int = 64,
        progress: Progress | None = None,
        skip_unreadable: bool = False,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Each member's probabilities (as :meth:`member_probabilities`) and the pre-logit features of the
        ``member``-th, from the same pass."""
        members = list(self.module.members)

        def forward(x: torch.Tensor) -> list[torch.Tensor]:
            features, probs = members[member].embed(x)
            return [*(probs if i == member else m(x) for i, m in enumerate(members)), features]

        *probs, features = self._forward(images, forward, len(members) + 1, batch_size, progress, skip_unreadable)
        return probs, features

    def features(self, images: Sequence[str | Path | np.ndarray], member: int, *, batch_size: int = 64) -> np.ndarray:
        """The pre-logit features of the ``member``-th member alone (see :meth:`embed`)."""
        network = self.module.members[member]
        return self._forward(images, lambda x: [network.embed(x)[0]], 1, batch_size, None, False)[0]

    def predict_proba(
        self,
        images: Sequence[str | Path | np.ndarray],
        *,
        batch_size: int = 64,
        progress: Progress | None = None,
        skip_unreadable: bool = False,
    ) -> np.ndarray:
        """``N x classes`` probabilities of the ensemble module for image files or decoded ``H x W x C`` uint8
        arrays (see :meth:`member_probabilities` for ``skip_unreadable``)."""
        return self._forward(images, lambda x: [self.module(x)], 1, batch_size, progress, skip_unreadable)[0]

    def _forward(
        self,
        images: Sequence[str | Path | np.ndarray],
        forward: Callable[[torch.Tensor], list[torch.Tensor]],
        outputs: int,
        batch_size: int,
        progress: Progress | None,
        skip_unreadable: bool,
    ) -> list[np.ndarray]:
        """The ``outputs`` tensors of ``forward`` for ``images``, run on batches of images of one size, in order."""
        chunks: list[list[np.ndarray | int]] = [[] for _ in range(outputs)]  # an int: that many images unread
        with (progress or SilentProgress()).task("predicting", total=len(images)) as task, torch.inference_mode():
            for start in range(0, len(images), DECODE_CHUNK):
                decoded = [_decode(image, skip_unreadable) for image in images[start : start + DECODE_CHUNK]]
                rows: list[np.ndarray | None] = [None] * outputs  # N x the output's width, NaN where skipped
                for indices in _same_size_batches(decoded, batch_size):
                    batch = upload(torch.from_numpy(np.stack([decoded[i] for i in indices])), self.device)
                    for k, output in enumerate(forward(batch)):
                        if rows[k] is None:
                            rows[k] = np.full((len(decoded), output.shape[1]), np.nan)
                        rows[k][indices] = output.float().cpu().numpy()
                for parts, row in zip(chunks, rows, strict=True):
                    parts.append(len(decoded) if row is None else row)
                task.advance(len(decoded))
        return [_joined(parts, len(self.class_names)) for parts in chunks]

    def predict(self, images: Sequence[str | Path | np.ndarray]) -> list[str]:
        return [self.class_names[i] for i in self.predict_proba(images).argmax(1)]


def member_entry(result: dict[str, Any], weight: float, checkpoint: str) -> dict[str, Any]:
    """A manifest entry: what rebuilding the trial of ``result`` (a trial's ``result.json``) needs, with its
    ensemble ``weight`` and its ``checkpoint`` relative to the run folder."""
    keys = ("trial", "model", "arch", "arch_kwargs", "num_classes", "preprocessing", "gflops")
    return {**{key: result[key] for key in keys}, "weight": float(weight), "checkpoint": checkpoint}


def member_spec(root: Path, entry: dict[str, Any]) -> ModelSpec:
    """The spec that rebuilds a member from its manifest ``entry``, with the trained checkpoint as its weights."""
    prep = entry["preprocessing"]
    return ModelSpec(
        id=entry["model"],
        arch=entry["arch"],
        weights=f"file:{root / entry['checkpoint']}",
        arch_kwargs=entry["arch_kwargs"],
        num_classes=entry["num_classes"],
        preprocessing=Preprocessing(**{**prep, "mean": tuple(prep["mean"]), "std": tuple(prep["std"])}),
        gflops=entry["gflops"],
    )


def _joined(parts: list[np.ndarray | int], width: int) -> np.ndarray:
    """The rows of ``parts`` stacked, an int part standing for that many rows of NaN; ``width`` columns where no
    part has rows."""
    width = next((part.shape[1] for part in parts if isinstance(part, np.ndarray)), width)
    rows = [np.full((part, width), np.nan) if isinstance(part, int) else part for part in parts]
    return np.concatenate(rows) if rows else np.zeros((0, width))


def _same_size_batches(images: Sequence[np.ndarray | None], batch_size: int) -> list[list[int]]:
    """Indices of ``images`` (``None``: skipped) in batches of at most ``batch_size`` images of one shape."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        if image is not None:
            groups.setdefault(image.shape, []).append(index)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def _damaged(root: Path, what: str) -> ZoofitError:
    return ZoofitError(f"run folder '{root}' is damaged: {what}; run 'zoofit run' into it again")


def _decode(image: str | Path | np.ndarray, skip_unreadable: bool) -> np.ndarray | None:
    """``image`` decoded; ``None`` (with a warning) where ``skip_unreadable`` and it cannot be read."""
    if isinstance(image, np.ndarray):
        return image if image.ndim == 3 else image[..., None]
    path = Path(image)
    try:
        if not path.is_file():
            raise UnreadableImage(f"{path}: it does not exist or is not a file")
        return decode_image(path)
    except UnreadableImage as error:
        if not skip_unreadable:
            raise ZoofitError(f"cannot read image {error}") from error
        log.warning("skipping unreadable image %s", error)
        return None

"""Exporting a finished run's ensemble module to a file that runs without zoofit: ONNX, or a torch.export program.

The formats are a registry (:data:`~zoofit.export_formats.FORMATS`). Each starts from one
:func:`torch.export.export` of the :class:`~zoofit.ensemble.module.EnsembleModule` on the CPU in float32, with a
dynamic batch size, height and width (each member's resize and crop are inside the program); where the whole fails,
each member is exported alone so that the error names the one the format cannot represent. The written file is run
at three image sizes (:func:`check_shapes`) and checked against ``predict``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ZoofitError, first_line
from zoofit.export_formats import FORMATS, INPUT, OUTPUT, Format, Onnx, TorchExport, format_of, quiet
from zoofit.layout import MANIFEST
from zoofit.replay import versions
from zoofit.store import atomic_path

__all__ = ["FORMATS", "Exported", "Format", "Onnx", "TorchExport", "check_shapes", "export_run", "format_of"]

#: Largest difference of probabilities allowed between an exported file and ``predict``, checked on export.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    path: Path
    format: str
    members: int
    checked_shapes: tuple[tuple[int, int], ...]  # (height, width) of the check images
    max_difference: float  # of the file's probabilities from predict's on the check images


def export_run(
    run: str | Path,
    out: str | Path,
    *,
    format: str = "onnx",
    image_shape: tuple[int, int] | None = None,
    student: bool = False,
) -> Exported:
    """Export the ensemble of the run folder ``run`` (with ``student``, its distilled student, an ensemble of one)
    to ``out``: uint8 ``N x H x W x 3`` images of any number, height and width in, ``N x classes`` probabilities
    out. It is checked at the sizes :func:`check_shapes` makes of ``image_shape`` (height, width; default the run's
    images' own size where they all have one, else the largest member's input size)."""
    exporter = format_of(format)
    exporter.check()
    classifier = EnsembleClassifier.load(run, student=student, device="cpu", precision="fp32")
    largest = max(member.model.preprocessing.input_size for member in classifier.members)
    shapes = check_shapes(*(image_shape or _run_image_shape(Path(run)) or (largest, largest)))
    rng = np.random.default_rng(0)
    examples = [rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8) for shape in shapes]
    module, traced = classifier.module, torch.from_numpy(examples[-1])
    with atomic_path(Path(out)) as path:  # verified before it takes the name
        try:
            exporter.write(_capture(module, traced), path, _metadata(classifier))
        except Exception as error:  # what the format cannot represent; find the member that holds it
            _raise_for_member(exporter, module, traced, error)
        difference = _difference(exporter.runner(path), classifier, examples)
    return Exported(Path(out), exporter.name, len(module.members), shapes, difference)


def _difference(
    run: Callable[[np.ndarray], np.ndarray], classifier: EnsembleClassifier, examples: list[np.ndarray]
) -> float:
    """The largest difference of ``run``'s probabilities from ``predict``'s on each batch of ``examples``; an
    error naming the image size where it exceeds :data:`TOLERANCE`."""
    differences = []
    for images in examples:
        difference = float(np.abs(run(images) - classifier.predict_proba(list(images))).max())
        if not difference <= TOLERANCE:
            height, width = images.shape[1:3]
            raise ZoofitError(
                f"the exported file's probabilities for {height}x{width} images differ from zoofit predict's by "
                f"{difference:.2g}"
            )
        differences.append(difference)
    return max(differences)


def check_shapes(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """The image sizes an export is checked at: ``height x width``, then a smaller and a larger one, neither
    square. The larger is the one :func:`torch.export.export` traces: its height and width differ from each
    other and from the example batch of 2, so that none is taken for another's symbol.

    >>> check_shapes(28, 28)
    ((28, 28), (14, 18), (45, 58))
    """

    def apart(rows: int, columns: int) -> tuple[int, int]:
        return (rows, columns + 1) if rows == columns else (rows, columns)

    return (
        (height, width),
        apart(max(3, height // 2), max(4, width * 2 // 3)),
        apart(height * 3 // 2 + 3, width * 2 + 2),
    )


def _capture(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``module`` as a program of uint8 ``N x H x W x 3`` images, any ``N``, ``H`` and ``W``."""
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in enumerate(("batch", "height", "width"))}
    with quiet():
        return torch.export.export(module.eval(), (example,), dynamic_shapes={INPUT: dims})


def _raise_for_member(exporter: Format, module: torch.nn.Module, example: torch.Tensor, error: Exception) -> None:
    """Raise a one-line error naming the first member that ``exporter`` cannot export alone (else ``error``'s)."""
    with tempfile.TemporaryDirectory() as folder:
        for member in module.members:
            try:
                exporter.write(_capture(member, example), Path(folder) / f"member{exporter.suffix}", {})
            except Exception as member_error:
                raise ZoofitError(
                    f"member '{member.name}' cannot be exported to {exporter.name}: {first_line(member_error)}"
                ) from member_error
    raise ZoofitError(f"the ensemble cannot be exported to {exporter.name}: {first_line(error)}") from error


def _run_image_shape(root: Path) -> tuple[int, int] | None:
    """The size of the run's images (written into its manifest where they all had one)."""
    shape = json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("image_shape")
    return (int(shape[0]), int(shape[1])) if shape else None


def _metadata(classifier: EnsembleClassifier) -> dict[str, str]:
    members: list[dict[str, Any]] = [
        {"model": m.model.spec.id, "weight": m.weight, "input_size": m.model.preprocessing.input_size,
         "gflops": m.model.gflops}
        for m in classifier.members
    ]  # fmt: skip
    return {
        "producer": f"zoofit {versions()['zoofit']}",
        "input": f"{INPUT}: uint8 N x H x W x 3 (RGB), any N, H and W",
        "output": f"{OUTPUT}: float32 N x {len(classifier.class_names)}, in the order of class_names",
        "class_names": json.dumps(list(classifier.class_names)),
        "members": json.dumps(members),
    }

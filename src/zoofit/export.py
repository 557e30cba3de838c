"""Exporting a finished run's ensemble module to a file that runs without zoofit: ONNX, or a torch.export program.

The formats are a registry (:data:`~zoofit.export_formats.FORMATS`). Each starts from one
:func:`torch.export.export` of the :class:`~zoofit.ensemble.module.EnsembleModule` on the CPU in float32, with a
dynamic batch size; where the whole fails, each member is exported alone so that the error names the one the format
cannot represent.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit import __version__
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.export_formats import FORMATS, INPUT, OUTPUT, Format, Onnx, TorchExport, format_of, quiet
from zoofit.layout import MANIFEST
from zoofit.store import atomic_path

__all__ = ["FORMATS", "Exported", "Format", "Onnx", "TorchExport", "export_run", "format_of"]


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    path: Path
    format: str
    members: int
    image_shape: tuple[int, int]
    max_difference: float | None  # of the file's probabilities against the module's on the check images (onnx)


def export_run(
    run: str | Path, out: str | Path, *, format: str = "onnx", image_shape: tuple[int, int] | None = None
) -> Exported:
    """Export the ensemble of the run folder ``run`` to ``out``: uint8 ``N x H x W x 3`` images of
    ``image_shape`` (height, width; default the run's images' own size, where they all have one) in,
    ``N x classes`` probabilities out, any ``N``."""
    exporter = format_of(format)
    exporter.check()
    classifier = EnsembleClassifier.load(run, device="cpu", precision="fp32")
    height, width = image_shape or _run_image_shape(Path(run))
    example = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8))
    module = classifier.module
    metadata = _metadata(classifier, (height, width))
    with atomic_path(Path(out)) as path:  # verified before it takes the name
        try:
            exporter.write(_capture(module, example), path, metadata)
        except Exception as error:  # what the format cannot represent; find the member that holds it
            _raise_for_member(exporter, module, example, error)
        with torch.inference_mode():
            expected = module(example).numpy()
        difference = exporter.verify(path, example, expected)
    return Exported(Path(out), exporter.name, len(module.members), (height, width), difference)


def _capture(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    with quiet():
        return torch.export.export(module.eval(), (example,), dynamic_shapes={INPUT: {0: batch}})


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


def _run_image_shape(root: Path) -> tuple[int, int]:
    """The size of the run's images (written into its manifest where they all had one)."""
    shape = json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("image_shape")
    if not shape:
        raise ParameterError("the run's images have no one size; give the size to export for in {image_shape}")
    return int(shape[0]), int(shape[1])


def _metadata(classifier: EnsembleClassifier, shape: tuple[int, int]) -> dict[str, str]:
    members: list[dict[str, Any]] = [
        {"model": m.model.spec.id, "weight": m.weight, "input_size": m.model.preprocessing.input_size,
         "gflops": m.model.gflops}
        for m in classifier.members
    ]  # fmt: skip
    return {
        "producer": f"zoofit {__version__}",
        "input": f"{INPUT}: uint8 N x {shape[0]} x {shape[1]} x 3 (RGB)",
        "output": f"{OUTPUT}: float32 N x {len(classifier.class_names)}, in the order of class_names",
        "class_names": json.dumps(list(classifier.class_names)),
        "members": json.dumps(members),
    }

"""Exporting a finished run's ensemble module to a file that runs without zoofit: ONNX, or a torch.export program.

Formats are a registry (:data:`FORMATS`): each names the packages it needs (``check``) and writes a captured
program with the run's metadata (``write``). Both start from one :func:`torch.export.export` of the
:class:`~zoofit.ensemble.module.EnsembleModule` on the CPU in float32, with a dynamic batch size; where the
whole fails, each member is exported alone so that the error names the one the format cannot represent.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoofit import __version__
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.layout import MANIFEST
from zoofit.registry import Registry
from zoofit.store import atomic_path

#: Largest difference of probabilities allowed between an exported file and the module, checked on export.
TOLERANCE = 1e-4
INPUT, OUTPUT = "images", "probabilities"


class Format:
    """An export format: the packages it needs and how it writes a program."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        """A one-line error where a package the format needs is missing."""
        missing = [name for name in self.needs if importlib.util.find_spec(name) is None]
        if missing:
            raise ZoofitError(
                f"exporting to {self.name} needs {', '.join(missing)}: install zoofit's 'export' extra "
                "(pip install 'zoofit[export]')"
            )

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        raise NotImplementedError

    def verify(self, path: Path, example: torch.Tensor, expected: np.ndarray) -> float | None:
        """The largest difference of the written file's probabilities for ``example`` from ``expected`` (None:
        not checked); an error where it exceeds :data:`TOLERANCE`."""
        return None


class Onnx(Format):
    """ONNX (opset 18) through torch's dynamo exporter; the metadata in the model's ``metadata_props``; checked
    in onnxruntime on export."""

    name, suffix = "onnx", ".onnx"
    needs = ("onnx", "onnxscript", "onnxruntime")

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        import onnx

        with _quiet():
            exported = torch.onnx.export(program, opset_version=18, input_names=[INPUT], output_names=[OUTPUT])
        model = exported.model_proto
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))

    def verify(self, path: Path, example: torch.Tensor, expected: np.ndarray) -> float:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (probs,) = session.run([OUTPUT], {INPUT: example.numpy()})
        difference = float(np.abs(probs - expected).max())
        if not difference <= TOLERANCE:
            raise ZoofitError(f"the exported file's probabilities differ from the ensemble's by {difference:.2g}")
        return difference


class TorchExport(Format):
    """A :func:`torch.export.save` program (``torch.export.load(path).module()(images)``); the metadata in
    its extra file ``zoofit.json``."""

    name, suffix = "pt2", ".pt2"

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        with path.open("wb") as handle:  # a file object: torch.export warns of a path not ending in .pt2
            torch.export.save(program, handle, extra_files={"zoofit.json": json.dumps(metadata)})


FORMATS: Registry[Format] = Registry("format", ((fmt.name, fmt) for fmt in (Onnx(), TorchExport())))


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


def format_of(name: str) -> Format:
    """The format called ``name``."""
    return FORMATS.get(name)


def _capture(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        return torch.export.export(module.eval(), (example,), dynamic_shapes={INPUT: {0: batch}})


@contextmanager
def _quiet() -> Iterator[None]:
    """Within: no warnings or log lines of torch's tracing (the outcome is reported as one line instead)."""
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


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

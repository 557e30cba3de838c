"""Export formats as a registry (:data:`FORMATS`): each names the packages it needs (``check``), writes a captured
program with the run's metadata (``write``) and, where a runtime can, checks the file (``verify``).

This module imports no torch (the CLI lists the formats before torch loads): a format imports it when it writes.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from zoofit.errors import ZoofitError
from zoofit.registry import Registry

if TYPE_CHECKING:
    import torch

#: Largest difference of probabilities allowed between an exported file and the module, checked on export.
TOLERANCE = 1e-4
INPUT, OUTPUT = "images", "probabilities"


class Format:
    """An export format: the packages it needs and how it writes a program."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    #: What it is and what runs it, in one line (``--format``'s help).
    help: ClassVar[str]
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
    help = "ONNX, for onnxruntime and any ONNX runtime (checked in onnxruntime)"
    needs = ("onnx", "onnxscript", "onnxruntime")

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        import onnx
        import torch

        with quiet():
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
    help = "a torch.export program (torch.export.load)"

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        import torch

        with path.open("wb") as handle:  # a file object: torch.export warns of a path not ending in .pt2
            torch.export.save(program, handle, extra_files={"zoofit.json": json.dumps(metadata)})


FORMATS: Registry[Format] = Registry("format", ((fmt.name, fmt) for fmt in (Onnx(), TorchExport())))


def format_of(name: str) -> Format:
    """The format called ``name``."""
    return FORMATS.get(name)


@contextmanager
def quiet() -> Iterator[None]:
    """Within: no warnings or log lines of torch's tracing (the outcome is reported as one line instead)."""
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)

"""Export formats as a registry (:data:`FORMATS`): each names the packages it needs (``check``), writes a captured
program with the run's metadata (``write``) and loads the written file as its users do (``runner``).

This module imports no torch (the CLI lists the formats before torch loads): a format imports it when it writes.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from zoofit.errors import ZoofitError
from zoofit.registry import Registry

if TYPE_CHECKING:
    import torch

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

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        """The written file, loaded as its users load it: uint8 ``N x H x W x 3`` images -> probabilities."""
        raise NotImplementedError


class Onnx(Format):
    """ONNX (opset 18) through torch's dynamo exporter; the metadata in the model's ``metadata_props``; run in
    onnxruntime."""

    name, suffix = "onnx", ".onnx"
    help = "ONNX, for onnxruntime and any ONNX runtime"
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

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: session.run([OUTPUT], {INPUT: images})[0]


class TorchExport(Format):
    """A :func:`torch.export.save` program (``torch.export.load(path).module()(images)``); the metadata in
    its extra file ``zoofit.json``."""

    name, suffix = "pt2", ".pt2"
    help = "a torch.export program (torch.export.load)"

    def write(self, program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> None:
        import torch

        with path.open("wb") as handle, quiet():  # a file object: torch.export warns of a path not ending in .pt2
            torch.export.save(program, handle, extra_files={"zoofit.json": json.dumps(metadata)})

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        import torch

        with path.open("rb") as handle, quiet():  # a file object: torch.export warns of a path not ending in .pt2
            program = torch.export.load(handle).module()

        def run(images: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return program(torch.from_numpy(images)).numpy()

        return run


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

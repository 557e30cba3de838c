"""The ensemble module, its export (ONNX in onnxruntime without zoofit, torch.export), and the CLI's export, on
conftest's finished tiny run (``run``: soups among its candidates)."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from typer.testing import CliRunner

from tests.conftest import CLASS_COLOURS, coloured_image
from zoofit import EnsembleClassifier
from zoofit.cli import app
from zoofit.export import FORMATS, export_run
from zoofit.layout import MANIFEST
from zoofit.zoo import Preprocessing, load_model
from zoofit.zoo.inference import fold_batch_norms, forward_batches, probabilities
from zoofit.zoo.transforms import resize_crop

HEIGHT, WIDTH = 20, 24  # the generated images' size (conftest's write_image_folder)


def images(count: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """``count`` generated RGB images of ``size`` (width, height), of every class's colour in turn."""
    colours = list(CLASS_COLOURS.values())
    return np.stack([np.asarray(coloured_image(colours[i % 3], size, zlib.crc32(b"%d" % i))) for i in range(count)])


def test_each_member_module_gives_the_trial_predict_paths_probabilities_for_images_of_any_size(run: Path) -> None:
    classifier = EnsembleClassifier.load(run, precision="fp32")
    entries = json.loads((run / MANIFEST).read_text())["members"]
    mixed = [*images(3), *images(2, (40, 30)), *images(2, (9, 13))]  # three sizes
    grey = list(images(3, (30, 10))[..., :1])
    for member, entry in zip(classifier.members, entries, strict=True):
        loaded = load_model(member.model.spec)  # the trial's own path: prepare_batch, then the network
        model = fold_batch_norms(loaded.model.eval(), loaded.preprocessing.input_size)
        rebuilt = EnsembleClassifier.from_entries(run, [entry], classifier.class_names, precision="fp32")
        for batch in (mixed, grey):
            expected = forward_batches(model, batch, loaded.preprocessing, probabilities, device=torch.device("cpu"),
                                       precision="fp32", batch_size=4).numpy()  # fmt: skip
            (probs,) = rebuilt.member_probabilities(batch, batch_size=2)
            np.testing.assert_allclose(probs, expected, atol=1e-6)


#: Image sizes (height, width) beyond the run's 20 x 24 that the exported files are called at: any size works.
OTHER_SIZES = ((31, 45), (14, 9))


def test_onnx_export_equals_predict_at_any_image_size_and_runs_in_onnxruntime_without_zoofit(
    run: Path, tmp_path
) -> None:
    out = tmp_path / "ensemble.onnx"
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "uint8 N x H x W x 3 images of any size in" in result.output
    assert f"of zoofit's at {HEIGHT}x{WIDTH}, 10x16, 33x50," in result.output  # the run's size, a smaller, a larger
    batches = {"run": images(200), **{f"{h}x{w}": images(5, (w, h)) for h, w in OTHER_SIZES}}
    np.savez(tmp_path / "images.npz", **batches)
    script = (
        "import sys, json, numpy as np, onnxruntime as ort\n"
        f"session = ort.InferenceSession({str(out)!r})\n"
        f"batches = np.load({str(tmp_path / 'images.npz')!r})\n"
        "probs = {name: session.run(['probabilities'], {'images': batches[name]})[0] for name in batches.files}\n"
        f"np.savez({str(tmp_path / 'probs.npz')!r}, **probs)\n"
        "meta = session.get_modelmeta().custom_metadata_map\n"
        "print(json.dumps({'classes': json.loads(meta['class_names']), 'members': len(json.loads(meta['members'])),"
        " 'input': meta['input'], 'loaded': sorted(m for m in ('zoofit', 'torch', 'timm') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    classifier = EnsembleClassifier.load(run, precision="fp32")
    assert report == {"classes": list(classifier.class_names), "members": len(classifier.members),
                      "input": "images: uint8 N x H x W x 3 (RGB), any N, H and W", "loaded": []}  # fmt: skip
    probs = np.load(tmp_path / "probs.npz")
    for name, pixels in batches.items():
        expected = classifier.predict_proba(list(pixels))  # zoofit predict's library path, one image at a time
        assert np.abs(probs[name] - expected).max() <= 1e-4, name


def test_pt2_export_loads_with_torch_alone_and_takes_any_batch_and_image_size(run: Path, tmp_path) -> None:
    exported = export_run(run, tmp_path / "ensemble.pt2", format="pt2", image_shape=(16, 16))
    assert exported.checked_shapes == ((16, 16), (8, 10), (27, 34)) and exported.max_difference <= 1e-4
    program = torch.export.load(str(exported.path)).module()
    classifier = EnsembleClassifier.load(run, precision="fp32")
    for count, (height, width) in zip((5, 1, 3), ((16, 16), *OTHER_SIZES), strict=True):
        pixels = images(count, (width, height))
        with torch.no_grad():
            probs = program(torch.from_numpy(pixels)).numpy()
        np.testing.assert_allclose(probs, classifier.predict_proba(pixels), atol=1e-5)


#: One preprocessing per interpolation, and one that resizes its inputs' shorter side to exactly 12 (crop_pct 1).
PREPROCESSINGS = [
    *(Preprocessing(12, (0.5,) * 3, (0.5,) * 3, mode, 0.875) for mode in ("bicubic", "bilinear", "nearest")),
    Preprocessing(12, (0.5,) * 3, (0.5,) * 3, "bicubic", 1.0),
]


class ResizeCrops(torch.nn.Module):
    """``resize_crop`` with each of :data:`PREPROCESSINGS`: uint8 ``N x H x W x 3`` -> ``N x 4 x 3 x 12 x 12``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.permute(0, 3, 1, 2)
        return torch.stack([resize_crop(pixels, prep) for prep in PREPROCESSINGS], dim=1)


def test_resize_crop_exported_with_symbolic_sizes_computes_what_it_does_at_any_size(tmp_path) -> None:
    import onnxruntime

    rng = np.random.default_rng(0)
    example = torch.from_numpy(rng.integers(0, 256, (2, 17, 23, 3), dtype=np.uint8))
    dims = {axis: torch.export.Dim(name, min=1) for axis, name in enumerate(("batch", "height", "width"))}
    program = torch.export.export(ResizeCrops(), (example,), dynamic_shapes={"images": dims})
    FORMATS["onnx"].write(program, tmp_path / "resize.onnx", {})
    session = onnxruntime.InferenceSession(str(tmp_path / "resize.onnx"), providers=["CPUExecutionProvider"])
    # the example's size, identity (12 x 12 at crop_pct 1), downsized, upsized, very long, one pixel, a tie (9 x 12 / 8 = 13.5)
    for height, width in ((17, 23), (12, 12), (50, 77), (9, 5), (3, 60), (1, 1), (8, 9)):
        pixels = torch.from_numpy(rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8))
        expected = ResizeCrops()(pixels)
        assert torch.equal(program.module()(pixels), expected)
        (got,) = session.run(None, {"images": pixels.numpy()})
        assert np.abs(got - expected.numpy()).max() < 0.01, (height, width)  # of 0..255: float rounding only


def test_a_member_the_format_cannot_represent_is_refused_naming_it(run: Path, tmp_path, monkeypatch) -> None:
    entry = json.loads((run / MANIFEST).read_text())["members"][0]
    network_class = type(timm.create_model(entry["arch"]))

    def data_dependent(self, x):  # a branch on the values of a tensor: torch.export cannot capture it
        logits = self.forward_head(self.forward_features(x))
        return logits if logits.sum() > 0 else -logits

    monkeypatch.setattr(network_class, "forward", data_dependent)
    out = tmp_path / "ensemble.onnx"
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--out", str(out), "--format", "pt2"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: member '{entry['model']}' cannot be exported to pt2: ")
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_a_file_that_differs_from_predict_at_a_size_is_refused_naming_the_size(
    run: Path, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("zoofit.export.TOLERANCE", -1.0)  # any difference is too large: the first size fails
    out = tmp_path / "ensemble.pt2"
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--out", str(out), "--format", "pt2"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: the exported file's probabilities for {HEIGHT}x{WIDTH} images differ from zoofit predict's by "
    )
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--run", "{tmp}/nowhere"], "run folder '{tmp}/nowhere' does not exist"),
        (["--format", "tflite"], "--format must be one of onnx, pt2, not 'tflite'"),
        (["--out", "{tmp}/file.txt/ensemble.onnx"], "--out '{tmp}/file.txt/ensemble.onnx' lies beneath"),
        (["--out", "{tmp}"], "--out '{tmp}' is a folder"),
        (["--image-shape", "20x"], "--image-shape must be H or HxW in pixels, not '20x'"),
    ],
)
def test_bad_export_arguments_are_one_line_each(run: Path, tmp_path, arguments, message) -> None:
    (tmp_path / "file.txt").write_text("a file")
    given = {"--run": str(run), "--out": str(tmp_path / "ensemble.onnx")}
    given.update(zip(arguments[::2], (value.format(tmp=tmp_path) for value in arguments[1::2]), strict=True))
    result = CliRunner().invoke(app, ["export", *(item for pair in given.items() for item in pair)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(tmp=tmp_path) in lines[0]


def test_a_missing_onnx_package_is_one_line_naming_the_extra(run: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed: import machinery finds nothing
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--out", str(tmp_path / "e.onnx")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: exporting to onnx needs onnxscript: install zoofit's 'export' extra (pip install 'zoofit[export]')"
    )

"""Images per second of a run's ensemble exported to ONNX, in onnxruntime, against zoofit's own predict path
(``EnsembleClassifier.predict_proba``, what ``zoofit predict`` runs), on the same test images, on this machine.

Both get the same decoded uint8 images in batches of 64 (decoding is not timed) and use every core; one warm-up
batch each first. Also records the largest difference of their probabilities.
Writes benchmarks/results/export-<cpu|gpu>.json.

    python benchmarks/export.py --run runs/soup-demo [--images 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import EnsembleClassifier, load_data  # noqa: E402
from zoofit.export import export_run  # noqa: E402

BATCH = 64


def images_per_second(predict, images: np.ndarray) -> tuple[float, np.ndarray]:
    predict(images[:BATCH])  # warm-up
    start = time.perf_counter()
    probs = np.concatenate([predict(images[i : i + BATCH]) for i in range(0, len(images), BATCH)])
    return len(images) / (time.perf_counter() - start), probs


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--data", default="fashion-mnist")
    arguments = parser.parse_args()
    test = load_data(arguments.data).test
    images = np.asarray(test.images[: arguments.images])
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images  # the file takes RGB
    classifier = EnsembleClassifier.load(arguments.run, device="cpu", precision="fp32")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        exported = export_run(arguments.run, Path(folder) / "ensemble.onnx", image_shape=rgb.shape[1:3])
        export_seconds = time.perf_counter() - start
        size = exported.path.stat().st_size
        session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
        onnx_speed, onnx_probs = images_per_second(lambda x: session.run(["probabilities"], {"images": x})[0], rgb)
    zoofit_speed, zoofit_probs = images_per_second(
        lambda x: classifier.predict_proba(list(x), batch_size=BATCH), images
    )
    save("export", {
        "run": str(arguments.run),
        "images": len(images),
        "image_shape": list(rgb.shape[1:]),
        "members": exported.members,
        "gflops_per_image": classifier.gflops,
        "export_seconds": round(export_seconds, 1),
        "onnx_megabytes": round(size / 2**20, 1),
        "onnxruntime_images_per_second": round(onnx_speed, 1),
        "zoofit_predict_images_per_second": round(zoofit_speed, 1),
        "speedup": round(onnx_speed / zoofit_speed, 2),
        "max_abs_difference": float(np.abs(onnx_probs - zoofit_probs).max()),
        "test_accuracy_onnx": float(np.mean(onnx_probs.argmax(1) == test.labels[: len(images)])),
        "machine": describe(),
    })  # fmt: skip


if __name__ == "__main__":
    main()

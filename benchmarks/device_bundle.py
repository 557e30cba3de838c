"""Pack what gpu_suite.py needs on a GPU machine that has no internet and takes at most 64 MiB along.

Writes the ignored folder ``.device_bundle/`` (about 48 MB): the demo weights from the zoofit cache as fp16
copies (loaded into fp32 models; half the size of the 85 MB of fp32 ones), Fashion-MNIST with only the 1,000
training images the default protocol samples left in (the others zeroed, so the splits are identical), and
``run.sh``, which sets the environment up (zoofit from the source tree, without pip) and runs the suite. Run it after
``make demo`` has filled the cache; then, on the device, ``bash .device_bundle/run.sh [gpu_suite.py [--smoke]]``
or ``bash .device_bundle/run.sh gpu_probe.py [GROUP ...]`` (``LIMIT=seconds`` caps the run, default 540).

    python benchmarks/device_bundle.py
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from zoofit.data import load_data
from zoofit.data.sources import FASHION_MNIST_DIR, FASHION_MNIST_ENV
from zoofit.store.cache import cache_root

BUNDLE = Path(__file__).resolve().parent.parent / ".device_bundle"
RUN = """#!/bin/bash
# Runs a benchmark of benchmarks/ on the GPU machine with what device_bundle.py packed.
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; touch /tmp/started
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1
export ZOOFIT_CACHE_DIR=$PWD/.device_bundle/cache ZOOFIT_FASHION_MNIST_DIR=$PWD/.device_bundle/fashion-mnist
NOTE="demo weights carried as fp16 copies (no internet there); Fashion-MNIST with only the sampled training images"
script=${1:-gpu_suite.py}
timeout "${LIMIT:-540}" python3 "benchmarks/$script" --note "$NOTE" "${@:2}" 2>&1 | tee "$OUT/${script%.py}.log"
find benchmarks/results -name "${script%.py}*-gpu.json" -newer /tmp/started -exec cp {} "$OUT/" \\;
"""


def pack_weights(target: Path) -> None:
    source = cache_root() / "weights"
    files = sorted(source.glob("*.safetensors"))
    if not files:
        raise SystemExit(f"no converted weights in {source}: run `make demo` first")
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        tensors = load_file(str(path))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(target / path.name))


def pack_fashion_mnist(target: Path) -> None:
    """The four IDX files, the training images reduced to those the default splits use (a ``--smoke`` run,
    which samples 40 others, trains on blank images: it checks the script, not the figures)."""
    source = Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(source / name, target / name)
    raw = gzip.decompress((source / "train-images-idx3-ubyte.gz").read_bytes())
    header, pixels = raw[:16], np.frombuffer(raw[16:], np.uint8).reshape(-1, 28, 28)
    index = {row.tobytes(): i for i, row in reversed(list(enumerate(pixels)))}
    splits = load_data("fashion-mnist")
    used = [
        index[np.asarray(image).reshape(28, 28).tobytes()]
        for part in (splits.train, splits.val)
        for image in part.images
    ]
    sparse = np.zeros_like(pixels)
    sparse[used] = pixels[used]
    (target / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + sparse.tobytes()))


def main() -> None:
    pack_weights(BUNDLE / "cache" / "weights")
    pack_fashion_mnist(BUNDLE / "fashion-mnist")
    (BUNDLE / "run.sh").write_text(RUN)
    size = sum(path.stat().st_size for path in BUNDLE.rglob("*") if path.is_file())
    print(f"wrote {BUNDLE} ({size / 2**20:.0f} MiB); on the device: bash .device_bundle/run.sh [gpu_suite.py]")


if __name__ == "__main__":
    main()

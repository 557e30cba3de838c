"""Labels first: the 1k protocol drawn from Fashion-MNIST's 60,000 training images written as WebDataset shards
(``wds:``) and as parquet (``hf:``), against its floor.

For each form it times ``load_data(SOURCE, train_per_class=100)`` (the splits built: 1,000 training and validation
images drawn, the 10,000 test images kept), and beside it, in the same process, the floor: one pass over the labels
alone (tarfile reading only the ``.cls`` members; pyarrow reading only the label column) plus decoding the kept
images alone (their PNG bytes already in memory, through the same decoder). The claim: building the splits takes at
most 2x the floor. Decoding all 70,000 images is timed too, what a source that decodes everything first would pay.
Parquet is timed cold (the datasets library prepares its arrow cache first) and warm.

    python benchmarks/data_sources.py            # writes benchmarks/results/data_sources-cpu.json
    python benchmarks/data_sources.py --smoke    # seconds: a small split, nothing written to results/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, describe  # noqa: E402
from tests import hub_data  # noqa: E402
from zoofit.data import DataConfig, load_data  # noqa: E402
from zoofit.data.decode import EncodedImage, decode_many  # noqa: E402
from zoofit.data.protocol import stratified_per_class  # noqa: E402

PER_CLASS = 100  # the 1k protocol: 100 images of each of the 10 classes (10 in the smoke)
REPEATS = 3


def write_forms(folder: Path, arrays: hub_data.Arrays, names: list[str]) -> dict[str, Path]:
    """The data as CLIP-benchmark shards (1,000 images each) and as parquet, written once into ``folder``."""
    shards, parquet = folder / "shards", folder / "parquet"
    if not (shards / "classnames.txt").is_file():
        hub_data.write_shards(shards, arrays, names, per_shard=1000)
    if not (parquet / "data").is_dir():
        hub_data.write_parquet(parquet, hub_data.hf_dataset_dict(arrays, names))
    return {"wds": shards, "hf": parquet}


def kept_positions(labels: np.ndarray, names: list[str], per_class: int, seed: int) -> np.ndarray:
    """The training positions the protocol keeps (its draw, then its validation holdout), as load_data draws them."""
    from zoofit.data import ImageSet

    pool = ImageSet(np.zeros((len(labels), 1, 1, 1), np.uint8), labels, tuple(names))
    return stratified_per_class(pool, per_class, np.random.default_rng(seed))  # training and validation images


def label_pass(form: str, location: Path) -> float:
    """Seconds of one pass over the labels alone, with the plain libraries."""
    start = time.perf_counter()
    if form == "wds":
        for shard in sorted(location.glob("*/*.tar")):
            with tarfile.open(shard) as archive:
                for member in archive:
                    if member.name.endswith(".cls"):
                        archive.extractfile(member).read()
    else:
        import pyarrow.parquet as pq

        for path in sorted((location / "data").glob("*.parquet")):
            pq.read_table(path, columns=["label"]).column("label").to_numpy()
    return time.perf_counter() - start


def decode_seconds(encoded: list[bytes]) -> float:
    start = time.perf_counter()
    decode_many([EncodedImage(str(i), data) for i, data in enumerate(encoded)])
    return time.perf_counter() - start


def build_seconds(source: str, per_class: int) -> tuple[float, str]:
    """Seconds to build the splits of ``source``, and their description."""
    start = time.perf_counter()
    splits = load_data(DataConfig(source, train_per_class=per_class))
    return time.perf_counter() - start, splits.describe()


def main(smoke: bool = False, workdir: Path | None = None, repeats: int = REPEATS) -> dict[str, object]:
    sizes = {"train": 600, "test": 100} if smoke else {"train": 60000, "test": 10000}
    per_class = PER_CLASS // 10 if smoke else PER_CLASS
    arrays, names = hub_data.fashion_mnist(sizes)
    folder = workdir or Path(tempfile.mkdtemp(prefix="zoofit-data-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    forms = write_forms(folder, arrays, names)
    import datasets
    import webdataset  # noqa: F401 - imported before the clocks start, as a long-lived process would have them

    datasets.disable_progress_bars()
    encoded = {split: [hub_data.png(image) for image in images] for split, (images, _) in arrays.items()}
    kept = kept_positions(arrays["train"][1], names, per_class, seed=0)
    kept_bytes = [encoded["train"][i] for i in kept] + encoded["test"]
    figures: dict[str, object] = {}
    decode_all = decode_seconds(encoded["train"] + encoded["test"])
    for form, location in forms.items():
        for path in location.rglob("*"):  # the files in the page cache for every timing, the first included
            if path.is_file():
                path.read_bytes()
        runs = []
        datasets.config.HF_DATASETS_CACHE = folder / f"datasets-cache-{time.time_ns()}"  # empty: hf's first is cold
        for repeat in range(repeats + (form == "hf")):  # hf: a cold build first, then warm ones
            cold = form == "hf" and repeat == 0
            build, described = build_seconds(f"{form}:{location}", per_class)
            floor_labels, floor_decode = label_pass(form, location), decode_seconds(kept_bytes)
            runs.append({"build_s": round(build, 3), "labels_s": round(floor_labels, 3),
                         "decode_kept_s": round(floor_decode, 3), "cold": cold})  # fmt: skip
        warm = [r for r in runs if not r["cold"]]
        best = min(warm, key=lambda r: r["build_s"])
        floor = min(r["labels_s"] for r in warm) + min(r["decode_kept_s"] for r in warm)
        figures[form] = {
            "source": f"{form}:<{form} folder>", "splits": described, "runs": runs,
            "build_s": best["build_s"], "floor_s": round(floor, 3), "ratio": round(best["build_s"] / floor, 2),
            "cold_build_s": next((r["build_s"] for r in runs if r["cold"]), None),
            "decode_everything_s": round(decode_all, 3), "kept_images": len(kept_bytes),
            "all_images": sum(sizes.values()),
        }  # fmt: skip
        print(json.dumps(runs), flush=True)
        print(f"{form}: splits in {best['build_s']:.2f} s, floor {floor:.2f} s -> {best['build_s'] / floor:.2f}x "
              f"(decoding all {sum(sizes.values())} images: {decode_all:.2f} s)")  # fmt: skip
    report = {
        "benchmark": "data_sources",
        "protocol": f"train_per_class={per_class} (val_fraction 0.2), test split whole",
        "figures": figures,
        "machine": {
            **describe(), "cpu_capability": _cpu_capability(), "load_average": os.getloadavg(), "commit": _commit()
        },
    }  # fmt: skip
    if not smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "data_sources-cpu.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workdir", type=Path, help="Where the shards and parquet are written (kept for reruns).")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="Builds per form (the fastest is kept).")
    arguments = parser.parse_args()
    main(arguments.smoke, arguments.workdir, arguments.repeats)

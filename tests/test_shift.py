"""Distribution shift: the corruptions, and the robustness report of a run."""

from __future__ import annotations

import numpy as np
import pytest

from zoofit.data import ImageSet
from zoofit.evaluate.shift import CORRUPTIONS, corrupted, sample, shift_report


def image_set(channels: int, count: int = 6, size: int = 28) -> ImageSet:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, channels))  # a gradient and a bright square
    images = np.repeat(ramp[None], count, axis=0)
    images[:, 8:20, 8:20] = 255
    images = np.clip(images + rng.normal(0, 3, images.shape), 0, 255).astype(np.uint8)
    return ImageSet(images, np.arange(count) % 2, ("a", "b"))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_keeps_shape_labels_and_changes_the_pixels(name: str, channels: int) -> None:
    clean = image_set(channels)
    shifted = corrupted(clean, name, severity=3)
    assert shifted.images.shape == clean.images.shape and shifted.images.dtype == np.uint8
    assert np.array_equal(shifted.labels, clean.labels)
    assert np.abs(shifted.images.astype(int) - clean.images).mean() > 1


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_higher_severity_moves_the_images_further(name: str) -> None:
    clean = image_set(3)
    distance = [np.abs(corrupted(clean, name, s).images.astype(int) - clean.images).mean() for s in (1, 5)]
    assert distance[1] > distance[0]


def test_corruption_is_deterministic_per_seed_and_works_on_lists_of_sizes() -> None:
    clean = image_set(3)
    assert np.array_equal(corrupted(clean, "gaussian_noise", 2).images, corrupted(clean, "gaussian_noise", 2).images)
    assert not np.array_equal(
        corrupted(clean, "gaussian_noise", 2, seed=1).images, corrupted(clean, "gaussian_noise", 2).images
    )
    mixed = ImageSet([np.zeros((30, 40, 3), np.uint8) + 90, np.zeros((20, 20, 1), np.uint8) + 200], [0, 1], ("a", "b"))
    shapes = [image.shape for image in corrupted(mixed, "pixelate", 5).images]
    assert shapes == [(30, 40, 3), (20, 20, 1)]


def test_sample_draws_sorted_distinct_indices() -> None:
    drawn = sample(5, 100, seed=3)
    assert len(set(drawn)) == 5 and list(drawn) == sorted(drawn)
    assert list(sample(500, 7)) == list(range(7))


def test_report_has_clean_each_corruption_and_their_mean() -> None:
    images = image_set(1, count=4)
    perfect = np.eye(2)[images.labels]

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        return {"right": perfect, "unsure": np.full((4, 2), 0.5)}

    report = shift_report(images, predict(images), predict, severity=2)
    assert list(report) == ["clean", *CORRUPTIONS, "mean"]
    assert report["mean"]["right"]["accuracy"] == 1.0
    assert report["mean"]["unsure"]["nll"] == pytest.approx(np.log(2))


def test_a_run_reports_robustness_and_a_rerun_reads_it_back_without_rebuilding_models(
    make_image_folder, tiny_zoo, tmp_path, monkeypatch
) -> None:
    from zoofit import EnsembleClassifier, ZooFit, load_data

    splits = load_data(str(make_image_folder(per_class=8, layout="split")))
    sweep = {"lrs": (0.01,), "steps": (6,), "batch_size": 8, "image_size": 32, "shift_images": 4}
    first = ZooFit(tiny_zoo, precision="fp32", **sweep).fit(splits, tmp_path).summary_["robustness"]
    assert first["images"] == 4 and first["severity"] == 3
    assert list(first) == ["images", "severity", "clean", *CORRUPTIONS, "mean"]
    assert set(first["clean"]) == {"ensemble", "best_single"}
    assert len(list((tmp_path / "shift").glob("*.safetensors"))) == len(CORRUPTIONS)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a finished run's shifted predictions should be read back")

    monkeypatch.setattr(EnsembleClassifier, "from_entries", no_rebuild)
    again = ZooFit(tiny_zoo, precision="fp32", **sweep).fit(splits, tmp_path).summary_["robustness"]
    assert again == first
    off = ZooFit(tiny_zoo, precision="fp32", **{**sweep, "shift_images": 0}).fit(splits, tmp_path)
    assert off.summary_["robustness"] is None

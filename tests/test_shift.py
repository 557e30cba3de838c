"""Distribution shift: the corruptions, and the robustness report of a run."""

from __future__ import annotations

import numpy as np
import pytest

from zoofit.data import ImageSet
from zoofit.evaluate.shift import CORRUPTIONS, REFERENCE_SIZE, corrupted, on_reference_grid, sample, shift_report


def image_set(channels: int, count: int = 6, size: int = 28) -> ImageSet:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, channels))  # a gradient and a bright square
    images = np.repeat(ramp[None], count, axis=0)
    images[:, 8:20, 8:20] = 255
    images = np.clip(images + rng.normal(0, 3, images.shape), 0, 255).astype(np.uint8)
    return ImageSet(images, np.arange(count) % 2, ("a", "b"))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_keeps_labels_and_channels_and_changes_the_pixels_on_the_reference_grid(name, channels) -> None:
    clean = image_set(channels)
    reference = on_reference_grid(clean)
    shifted = corrupted(clean, name, severity=3)
    assert shifted.images.shape == reference.images.shape == (6, REFERENCE_SIZE, REFERENCE_SIZE, channels)
    assert shifted.images.dtype == np.uint8 and np.array_equal(shifted.labels, clean.labels)
    assert np.abs(shifted.images.astype(int) - reference.images).mean() > 1


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_severity_moves_a_small_smooth_image_further(name: str) -> None:
    smooth = ImageSet(np.repeat(np.linspace(0, 255, 28, dtype=np.uint8)[None, None, :, None], 28, axis=1), [0], ("a",))
    smooth.images[:, 8:20, 8:20] = 255
    reference = on_reference_grid(smooth).images.astype(int)
    distance = [np.abs(corrupted(smooth, name, s).images - reference).mean() for s in (1, 2, 3, 4, 5)]
    assert distance[0] > 0 and distance == sorted(distance)


def test_contrast_keeps_each_channels_mean() -> None:
    flat = ImageSet(np.tile(np.array([200, 0, 20], np.uint8), (1, 224, 224, 1)), [0], ("a",))
    assert np.array_equal(corrupted(flat, "contrast", 5).images, flat.images)


def test_corruption_is_deterministic_per_seed_and_works_on_lists_of_sizes() -> None:
    clean = image_set(3)
    assert np.array_equal(corrupted(clean, "gaussian_noise", 2).images, corrupted(clean, "gaussian_noise", 2).images)
    assert not np.array_equal(
        corrupted(clean, "gaussian_noise", 2, seed=1).images, corrupted(clean, "gaussian_noise", 2).images
    )
    assert np.array_equal(  # an image's noise does not depend on the sample it is drawn in
        corrupted(clean.subset([4, 1]), "gaussian_noise", 2).images,
        corrupted(clean, "gaussian_noise", 2).images[[4, 1]],
    )
    mixed = ImageSet([np.zeros((30, 40, 3), np.uint8) + 90, np.zeros((20, 20, 1), np.uint8) + 200], [0, 1], ("a", "b"))
    shapes = [image.shape for image in corrupted(mixed, "pixelate", 5).images]
    assert shapes == [(224, 299, 3), (224, 224, 1)]


@pytest.mark.parametrize(("name", "severity"), [("snow", 3), ("jpeg", 0), ("jpeg", 6)])
def test_an_unknown_corruption_or_severity_is_refused(name: str, severity: int) -> None:
    with pytest.raises(ValueError, match="severities 1-5"):
        corrupted(image_set(1), name, severity)


def test_sample_draws_sorted_distinct_indices() -> None:
    drawn = sample(5, 100, seed=3)
    assert len(set(drawn)) == 5 and list(drawn) == sorted(drawn)
    assert list(sample(500, 7)) == list(range(7))


def test_report_has_clean_each_corruption_and_their_mean() -> None:
    images = image_set(1, count=4)
    seen = []

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        seen.append(shifted.images.shape[1])
        return {"right": np.eye(2)[shifted.labels], "unsure": np.full((4, 2), 0.5)}

    report = shift_report(images, predict, severity=2)
    assert list(report) == ["clean", *CORRUPTIONS, "mean"]
    assert seen == [REFERENCE_SIZE] * (1 + len(CORRUPTIONS))  # the clean images too go through the grid
    assert report["mean"]["right"]["accuracy"] == 1.0
    assert report["mean"]["unsure"]["nll"] == pytest.approx(np.log(2))


def test_a_run_reports_robustness_and_a_rerun_reads_it_back_without_rebuilding_models(
    make_image_folder, tiny_zoo, tmp_path, monkeypatch
) -> None:
    from zoofit import EnsembleClassifier, ZooFit, load_data, preset

    splits = load_data(str(make_image_folder(per_class=8, layout="split")))
    sweep = {"lrs": (0.01,), "steps": (6,), "batch_size": 8, "image_size": 32, "shift_images": 4}
    quick = preset("quick")
    fit = ZooFit(tiny_zoo, precision="fp32", sweep=quick.override(**sweep)).fit(splits, tmp_path)
    first = fit.result_.robustness
    assert first.images == 4 and first.severity == 3
    assert list(first.conditions) == ["clean", *CORRUPTIONS, "mean"]
    assert set(first.conditions["clean"]) == {"ensemble", "best_single"}
    trials = {member.trial for member in fit.result_.ensemble.members} | set(fit.result_.best_single.trials)
    stored = list((tmp_path / "shift").glob("*.safetensors"))
    assert len(stored) == len(trials) * (1 + len(CORRUPTIONS))  # one file per trial and condition

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a finished run's shifted predictions should be read back")

    monkeypatch.setattr(EnsembleClassifier, "from_entries", no_rebuild)
    again = ZooFit(tiny_zoo, precision="fp32", sweep=quick.override(**sweep)).fit(splits, tmp_path).result_.robustness
    assert again == first
    off = ZooFit(tiny_zoo, precision="fp32", sweep=quick.override(**{**sweep, "shift_images": 0})).fit(splits, tmp_path)
    assert off.result_.robustness is None

"""One trial on a tiny model: it learns, it is deterministic, and its pieces behave."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.conftest import tiny_spec
from tests.test_zoo import NormFirst, with_statistics
from zoofit.data import ImageSet, load_data
from zoofit.errors import ParameterError
from zoofit.finetune import train_trial
from zoofit.finetune.freeze import early_layers, freeze_early_layers
from zoofit.finetune.trial import augment, batch_indices, new_head, warmup_cosine
from zoofit.sweep_config import SearchSettings, SweepConfig, TrialConfig, preset
from zoofit.zoo import load_model
from zoofit.zoo.inference import frozen_batch_norms_folded, pre_logits

CPU = torch.device("cpu")


def fine_tune(splits, seed: int = 0, steps: int = 30):
    config = TrialConfig(lr=0.01, steps=steps, batch_size=12, image_size=32, seed=seed)
    return train_trial(load_model(tiny_spec()), splits, config, device=CPU, precision="fp32")


@pytest.fixture
def easy_splits(make_image_folder):
    return load_data(str(make_image_folder(per_class=12, layout="split")))


def test_a_trial_learns_an_easy_task(easy_splits) -> None:
    trained = fine_tune(easy_splits)
    assert trained.losses[-5:].mean() < trained.losses[:5].mean() * 0.7
    val_accuracy = np.mean(trained.val_probs.argmax(1) == easy_splits.val.labels)
    assert val_accuracy > 0.5  # chance is 1/3
    assert trained.test_probs.shape == (len(easy_splits.test), 3)
    np.testing.assert_allclose(trained.val_probs.sum(1), 1.0, rtol=1e-5)


def test_a_trial_is_deterministic_on_cpu(easy_splits) -> None:
    first, second = fine_tune(easy_splits, steps=8), fine_tune(easy_splits, steps=8)
    np.testing.assert_array_equal(first.losses, second.losses)
    np.testing.assert_array_equal(first.test_probs, second.test_probs)
    assert not np.array_equal(first.losses, fine_tune(easy_splits, seed=1, steps=8).losses)


def test_a_frozen_trial_keeps_the_stem_and_first_stages_as_pretrained(easy_splits) -> None:
    loaded = load_model(tiny_spec())  # test_resnet: conv1/bn1 at stride 2, layer1 at 4, layer2 at 8
    before = {name: tensor.clone() for name, tensor in loaded.model.state_dict().items()}
    config = TrialConfig(lr=0.05, steps=6, batch_size=12, image_size=32, freeze_stride=4)
    after = train_trial(loaded, easy_splits, config, device=CPU, precision="fp32").state
    early = [name for name in before if name.startswith(("conv1.", "bn1.", "layer1."))]
    assert any(name.endswith("running_mean") for name in early)  # statistics stay as well as weights
    assert all(torch.equal(before[name], after[name]) for name in early)
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])


def test_frozen_batch_norms_fold_while_training_and_come_back_after() -> None:
    model = with_statistics(load_model(tiny_spec(arch="test_efficientnet")).model)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        expected = pre_logits(model, inputs)
    frozen = freeze_early_layers(model.train(), 4, 32)
    stem_norm = model.bn1
    with frozen_batch_norms_folded(model, frozen, 32):
        assert model.bn1 is not stem_norm and model.training and model.blocks[2].training  # the rest still trains
        with torch.inference_mode():
            torch.testing.assert_close(pre_logits(model.eval(), inputs), expected, rtol=1e-4, atol=1e-4)
    assert model.bn1 is stem_norm and isinstance(model.bn1, torch.nn.BatchNorm2d)


def test_a_frozen_norm_that_does_not_follow_its_convolution_is_not_folded() -> None:
    model = with_statistics(NormFirst())
    norm = model.norm
    with frozen_batch_norms_folded(model, [model.conv, model.norm], 16):
        assert model.norm is norm


def test_early_layers_stop_at_the_stage_and_spare_shared_containers() -> None:
    model = load_model(tiny_spec(arch="test_efficientnet")).model  # blocks.0 at stride 2, blocks.1 at 4
    names = {id(module): name for name, module in model.named_modules()}
    early = {names[id(module)] for module in early_layers(model, 4, 32)}
    assert {"conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.1.0.conv_pwl"} <= early
    assert "blocks" not in early and not any(name.startswith(("blocks.2", "conv_head")) for name in early)
    assert early_layers(model, 1, 32) == [] and early_layers(load_model(tiny_spec(arch="test_vit")).model, 8, 32) == []


class LateRegistered(torch.nn.Module):
    """A model whose last layer is registered first, as CoaT registers its later patch embeddings early."""

    def __init__(self, last_stage: str = "stage") -> None:
        super().__init__()
        self.feature_info = [{"module": "stem", "reduction": 2}, {"module": last_stage, "reduction": 4}]
        self.head = torch.nn.Conv2d(4, 4, 1)
        self.stem = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.stage = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage(self.stem(x)))


def test_early_layers_follow_the_forward_pass_not_the_registration_order(caplog) -> None:
    model = LateRegistered().train()
    assert early_layers(model, 4, 16) == [model.stem, model.stage] and model.training  # flags put back
    with caplog.at_level(logging.INFO, logger="zoofit"):
        assert early_layers(LateRegistered("stages.1"), 4, 16) == []
    assert "names a stage 'stages.1' that the model lacks" in caplog.text


def test_new_head_starts_at_zero() -> None:
    model = load_model(tiny_spec()).model
    new_head(model, 7)
    head = model.get_classifier()
    assert head.out_features == 7 and not head.weight.any() and not head.bias.any()


def test_schedule_warms_up_then_decays_to_zero() -> None:
    factor = warmup_cosine(100, 0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(99) < 0.01
    assert all(factor(s) >= factor(s + 1) for s in range(10, 99))


def test_batches_cover_every_image_each_pass() -> None:
    batches = batch_indices(10, 4, np.random.default_rng(0))
    first_pass = np.concatenate([next(batches) for _ in range(5)])  # 20 indices = two passes
    assert sorted(first_pass[:10]) == list(range(10)) and sorted(first_pass[10:]) == list(range(10))


def test_augment_keeps_shape_and_moves_pixels() -> None:
    inputs = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    config = TrialConfig(lr=0.1, steps=1, batch_size=2, image_size=16, shift=0.25)
    out = augment(inputs, config, torch.Generator().manual_seed(0))
    assert out.shape == inputs.shape and not torch.equal(out, inputs)


def test_augment_crops_each_image_at_its_own_offset() -> None:
    inputs = torch.randn(5, 3, 12, 12)
    config = TrialConfig(lr=0.1, steps=1, batch_size=5, image_size=12, shift=0.25, flip=False)
    out = augment(inputs, config, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 7, (5, 2), generator=torch.Generator().manual_seed(3))  # the same draws
    padded = torch.nn.functional.pad(inputs, (3, 3, 3, 3), mode="reflect")
    for image, (y, x) in enumerate(offsets.tolist()):
        assert torch.equal(out[image], padded[image, :, y : y + 12, x : x + 12])


def test_sweep_grid_and_validation() -> None:
    config = SweepConfig().override(lrs=(0.1, 0.2), steps=(5, 10), image_size=32)
    assert [(t.lr, t.steps) for t in config.trials()] == [(0.1, 5), (0.2, 5), (0.1, 10), (0.2, 10)]
    assert {t.image_size for t in config.trials(image_size=48)} == {48}  # the size each model was ranked at
    with pytest.raises(ParameterError, match="^top_k must be at least 1, not 0$"):  # as Python names it
        config.override(top_k=0)
    with pytest.raises(ParameterError, match=r"^freeze_stride must be whole numbers of at least 0, not \(8, -1\)$"):
        SweepConfig(search=SearchSettings(freeze_stride=(8, -1))).validate()
    with pytest.raises(ParameterError, match="^top_kk is not a sweep setting; the settings are top_k, lrs,"):
        config.override(top_kk=3)


def test_each_depth_is_a_trial_of_its_own_and_shows_in_its_label() -> None:
    config = SweepConfig().override(lrs=(0.1, 0.2), steps=(5,), freeze_stride=(8, 0))
    trials = config.trials()
    assert [(t.freeze_stride, t.lr) for t in trials] == [(8, 0.1), (8, 0.2), (0, 0.1), (0, 0.2)]
    assert trials[0].label() == "lr=0.1,steps=5,freeze=8,seed=0" and trials[2].depth() == "freeze=0"


def test_each_setting_is_routed_to_its_group_by_name() -> None:
    config = preset("quick").override(top_k=5, batch_size=16, selection="bagged", shift_severity=5, time_limit=60)
    assert (config.search.top_k, config.training.batch_size, config.ensemble.selection) == (5, 16, "bagged")
    assert (config.evaluation.shift_severity, config.budget.time_limit, config.name) == (5, 60, "quick")
    assert config.value("bags") == 20 and preset("quick").search.lrs == (0.01,)  # the preset itself is unchanged


def test_small_images_get_the_small_image_size_unless_a_size_is_set() -> None:
    paper = preset("paper").search
    assert paper.resolution(28 * 28) == 128 == paper.small_image_size
    assert preset("paper").override(image_size=64).search.resolution(28 * 28) == 64
    assert SearchSettings().resolution(28 * 28) is None  # no small-image size: each model's own
    own = preset("paper").override(small_image_size=None).search  # None: each model's own, whatever the data
    assert own.resolution(28 * 28) is None
    assert ImageSet([np.zeros((5, 7, 3), np.uint8), np.zeros((9, 4, 1), np.uint8)], [0, 0], ("a",)).largest_area() == 36


def test_presets_and_overrides() -> None:
    quick, paper = preset("quick"), preset("paper")
    assert quick.search.image_size is not None and paper.search.image_size is None  # paper: each model's own
    assert paper.search.resolution(96 * 96) is None  # ... for images of 96 x 96 and more
    assert paper.search.lrs == (0.003, 0.01, 0.03) and paper.search.steps == (500,)
    assert paper.training.batch_size == 64 and paper.search.freeze_stride == (0,) and quick.search.freeze_stride == (8,)
    assert paper.ensemble.refit and not quick.ensemble.refit
    assert paper.ensemble.selection == quick.ensemble.selection == "greedy"
    assert paper.ensemble.safeguard and quick.ensemble.safeguard  # benchmarks/results/selection_safeguard-cpu.json
    assert (paper.ensemble.seed_replicas, quick.ensemble.seed_replicas) == (2, 0)  # quick: the demo's time
    assert paper.ensemble.members == ("trial", "soup", "linear") and quick.ensemble.members == ("trial", "linear")
    assert paper.distill.distill and not quick.distill.distill  # benchmarks/results/distill-cpu.json
    assert paper.override(seed_baseline=4).other_seeds() == 3 and paper.other_seeds() == 2  # shared, not summed
    assert {t.freeze_stride for t in quick.trials()} == {8}
    assert quick.override(top_k=4).search.top_k == 4 and quick.override(top_k=4).search.lrs == quick.search.lrs
    with pytest.raises(ParameterError, match="preset must be one of quick, paper, not 'huge'"):
        preset("huge")

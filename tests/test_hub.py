"""The public zoo, offline: presets and patterns over timm's pretrained tags, licences, ``zoo list``, and ranking
from a real Hugging Face hub cache of random-weight checkpoints under real timm names (``HF_HUB_OFFLINE``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from tests.conftest import tiny_spec, write_random_checkpoints
from zoofit import Ranker, load_data
from zoofit.cli import app
from zoofit.errors import ParameterError, ZoofitError
from zoofit.zoo import ModelSpec, Zoo, load_model, load_zoo
from zoofit.zoo.hub import upstream_of
from zoofit.zoo.load import assigned, count_gflops
from zoofit.zoo.schemes import prefetch_weights

runner = CliRunner()


@pytest.mark.parametrize(("preset", "least", "most_params"), [("hub-diverse", 30, 105.0), ("hub-mobile", 10, 10.0)])
def test_every_preset_entry_is_a_pretrained_timm_tag(preset: str, least: int, most_params: float) -> None:
    zoo = load_zoo(preset)
    tags = set(timm.list_pretrained())
    assert len(zoo) >= least
    for spec in zoo.models:
        assert spec.location in tags and spec.id == spec.location
        assert spec.params is not None and spec.params <= most_params
        assert spec.license == timm.models.get_pretrained_cfg(spec.location).license and spec.upstream


def test_the_diverse_preset_spans_six_upstream_families() -> None:
    upstreams = {spec.upstream for spec in load_zoo("hub-diverse").models}
    assert len(upstreams) >= 6
    for family in ("CLIP", "SigLIP", "DINOv2", "MAE", "BiT", "ImageNet-21k", "weakly supervised"):
        assert any(family in upstream for upstream in upstreams), family


def test_a_pattern_expands_over_timm_tags_in_a_mix_with_presets() -> None:
    zoo = load_zoo("demo, timm:test_vit*, timm:test_vit.r160_in1k", exclude="test_vit2*,efficientnet_lite?")
    assert [spec.id for spec in zoo.models] == [
        "mobilenetv2_imagenet", "mobilenetv2_dogs", "test_vit3.r160_in1k", "test_vit.r160_in1k"
    ]  # fmt: skip
    vit = zoo.models[-1]
    assert (vit.weights, vit.arch, vit.license, vit.upstream) == (
        "timm:test_vit.r160_in1k", "test_vit", "apache-2.0", "ImageNet-1k"
    )  # fmt: skip
    assert vit.identity() == ModelSpec(id="x", arch="test_vit", weights="timm:test_vit.r160_in1k").identity()


def test_upstreams_come_from_the_tags() -> None:
    assert upstream_of("vit_small_patch14_dinov2.lvd142m") == "self-supervised DINOv2 (LVD-142M)"
    assert upstream_of("vit_base_patch16_clip_224.openai") == "CLIP image-text (web-scale)"
    assert upstream_of("convnext_tiny.fb_in22k") == "ImageNet-21k/22k"


def test_a_pattern_that_matches_nothing_is_named() -> None:
    with pytest.raises(ZoofitError, match=r"'timm:nothing_\*' matches no pretrained timm model"):
        load_zoo("timm:test_vit*,timm:nothing_*")


def test_licences_keep_only_models_under_them() -> None:
    zoo = load_zoo("demo,timm:test_resnet*", licenses="mit, bsd-3-clause")
    assert [spec.id for spec in zoo.models] == ["mobilenetv2_imagenet", "mobilenetv2_dogs"]  # "MIT" in the preset
    with pytest.raises(ParameterError, match="licenses keep none of the models of zoo 'demo'; their licences are"):
        load_zoo("demo", licenses="gpl-3.0")
    with pytest.raises(ParameterError, match="exclude leaves none of the 5 models"):
        load_zoo("demo", exclude="*")


def test_cli_zoo_list_shows_what_a_pattern_expands_to() -> None:
    result = runner.invoke(app, ["zoo", "list", "timm:test_vit*", "--exclude", "test_vit2*", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["id"] for row in rows] == ["test_vit3.r160_in1k", "test_vit.r160_in1k"]
    assert rows[1] == {
        "id": "test_vit.r160_in1k", "weights": "timm:test_vit.r160_in1k", "upstream": "ImageNet-1k", "params_m": 0.4,
        "gflops": rows[1]["gflops"], "input_size": 160, "fixed_input_size": True, "license": "apache-2.0",
    }  # fmt: skip
    assert rows[1]["gflops"] > 0
    table = runner.invoke(app, ["zoo", "list", "hub-mobile"])
    assert table.exit_code == 0 and "mobilenetv3_small_100.lamb_in1k" in table.output and "apache-2.0" in table.output
    refused = runner.invoke(app, ["zoo", "list", "demo", "--licenses", "gpl-3.0"])
    assert refused.exit_code != 0 and refused.output.startswith("error: --licenses keep none")


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache, read offline."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    return cache


def test_a_pattern_ranks_from_the_hub_cache_and_a_missing_model_is_recorded(
    offline_hub: Path, make_image_folder, tmp_path: Path
) -> None:
    write_random_checkpoints(offline_hub, ["test_resnet.r160_in1k", "test_vit.r160_in1k", "test_vit3.r160_in1k"])
    data = make_image_folder(per_class=3)
    arguments = ["rank", "--data", str(data), "--zoo", "timm:test_resnet*,timm:test_vit*", "--out", str(tmp_path / "r")]
    result = runner.invoke(app, [*arguments, "--exclude", "test_vit3*"])
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert {row["model"] for row in ranking["ranked"]} == {"test_resnet.r160_in1k", "test_vit.r160_in1k"}
    assert [row["model"] for row in ranking["failed"]] == ["test_vit2.r160_in1k"]
    assert "cannot load timm weights 'test_vit2.r160_in1k'" in ranking["failed"][0]["reason"]
    assert {row["input_size"] for row in ranking["ranked"]} == {160}
    assert "1 skipped" in result.output


class RecordingProgress:
    """Every description each task had."""

    def __init__(self) -> None:
        self.descriptions: list[str] = []

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[RecordingProgress]:
        self.descriptions.append(f"{description} /{total}")
        yield self

    def advance(self, amount: int = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        self.descriptions.append(description)


def test_non_finite_features_are_a_recorded_failure_on_one_bar(make_image_folder, tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = timm.create_model("test_resnet").state_dict()
    state["conv1.0.weight"] = torch.full_like(state["conv1.0.weight"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"))
    zoo = Zoo("mixed", (tiny_spec(), tiny_spec("nan", weights=f"file:{tmp_path / 'nan.safetensors'}")))
    progress = RecordingProgress()
    ranker = Ranker(zoo).fit(load_data(str(make_image_folder(per_class=3))), progress=progress)
    assert [row.model for row in ranker.ranking_] == ["tiny_resnet"]
    assert "model 'nan' gave non-finite features for 9 of 9 images at 32 px" in ranker.skipped_[0].reason
    assert progress.descriptions == ["ranking 2 models /2", "ranking 2 models, 1 failed"]


def test_the_licence_of_every_ensemble_member_is_in_the_summary_and_report(make_image_folder, tmp_path: Path) -> None:
    from zoofit import ZooFit, preset
    from zoofit.report import html_report
    from zoofit.result import RunResult

    zoo = Zoo("licensed", (replace(tiny_spec(), license="mit"), replace(tiny_spec("tiny_b"), license="apache-2.0")))
    sweep = preset("quick").override(lrs=(0.01,), steps=(4,), batch_size=8, image_size=32, shift_images=0)
    splits = load_data(str(make_image_folder(per_class=6, layout="split")))
    ZooFit(zoo, precision="fp32", sweep=sweep, workers=1, licenses="MIT").fit(splits, tmp_path)
    members = RunResult.read(tmp_path).ensemble.members
    assert [(member.model, member.license) for member in members] == [("tiny_resnet", "mit")]
    assert "[mit]" in html_report(tmp_path)


META_ARCHS = ["test_resnet.r160_in1k", "test_vit.r160_in1k", "test_efficientnet.r160_in1k", "test_convnext.r160_in1k"]


def test_hub_models_built_on_the_meta_device_compute_what_timm_builds(offline_hub: Path) -> None:
    write_random_checkpoints(offline_hub, META_ARCHS, seed=3)
    inputs = torch.randn(2, 3, 160, 160)
    for name in META_ARCHS:
        cfg = timm.models.get_pretrained_cfg(name)
        state = timm.models.load_state_dict_from_hf(cfg.hf_hub_id)
        assert assigned(lambda name=name: timm.create_model(name), state) is not None  # the meta path is taken
        ours = load_model(ModelSpec(id=name, arch=name.split(".")[0], weights=f"timm:{name}")).model
        theirs = timm.create_model(name, pretrained=True).eval()
        assert all(parameter.device.type == "cpu" for parameter in ours.parameters())
        with torch.no_grad():
            torch.testing.assert_close(ours(inputs), theirs(inputs))


def test_models_with_computed_buffers_are_built_for_real(tmp_path: Path) -> None:
    with torch.device("meta"):
        state = timm.create_model("levit_128s").state_dict()
    assert assigned(lambda: timm.create_model("levit_128s"), state) is None  # attention_bias_idxs is computed
    torch.manual_seed(0)
    real = timm.create_model("test_vit").state_dict()
    save_file(real, str(tmp_path / "w.safetensors"))
    loaded = load_model(ModelSpec(id="v", arch="test_vit", weights=f"file:{tmp_path / 'w.safetensors'}")).model
    assert all(torch.equal(tensor, real[name]) for name, tensor in loaded.state_dict().items())


def test_prefetching_finds_the_checkpoint_in_the_cache_offline(offline_hub: Path) -> None:
    write_random_checkpoints(offline_hub, ["test_resnet.r160_in1k"])
    prefetch_weights(ModelSpec(id="r", arch="test_resnet", weights="timm:test_resnet.r160_in1k"))  # a cache hit
    with pytest.raises(Exception, match="offline|cache"):  # noqa: PT011 - the hub's own error; the ranking ignores it
        prefetch_weights(ModelSpec(id="v", arch="test_vit", weights="timm:test_vit.r160_in1k"))


def test_the_zoo_scale_benchmark_runs_its_smoke(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "zoo_scale.json"
    command = [sys.executable, "benchmarks/zoo_scale.py", "--smoke", "--images", "20", "--out", str(out)]
    subprocess.run(command, check=True, cwd=Path(__file__).parents[1], capture_output=True)
    figures = json.loads(out.read_text())
    assert figures["models"] == 5 and figures["zoofit"]["ranked"] + len(figures["zoofit"]["failed"]) == 5
    assert figures["plain_steady_sum_s"] > 0 and len(figures["per_model"]) + len(figures["naive_loop"]["failed"]) == 5


def test_a_model_that_cannot_be_built_on_the_meta_device_is_built_for_real() -> None:
    def reads_a_value() -> torch.nn.Module:
        return torch.nn.Linear(int(torch.ones(1).sum().item()), 2)  # .item() has no value on the meta device

    assert assigned(reads_a_value, {}) is None


def test_counting_gflops_leaves_a_shared_module_as_it_was() -> None:
    shared = torch.nn.Conv2d(3, 3, 1)  # coat's positional encodings are one module under several parents
    model = torch.nn.Sequential(shared, torch.nn.Sequential(shared))
    before = {name: tensor for name, tensor in model.named_parameters(remove_duplicate=False)}
    assert count_gflops(model, 8) == pytest.approx(2 * 2 * 9 * 64 / 1e9, rel=0.5)
    assert all(tensor is before[name] for name, tensor in model.named_parameters(remove_duplicate=False))

"""Hugging Face ``transformers`` image models as zoo members, offline: a real hub cache of tiny random-weight
ViT, ConvNeXt, Swin and DINOv2 checkpoints with their image-processor configs and model cards; ranked, fine-tuned,
predicted and exported like timm models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from zoofit import EnsembleClassifier, Ranker, ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.errors import ModelError, ZoofitError
from zoofit.zoo import ModelSpec, load_model, load_zoo
from zoofit.zoo.architectures import image_processor_preprocessing
from zoofit.zoo.hub import model_facts
from zoofit.zoo.load import assigned, create_model
from zoofit.zoo.schemes import prefetch_weights

runner = CliRunner()
REVISION = "1" * 40
CARD = "---\nlicense: apache-2.0\ndatasets:\n- food101\n- imagenet-1k\n---\n# tiny vit\n"


def tiny_models() -> dict[str, tuple[torch.nn.Module, object]]:
    """Tiny random-weight transformers image classifiers and their image processors, by repo name."""
    from transformers import (
        BitImageProcessor,
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessor,
        Dinov2Config,
        Dinov2Model,
        SwinConfig,
        SwinForImageClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    square = ViTImageProcessor(size={"height": 32, "width": 32})
    vit = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, num_labels=5)  # fmt: skip
    swin = SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                      num_labels=3)  # fmt: skip
    dino = Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        mlp_ratio=2)  # fmt: skip
    return {
        "tiny/vit": (ViTForImageClassification(vit), square),
        "tiny/convnext": (
            ConvNextForImageClassification(
                ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=4)
            ),
            ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875),
        ),
        "tiny/swin": (SwinForImageClassification(swin), square),
        "tiny/dinov2": (
            Dinov2Model(dino),
            BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, do_center_crop=True),
        ),
    }


def write_transformers_cache(cache: Path) -> dict[str, torch.nn.Module]:
    """Each tiny model saved in the hub cache layout (``refs/main`` naming a snapshot folder), with its
    image-processor config; the ViT with a model card."""
    models = tiny_models()
    for repo, (model, processor) in models.items():
        folder = cache / f"models--{repo.replace('/', '--')}"
        snapshot = folder / "snapshots" / REVISION
        model.save_pretrained(snapshot)
        processor.save_pretrained(snapshot)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(REVISION)
        if repo == "tiny/vit":
            (snapshot / "README.md").write_text(CARD)
    return {repo: model.eval() for repo, (model, _) in models.items()}


@pytest.fixture
def transformers_hub(tmp_path: Path, monkeypatch) -> dict[str, torch.nn.Module]:
    """The tiny models in a Hugging Face hub cache, read offline."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    return write_transformers_cache(cache)


def test_each_model_computes_what_transformers_computes_and_its_features_feed_its_classifier(
    transformers_hub: dict[str, torch.nn.Module],
) -> None:
    images = torch.randn(2, 3, 32, 32)
    for repo, theirs in transformers_hub.items():
        loaded = load_model(ModelSpec(id=repo, arch=f"transformers:{repo}", weights=f"transformers:{repo}"))
        model = loaded.model
        with torch.no_grad():
            features = model.forward_head(model.forward_features(images), pre_logits=True)
            output = theirs(pixel_values=images)
            if hasattr(output, "logits"):
                torch.testing.assert_close(model(images), output.logits)
                torch.testing.assert_close(model.get_classifier()(features), output.logits)
            else:  # a backbone: its pooled output is the feature, no head
                torch.testing.assert_close(features, output.pooler_output)
        assert features.shape == (2, loaded.feature_dim)


def test_the_image_processor_config_gives_the_preprocessing(transformers_hub) -> None:
    vit, convnext, dino = (image_processor_preprocessing(f"tiny/{name}") for name in ("vit", "convnext", "dinov2"))
    assert (vit.input_size, vit.crop_pct, vit.interpolation, vit.mean) == (32, 1.0, "bilinear", (0.5, 0.5, 0.5))
    assert (convnext.input_size, convnext.crop_pct, convnext.interpolation) == (32, 0.875, "bicubic")
    assert (dino.input_size, dino.crop_pct, dino.mean[0]) == (32, 32 / 36, pytest.approx(0.4815, abs=1e-4))


def test_a_zoo_of_transformers_models_tells_its_upstream_params_and_licence(transformers_hub) -> None:
    zoo = load_zoo("transformers:tiny/vit,transformers:tiny/convnext")
    vit = zoo.models[0]
    assert (vit.arch, vit.upstream, vit.license) == ("transformers:tiny/vit", "food101, imagenet-1k", "apache-2.0")
    facts = model_facts(vit)
    assert facts["params_m"] == round(sum(p.numel() for p in transformers_hub["tiny/vit"].parameters()) / 1e6, 1)
    assert (facts["input_size"], facts["fixed_input_size"]) == (32, True)
    listed = runner.invoke(app, ["zoo", "list", "transformers:tiny/vit,transformers:tiny/swin"])
    assert listed.exit_code == 0, listed.output
    assert "food101" in listed.output and "apache-2.0" in listed.output


def test_a_fine_tuned_checkpoint_rebuilds_on_the_meta_device(transformers_hub, tmp_path: Path) -> None:
    spec = ModelSpec(id="v", arch="transformers:tiny/vit", weights="transformers:tiny/vit", num_classes=3)
    model = load_model(spec).model
    assert model.num_classes == 3
    save_file(model.state_dict(), str(tmp_path / "trained.safetensors"))
    trained = replace(spec, weights=f"file:{tmp_path / 'trained.safetensors'}")
    assert assigned(lambda: create_model(trained, 3), model.state_dict()) is not None  # no random initialisation
    rebuilt = load_model(trained).model
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), model(images))


def test_rank_fine_tune_predict_and_export_offline_with_a_missing_checkpoint_skipped(
    transformers_hub, make_image_folder, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    zoo = "transformers:tiny/vit,transformers:tiny/convnext,transformers:tiny/swin,transformers:tiny/dinov2,"
    zoo += "transformers:tiny/absent"
    data = make_image_folder(per_class=6, layout="split")
    splits = load_data(str(data))
    ranker = Ranker(load_zoo(zoo), image_size=32).fit(splits)
    assert {row.model for row in ranker.ranking_} == {f"tiny/{name}" for name in ("vit", "convnext", "swin", "dinov2")}
    assert ranker.skipped_[0].model == "tiny/absent"
    assert "cannot load transformers model 'tiny/absent'" in ranker.skipped_[0].reason

    sweep = preset("quick").override(top_k=1, lrs=(0.01,), steps=(4,), batch_size=8, image_size=32, shift_images=0)
    run = tmp_path / "run"
    ZooFit("transformers:tiny/convnext", sweep=sweep, precision="fp32", workers=1).fit(splits, run)
    images = [str(path) for path in sorted((data / "test").rglob("*.png"))]
    classifier = EnsembleClassifier.load(run, device="cpu", precision="fp32")
    probs = classifier.predict_proba(images)
    assert probs.shape == (len(images), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    exported = runner.invoke(app, ["export", "--run", str(run), "--out", str(tmp_path / "model.onnx")])
    assert exported.exit_code == 0, exported.output
    import onnxruntime

    from zoofit.data.decode import decode_image

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    batch = np.stack([decode_image(Path(image)) for image in images])
    (onnx_probs,) = session.run(None, {session.get_inputs()[0].name: batch})
    assert np.abs(onnx_probs - probs).max() < 1e-4


def test_prefetching_finds_the_repo_in_the_cache_offline(transformers_hub) -> None:
    prefetch_weights(ModelSpec(id="v", arch="transformers:tiny/vit", weights="transformers:tiny/vit"))
    with pytest.raises(Exception, match="offline|cannot find|LocalEntryNotFound|snapshot"):
        prefetch_weights(ModelSpec(id="a", arch="transformers:tiny/absent", weights="transformers:tiny/absent"))


def test_bad_transformers_specs_are_one_line_errors(transformers_hub) -> None:
    with pytest.raises(ZoofitError, match="arch 'test_resnet' is not 'transformers:tiny/vit'"):
        ModelSpec(id="v", arch="test_resnet", weights="transformers:tiny/vit").validate()
    with pytest.raises(ZoofitError, match="must have the form transformers:"):
        ModelSpec(id="v", arch="test_resnet", weights="transformers:").validate()
    with pytest.raises(ModelError, match="cannot load transformers model 'tiny/absent'"):
        load_model(ModelSpec(id="a", arch="transformers:tiny/absent", weights="transformers:tiny/absent"))


def test_a_local_folder_relative_to_the_zoo_file(tmp_path: Path) -> None:
    model, processor = tiny_models()["tiny/convnext"]
    model.save_pretrained(tmp_path / "nets" / "convnext")
    processor.save_pretrained(tmp_path / "nets" / "convnext")
    (tmp_path / "zoo.yaml").write_text("models:\n  - id: local\n    weights: transformers:nets/convnext\n")
    spec = load_zoo(str(tmp_path / "zoo.yaml")).models[0]
    assert spec.location == str((tmp_path / "nets" / "convnext").resolve())
    assert spec.arch == f"transformers:{spec.location}"
    assert load_model(spec).model.num_classes == 4
    assert json.loads(json.dumps(model_facts(spec)))["input_size"] == 32

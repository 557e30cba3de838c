"""``module:`` models: any PyTorch network from an importable factory, with its weights file, through ``run``,
``predict`` and ``export``; its bad inputs are one-line errors. Also the experts of the ``offline-diverse`` preset
(zoofit's own architectures for the shipped checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from zoofit.cli import app
from zoofit.errors import ModelError, ZoofitError
from zoofit.result import RunResult
from zoofit.zoo import load_model, load_zoo
from zoofit.zoo.experts import cifar10_cnn, mnist_cnn
from zoofit.zoo.hub import model_facts

runner = CliRunner()
FACTORY = "tests.test_module_scheme:small_net"


def small_net(width: int = 8, classes: int = 10) -> nn.Module:
    """A user's network: convolutions, pooling and a classifier ``fc``."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, classes),
    )  # fmt: skip


def features_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def write_zoo(folder: Path, *, head: str = "'5'", weights: str = "nets/small.safetensors", extra: str = "") -> Path:
    """A zoo file with one module: model whose weights lie in ``nets/`` beside it."""
    (folder / "nets").mkdir(exist_ok=True)
    torch.manual_seed(0)
    save_file(small_net().state_dict(), str(folder / "nets" / "small.safetensors"))
    zoo = folder / "zoo.yaml"
    zoo.write_text(
        "models:\n  - id: small\n"
        f"    weights: module:{FACTORY}\n    member: {weights}\n    arch_kwargs: {{head: {head}{extra}}}\n"
        "    preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n"
    )
    return zoo


def test_a_module_model_loads_its_weights_and_keeps_its_classifier_as_the_head(tmp_path: Path) -> None:
    spec = load_zoo(str(write_zoo(tmp_path))).models[0]
    assert spec.arch == f"module:{FACTORY}" and spec.member == str(tmp_path / "nets" / "small.safetensors")
    loaded = load_model(spec)
    torch.manual_seed(0)
    theirs = small_net().eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images), theirs(images))
        torch.testing.assert_close(loaded.model.forward_features(images), theirs[:5](images))
    assert (loaded.feature_dim, loaded.model.num_classes) == (8, 10)
    assert model_facts(spec)["input_size"] == 32


def test_a_network_returning_features_has_no_head(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(
        "models:\n  - id: f\n    weights: module:tests.test_module_scheme:features_net\n    arch_kwargs: {head: null}\n"
        "    preprocessing: {input_size: 16, mean: [0, 0, 0], std: [1, 1, 1]}\n"
    )
    loaded = load_model(load_zoo(str(zoo)).models[0])
    assert (loaded.feature_dim, loaded.model.num_classes) == (4, 0)


def test_run_predict_and_export_a_module_model(tmp_path: Path, make_image_folder) -> None:
    pytest.importorskip("onnxruntime")
    zoo = write_zoo(tmp_path)
    data = make_image_folder(per_class=6, layout="split")
    run = tmp_path / "run"
    options = ["--top-k", "1", "--lrs", "0.01,0.03", "--steps", "4", "--batch-size", "8", "--shift-images", "6",
               "--members", "trial,soup", "--image-size", "32", "--precision", "fp32"]  # fmt: skip
    ran = runner.invoke(app, ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(run), *options])
    assert ran.exit_code == 0, ran.output
    result = RunResult.read(run)
    assert result.robustness is not None and [soup.model for soup in result.soups] == ["small"]
    images = sorted((data / "test").rglob("*.png"))
    predicted = runner.invoke(
        app, ["predict", *map(str, images), "--run", str(run), "--output", str(tmp_path / "p.csv")]
    )
    assert predicted.exit_code == 0, predicted.output
    exported = runner.invoke(app, ["export", "--run", str(run), "--out", str(tmp_path / "m.onnx")])
    assert exported.exit_code == 0 and "within" in exported.output, exported.output


def test_bad_module_models_are_one_line_errors(tmp_path: Path) -> None:
    zoo = write_zoo(tmp_path)
    good = zoo.read_text()
    for factory, problem in [("tests.nowhere:build", "cannot import 'tests.nowhere'"),
                             ("tests.test_module_scheme:absent", "has no factory 'absent'"),
                             ("tests.test_module_scheme", "must have the form module:<pkg.module>:<factory>")]:  # fmt: skip
        zoo.write_text(good.replace(FACTORY, factory))
        with pytest.raises(ZoofitError, match=problem):
            load_zoo(str(zoo))
    zoo.write_text(good.replace("    arch_kwargs: {head: '5'}\n", ""))
    with pytest.raises(ZoofitError, match="needs arch_kwargs 'head'"):
        load_zoo(str(zoo))
    with pytest.raises(ModelError, match="has no module 'fc'.*its children are 0, 1, 2, 3, 4, 5"):
        load_model(load_zoo(str(write_zoo(tmp_path, head="fc"))).models[0])
    with pytest.raises(ModelError, match="weights file '.*small.safetensors' does not fit"):
        load_model(load_zoo(str(write_zoo(tmp_path, extra=", width: 4"))).models[0])
    with pytest.raises(ModelError, match="weights file '.*absent.safetensors' does not exist"):
        load_model(load_zoo(str(write_zoo(tmp_path, weights="absent.safetensors"))).models[0])


def test_the_experts_hold_the_shipped_checkpoints_tensors_in_order() -> None:
    mnist = [tuple(t.shape) for t in mnist_cnn().state_dict().values()]
    assert mnist == [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64, 3, 3), (128,), (256, 1152), (256,),
                     (10, 256), (10,)]  # fmt: skip
    assert mnist_cnn()(torch.zeros(2, 3, 28, 28)).shape == (2, 10)
    cifar = cifar10_cnn()
    assert sum(p.numel() for p in cifar.parameters()) == pytest.approx(0.97e6, rel=0.02)
    assert cifar(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_the_offline_diverse_preset_adds_the_experts_to_the_demo() -> None:
    zoo = load_zoo("offline-diverse")
    demo = [spec.id for spec in load_zoo("demo").models]
    assert [spec.id for spec in zoo.models] == [*demo, "mnist_cnn", "cifar10_cnn"]
    assert {spec.upstream for spec in zoo.models[-2:]} == {"MNIST handwritten digits", "CIFAR-10 (Keras)"}
    assert all(
        np.isclose(model_facts(spec)["params_m"], p) for spec, p in zip(zoo.models[-2:], (0.4, 1.0), strict=True)
    )

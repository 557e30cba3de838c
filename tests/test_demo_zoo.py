"""Integration: the five real demo models and real Fashion-MNIST (downloads the weight wheels once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from zoofit.cli import app
from zoofit.zoo import load_model, load_zoo, prepare_batch

pytestmark = pytest.mark.integration

skimage_data = pytest.importorskip("skimage.data")
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("spec", load_zoo("demo").models, ids=lambda spec: spec.id)
def test_demo_model_loads_strictly_and_sees_a_cat(spec) -> None:
    loaded = load_model(spec)  # strict loading is enforced inside; any mismatch raises
    inputs = prepare_batch([skimage_data.chelsea()], loaded.preprocessing)
    with torch.no_grad():
        outputs = loaded.model(inputs)
    if spec.num_classes == 1000:
        assert int(outputs.argmax()) in CAT_CLASSES
    else:  # the dog-breed backbone ships without its ImageNet head: check its features are sane
        assert outputs.shape == (1, 1280) and torch.isfinite(outputs).all() and outputs.abs().sum() > 0


def test_rank_demo_on_fashion_mnist(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["rank", "--data", "fashion-mnist", "--zoo", "demo", "--image-size", "64", "--out", str(tmp_path)]
        + ["--cache-dir", str(tmp_path / "cache")],  # fresh conversions and features: nothing reused
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "ranking.json").read_text())["ranked"]
    assert sorted(row["model"] for row in rows) == sorted(spec.id for spec in load_zoo("demo").models)
    assert all(row["proxy"] == "knn" and 0.6 < row["score"] < 1 and row["feature_dim"] == 1280 for row in rows)
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)

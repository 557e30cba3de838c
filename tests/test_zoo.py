"""Zoo files, weight sources (timm hub cache, files, PyPI wheels) and the strict-loading rules."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from tests.conftest import tiny_spec, write_hub_cache
from zoofit.errors import ModelError, ZoofitError
from zoofit.store import content_key
from zoofit.zoo import ModelSpec, Preprocessing, load_model, load_zoo, prepare_batch, preset_names
from zoofit.zoo.convert import assign_by_position
from zoofit.zoo.inference import fold_batch_norms
from zoofit.zoo.load import count_gflops
from zoofit.zoo.schemes import SCHEMES, WeightScheme
from zoofit.zoo.transforms import _channel_scales

# ---------------------------------------------------------------- zoo files


def test_demo_preset_lists_the_five_real_models() -> None:
    zoo = load_zoo("demo")
    assert "demo" in preset_names()
    assert [spec.scheme for spec in zoo.models] == ["pypi"] * 5
    assert len({spec.id for spec in zoo.models}) == 5


def test_zoo_file_resolves_relative_weight_paths(tmp_path: Path) -> None:
    (tmp_path / "zoo.yaml").write_text(
        "models:\n"
        "  - {id: a, arch: test_resnet, weights: 'file:w/a.safetensors'}\n"
        "  - {id: b, weights: 'timm:test_vit.r160_in1k', upstream: ImageNet}\n"
    )
    zoo = load_zoo(tmp_path / "zoo.yaml")
    assert zoo.models[0].location == str(tmp_path / "w" / "a.safetensors")
    assert zoo.models[1].arch == "test_vit"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models: []", "non-empty list"),
        ("models:\n  - {id: a, arch: test_resnet}", "missing key"),
        ("models:\n  - {id: a, arch: test_resnet, weights: random, colour: red}", "unknown key"),
        ("models:\n  - {id: a, arch: no_such_net, weights: random}", "not a timm architecture"),
        ("models:\n  - {id: a, arch: test_resnet, weights: 'ftp:x'}", "must start with"),
        ("models:\n  - {id: a, arch: test_resnet, weights: 'file:'}", "must have the form file:<path>"),
        ("models:\n  - {id: a, arch: test_resnet, weights: 'timm:'}", "must have the form timm:<name>"),
        ("models:\n  - {id: a, weights: 'timm:no_such_net.x'}", "unknown timm model 'no_such_net.x'"),
        ("models:\n  - {id: a, arch: test_vit, weights: 'timm:test_resnet.r160_in1k'}", "leave 'arch' out"),
        ("models:\n  - {id: a, arch: test_resnet, weights: 'pypi:x==1'}", "need 'pypi:<package>==<version>'"),
        (
            "models:\n  - {id: a, arch: test_resnet, weights: random}\n  - {id: a, arch: test_vit, weights: random}",
            "more than once",
        ),
        ("models: [", "not valid UTF-8 YAML"),
        ("models:\n  - {id: 5, arch: test_resnet, weights: random}", "'id' must be text"),
        ("models:\n  - {id: a, arch: test_resnet, weights: ~}", "'weights' must be text"),
        ("models:\n  - {id: a, arch: test_resnet, weights: random, gflops: lots}", "'gflops' must be a number"),
        ("models:\n  - {id: a, arch: test_resnet, weights: random, arch_kwargs: [1]}", "'arch_kwargs' must be a"),
        ("models:\n  - {id: a, arch: test_resnet, weights: random, num_classes: 2.5}", "a whole number"),
        *[
            (
                f"models:\n  - {{id: a, arch: test_resnet, weights: random, preprocessing: {{{prep}}}}}",
                "input_size must",
            )
            for prep in (
                "input_size: 32, mean: 0.5, std: [1, 1, 1]",
                "input_size: 32, mean: [0.5, 0.5, 0.5], std: [0, 0, 0]",
                "input_size: 0, mean: [0.5, 0.5, 0.5], std: [1, 1, 1]",
                "input_size: 32, mean: [0.5, 0.5, 0.5], std: [1, 1, 1], interpolation: fancy",
                "input_size: 32, mean: [0.5, 0.5, 0.5], std: [1, 1, 1], crop_pct: 2",
            )
        ],
    ],
)
def test_bad_zoo_files_are_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "zoo.yaml").write_text(content)
    with pytest.raises(ZoofitError, match=message):
        load_zoo(tmp_path / "zoo.yaml")


def test_a_zoo_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "zoo.yaml").write_bytes(b"models: \x80\xff")
    with pytest.raises(ZoofitError, match="not valid UTF-8 YAML"):
        load_zoo(tmp_path / "zoo.yaml")


def test_a_zoo_without_a_name_is_named_after_its_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("models:\n  - {id: a, arch: test_resnet, weights: random}")
    assert load_zoo(tmp_path / "mine.yaml").name == "mine"


def test_a_list_of_timm_weights_is_a_zoo_of_their_models() -> None:
    zoo = load_zoo("timm:test_resnet.r160_in1k, timm:test_vit.r160_in1k")
    assert zoo.name == "timm"
    assert [(spec.id, spec.arch) for spec in zoo.models] == [
        ("test_resnet.r160_in1k", "test_resnet"),
        ("test_vit.r160_in1k", "test_vit"),
    ]
    with pytest.raises(ZoofitError, match="more than once"):
        load_zoo("timm:test_vit.r160_in1k,timm:test_vit.r160_in1k")


def test_unknown_zoo_and_model_id_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ZoofitError, match="unknown zoo 'zooo'"):
        load_zoo("zooo")
    with pytest.raises(ZoofitError, match="zoo file '.*gone.yaml' does not exist"):
        load_zoo(tmp_path / "gone.yaml")
    with pytest.raises(ZoofitError, match="unknown timm model"):
        load_zoo("timm:not_a_model.x")
    with pytest.raises(ZoofitError, match="unknown model id"):
        load_zoo("demo").select(["efficientnet_lite9"])


# ---------------------------------------------------------------- the registry of weight schemes


def test_the_registry_has_an_entry_for_every_scheme_a_zoo_file_can_name(tmp_path: Path) -> None:
    documented = {
        "timm": "{id: t, weights: 'timm:test_resnet.r160_in1k'}",
        "file": "{id: f, arch: test_resnet, weights: 'file:w.pth'}",
        "pypi": "{id: p, arch: test_resnet, weights: 'pypi:w==1', member: w.pth, sha256: '00'}",
        "random": "{id: r, arch: test_resnet, weights: random}",
        "transformers": "{id: h, weights: 'transformers:org/net'}",
        "module": "{id: m, weights: 'module:torch.nn:Identity', arch_kwargs: {head: null}, preprocessing: "
        "{input_size: 8, mean: [0, 0, 0], std: [1, 1, 1]}}",
    }
    (tmp_path / "zoo.yaml").write_text("models:\n" + "".join(f"  - {model}\n" for model in documented.values()))
    specs = load_zoo(tmp_path / "zoo.yaml").models
    assert [spec.scheme for spec in specs] == list(documented) and set(SCHEMES) == set(documented)
    for spec in specs:
        entry = spec.weight_scheme
        assert entry is SCHEMES[spec.scheme] and entry.name == spec.scheme
        assert type(entry).load is not WeightScheme.load  # each entry loads its own weights


def test_an_unknown_scheme_is_one_line_that_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "zoo.yaml").write_text("models:\n  - {id: a, arch: test_resnet, weights: 'hf-hub:org/net'}")
    with pytest.raises(ZoofitError) as raised:
        load_zoo(tmp_path / "zoo.yaml")
    assert str(raised.value) == (
        "model 'a': weights 'hf-hub:org/net' must start with a known scheme: "
        "timm:<name>, file:<path>, pypi:<package>==<version>, random, transformers:<org/name[@revision] or folder>, "
        "module:<pkg.module>:<factory>"
    )
    with pytest.raises(ModelError, match="^model 'a': weights 'hf-hub:org/net' must start with [^\n]*$"):
        load_model(tiny_spec("a", weights="hf-hub:org/net"))  # a spec made in Python: that model is skipped


def test_the_content_keys_of_specs_stay_what_they_were(tmp_path: Path) -> None:
    """Cached features and trials are keyed by a spec's identity: changing a key throws all of them away."""
    demo = load_zoo("demo").models
    hub = ModelSpec(id="h", arch="test_resnet", weights="timm:test_resnet.r160_in1k", arch_kwargs={"drop_rate": 0.1})
    pinned = {
        "cef4969f7500bdf6b5e9": tiny_spec(),
        "8f9ea7124bc6b3620292": tiny_spec(weights="file:/nonexistent/w.pth"),
        "7f167d3c90d0841600dd": hub,
        "dc73e2aca58316af3159": demo[0],
        "e3d9d7d9d9028b165b6a": demo[3],
    }
    assert [content_key(spec.identity()) for spec in pinned.values()] == list(pinned)
    path = tmp_path / "w.pth"
    path.write_bytes(b"x" * 10)
    os.utime(path, ns=(1_700_000_000_000_000_000,) * 2)
    identity = tiny_spec(weights=f"file:{path}").identity()
    assert identity == {
        **tiny_spec().identity(),
        "weights": f"file:{path}",
        "file_state": (10, 1_700_000_000_000_000_000),
    }


# ---------------------------------------------------------------- file: weights


def reference_weights(arch: str = "test_resnet", **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return timm.create_model(arch, **kwargs).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_file_weights_load_strictly(tmp_path: Path, suffix: str) -> None:
    state = reference_weights(num_classes=7)
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    loaded = load_model(tiny_spec(weights=f"file:{path}"))
    assert loaded.model.num_classes == 7  # head size taken from the checkpoint
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(tensor, state[name])


def test_weights_that_do_not_fit_are_a_model_error(tmp_path: Path) -> None:
    save_file(reference_weights("test_efficientnet"), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelError, match="does not fit timm 'test_resnet'"):
        load_model(tiny_spec(weights=f"file:{tmp_path / 'w.safetensors'}"))


def test_missing_weights_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tiny_spec(weights=f"file:{tmp_path / 'none.pth'}"))


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x80\x02}q\x00", b""])
def test_a_damaged_pth_file_is_a_model_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "w.pth").write_bytes(content)
    with pytest.raises(ModelError, match="cannot read weights file"):
        load_model(tiny_spec(weights=f"file:{tmp_path / 'w.pth'}"))


def test_positional_conversion_checks_every_shape() -> None:
    state = reference_weights()
    values = [t for n, t in state.items() if not n.endswith("num_batches_tracked")]
    converted = assign_by_position(state, values, "checkpoint")
    assert converted.keys() == state.keys()
    with pytest.raises(ModelError, match="holds"):
        assign_by_position(state, values[:-1], "checkpoint")
    with pytest.raises(ModelError, match="has shape"):
        assign_by_position(state, [values[1], values[0], *values[2:]], "checkpoint")


def test_gflops_are_counted_when_asked_once_per_size_and_the_spec_figure_wins(monkeypatch) -> None:
    import zoofit.zoo.load as load

    counted: list[int] = []
    monkeypatch.setattr(load, "count_gflops", lambda model, size: counted.append(size) or size / 100)
    loaded = load_model(tiny_spec())
    assert counted == []  # loading alone counts nothing
    assert loaded.gflops_at(64) == loaded.gflops_at(64) == 0.64 and loaded.gflops == 0.32
    assert counted == [64, 32]
    given = load_model(replace(tiny_spec(), gflops=1.5))
    assert given.gflops == 1.5 and given.gflops_at(64) == 0.64


# ---------------------------------------------------------------- timm: weights from a hub-style cache


CHECK_HUB_LOAD = """
import sys, torch
from safetensors.torch import load_file
from zoofit.zoo import ModelSpec, load_model
loaded = load_model(ModelSpec(id="hub", arch="test_resnet", weights="timm:test_resnet.r160_in1k"))
reference = load_file(sys.argv[1])
same = all(torch.equal(t, reference[n]) for n, t in loaded.model.state_dict().items())
print("same" if same else "different", loaded.preprocessing.input_size)
"""


def test_timm_weights_come_from_the_local_hub_cache(tmp_path: Path) -> None:
    state = reference_weights()
    write_hub_cache(tmp_path / "hub", "timm/test_resnet.r160_in1k", state)
    snapshot = next((tmp_path / "hub").rglob("model.safetensors"))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", CHECK_HUB_LOAD, str(snapshot)], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["same", "160"]


def test_timm_weights_absent_offline_are_a_model_error(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="cannot load timm weights"):
        load_model(ModelSpec(id="hub", arch="test_resnet", weights="timm:test_resnet.r160_in1k"))


# ---------------------------------------------------------------- pypi: weights inside wheels


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (pip download accepts it from a local --find-links folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    metadata = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    entries = {**files, **metadata}
    record = "".join(f"{path},,\n" for path in entries) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in entries.items():
            archive.writestr(path, content)
        archive.writestr(f"{dist_info}/RECORD", record)
    return wheel


def wheel_spec(tmp_path: Path, monkeypatch, sha256: str | None = None) -> tuple[ModelSpec, dict]:
    state = reference_weights()
    renamed = {f"layer{i}.{n.rsplit('.', 1)[-1]}": t for i, (n, t) in enumerate(state.items())}
    torch.save(renamed, tmp_path / "w.pth")
    wheel = build_wheel(
        tmp_path / "wheels", "tiny_weights", "1.0", {"tiny_weights/w.pth": (tmp_path / "w.pth").read_bytes()}
    )
    monkeypatch.setenv("ZOOFIT_PIP_ARGS", f"--no-index --find-links {wheel.parent}")
    digest = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    spec = ModelSpec(
        id="tiny_wheel",
        arch="test_resnet",
        weights="pypi:tiny-weights==1.0",
        member="tiny_weights/w.pth",
        sha256=digest,
        preprocessing=tiny_spec().preprocessing,
    )
    return spec, state


def test_wheel_weights_are_verified_converted_and_cached(tmp_path: Path, monkeypatch) -> None:
    spec, state = wheel_spec(tmp_path, monkeypatch)
    loaded = load_model(spec)
    for name, tensor in loaded.model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            torch.testing.assert_close(tensor, state[name])
    converted = list(Path(os.environ["ZOOFIT_CACHE_DIR"]).rglob("*.safetensors"))
    assert len(converted) == 1
    monkeypatch.setenv("ZOOFIT_PIP_ARGS", "--no-index")  # a second load never downloads
    load_model(spec)


def test_wheel_with_wrong_checksum_is_refused(tmp_path: Path, monkeypatch) -> None:
    spec, _ = wheel_spec(tmp_path, monkeypatch, sha256="0" * 64)
    with pytest.raises(ModelError, match="checksum mismatch.*refusing"):
        load_model(spec)
    assert not list(Path(os.environ["ZOOFIT_CACHE_DIR"]).rglob("*.safetensors"))


def test_normalisation_is_made_once_and_also_serves_training() -> None:
    prep = Preprocessing(16, (0.25, 0.5, 0.75), (0.2, 0.3, 0.4), "bilinear", 1.0)  # a fresh cache entry
    images = np.full((2, 16, 16, 3), 255, dtype=np.uint8)
    with torch.inference_mode():
        prepare_batch(images, prep)  # the per-channel scales are made here, then reused
    scales = _channel_scales(prep.mean, prep.std, torch.device("cpu"))
    assert all(not scale.is_inference() for scale in scales)  # may be saved for backward later
    expected = (1.0 - torch.tensor([0.25, 0.5, 0.75])) / torch.tensor([0.2, 0.3, 0.4])
    torch.testing.assert_close(prepare_batch(images, prep)[0, :, 0, 0], expected)


def test_random_weights_are_the_same_when_threads_load_at_once() -> None:
    spec = tiny_spec()
    expected = load_model(spec).model.state_dict()
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: load_model(spec).model.state_dict(), range(8)))
    assert all(all(torch.equal(state[k], expected[k]) for k in expected) for state in loaded)


def with_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with batch-norm statistics far from the identity (as after pre-training)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


@pytest.mark.parametrize("arch", ["test_resnet", "test_efficientnet"])  # plain BatchNorm2d, timm's BatchNormAct2d
def test_batch_norms_fold_into_a_copy_with_the_same_outputs(arch: str) -> None:
    model = with_statistics(load_model(tiny_spec(arch=arch)).model)
    folded = fold_batch_norms(model, 32)
    norms = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert folded is not model and len(norms) < len([m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    inputs = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(folded(inputs), model(inputs), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model.train(), 32)


class NormFirst(torch.nn.Module):
    """A norm registered after a convolution that it comes before: folding the pair would change the outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def test_a_norm_registered_after_a_convolution_it_does_not_follow_is_left_alone() -> None:
    model = with_statistics(NormFirst())
    assert fold_batch_norms(model, 16) is model


def test_gflops_count_attention_and_models_that_read_values_are_counted_too() -> None:
    vit = timm.create_model("test_vit").eval()
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):  # attention as plain matmuls
        expected = count_gflops_on_cpu(vit, 160)
    assert count_gflops(vit, 160) == pytest.approx(expected)  # not the fused CPU kernel's uncounted one

    class ReadsAValue(torch.nn.Module):  # cannot run on the meta device: counted on its own
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y * float(y.mean())

    assert count_gflops(ReadsAValue(), 8) == pytest.approx(2 * 4 * 6 * 6 * 27 / 1e9)


def count_gflops_on_cpu(model: torch.nn.Module, size: int) -> float:
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9

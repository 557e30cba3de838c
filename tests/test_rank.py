"""Ranking with tiny random-init timm models on generated images, the feature cache, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import register_model
from typer.testing import CliRunner

from tests.conftest import tiny_spec
from zoofit import Ranker, load_data
from zoofit.cli import app
from zoofit.device import take_batch_threads
from zoofit.errors import ModelError, ParameterError, ZoofitError
from zoofit.rank import SkippedModel, extract_features
from zoofit.rank.ranker import Lanes, loaded_and_ranked
from zoofit.zoo import ModelSpec, Zoo, load_model, prepare_batch


def test_ranking_is_sorted_and_complete(make_image_folder, tiny_zoo: Zoo) -> None:
    splits = load_data(str(make_image_folder(per_class=8)))
    ranker = Ranker(tiny_zoo).fit(splits)
    assert {row.model for row in ranker.ranking_} == {"tiny_resnet", "tiny_effnet"}
    accuracies = [row.score for row in ranker.ranking_]
    assert {row.proxy for row in ranker.ranking_} == {"knn"}
    assert accuracies == sorted(accuracies, reverse=True)
    assert all(row.feature_dim > 0 and row.gflops > 0 for row in ranker.ranking_)
    assert max(accuracies) > 0.5  # colour classes are easy even for random features (chance: 1/3)


def test_features_are_cached_and_reused(make_image_folder, tiny_zoo: Zoo) -> None:
    splits = load_data(str(make_image_folder(per_class=4)))
    first = Ranker(tiny_zoo).fit(splits)
    second = Ranker(tiny_zoo).fit(splits)
    assert all(row.images_per_second is not None for row in first.ranking_)
    assert all(row.images_per_second is None for row in second.ranking_)
    assert [r.score for r in first.ranking_] == [r.score for r in second.ranking_]
    resized = Ranker(tiny_zoo, image_size=48).fit(splits)  # another preprocessing is another key
    assert all(row.images_per_second is not None for row in resized.ranking_)


def test_features_match_a_plain_forward_pass(make_image_folder) -> None:
    images = load_data(str(make_image_folder(per_class=3))).ranking_set
    loaded = load_model(tiny_spec())
    features = extract_features(loaded, images, batch_size=4, precision="fp32").values
    with torch.no_grad():
        x = prepare_batch(images.images, loaded.preprocessing)
        expected = loaded.model.forward_head(loaded.model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_a_model_whose_weights_do_not_fit_is_skipped(make_image_folder, tmp_path: Path) -> None:
    save_file({"nonsense": torch.zeros(3)}, str(tmp_path / "bad.safetensors"))
    zoo = Zoo("mixed", (tiny_spec(), tiny_spec("broken", weights=f"file:{tmp_path / 'bad.safetensors'}")))
    ranker = Ranker(zoo).fit(load_data(str(make_image_folder(per_class=4))))
    assert [row.model for row in ranker.ranking_] == ["tiny_resnet"]
    assert ranker.skipped_[0].model == "broken" and "does not fit" in ranker.skipped_[0].reason


def fixed_size_spec() -> ModelSpec:
    """A tiny ViT that takes only its own 160 px."""
    spec = tiny_spec("fixed_vit", "test_vit3")
    return replace(spec, preprocessing=replace(spec.preprocessing, input_size=160))


def test_a_model_that_cannot_take_the_resolution_is_skipped_with_the_fix_or_ranked_at_its_own(
    make_image_folder,
) -> None:
    zoo = Zoo("mixed", (tiny_spec(), fixed_size_spec()))
    splits = load_data(str(make_image_folder(per_class=4)))
    ranker = Ranker(zoo, image_size=32).fit(splits)
    assert [row.model for row in ranker.ranking_] == ["tiny_resnet"]
    reason = ranker.skipped_[0].reason
    assert "'fixed_vit' takes only its own 160 px inputs (timm's pretrained config), not 32" in reason
    assert "image_size own" in reason
    sizes = {
        row.model: row.input_size for row in Ranker(zoo, image_size=32, own_size_if_needed=True).fit(splits).ranking_
    }
    assert sizes == {"tiny_resnet": 32, "fixed_vit": 160}


def test_a_model_whose_config_fixes_its_size_is_skipped_before_any_pass(make_image_folder) -> None:
    # mvitv2 counts its GFLOPs at 256 px on the meta device, which checks no indices; timm's config says it is fixed
    mvit = replace(tiny_spec("mvit", "mvitv2_tiny"), preprocessing=replace(tiny_spec().preprocessing, input_size=224))
    ranker = Ranker(Zoo("mixed", (tiny_spec(), mvit)), image_size=256, feature_batch_size=2)
    ranker.fit(load_data(str(make_image_folder(per_class=2))))
    assert [row.model for row in ranker.ranking_] == ["tiny_resnet"]
    assert "'mvit' takes only its own 224 px inputs (timm's pretrained config), not 256" in ranker.skipped_[0].reason


def test_models_are_ranked_in_order_and_errors_wait_for_their_turn(tmp_path: Path) -> None:
    specs = [tiny_spec(), tiny_spec("broken", weights=f"file:{tmp_path / 'missing.pth'}"), tiny_spec("last")]
    seen = []
    for spec, ranked in loaded_and_ranked(specs, load_model, lambda loaded: loaded.spec.id):
        if spec.id == "broken":
            with pytest.raises(ModelError, match="does not exist"):
                ranked.result()
        else:
            seen.append(ranked.result())
    assert seen == ["tiny_resnet", "last"]


@pytest.mark.parametrize("at_once", [1, 2])
def test_models_are_ranked_and_loaded_at_once_but_no_more_than_asked(at_once: int) -> None:
    all_running = threading.Barrier(at_once, timeout=10)  # broken (an error) unless the ranks overlap
    running, most, loading, most_loading = [], [], [], []

    def load(spec) -> str:
        loading.append(spec.id)
        most_loading.append(len(loading))
        time.sleep(0.02)
        loading.remove(spec.id)
        return spec.id

    def rank(loaded: str) -> str:
        running.append(loaded)
        most.append(len(running))
        all_running.wait()
        time.sleep(0.05)
        running.remove(loaded)
        return loaded

    specs = [tiny_spec(f"m{i}") for i in range(4)]
    ranked = [future.result() for _, future in loaded_and_ranked(specs, load, rank, Lanes(at_once))]
    assert ranked == ["m0", "m1", "m2", "m3"] and max(most) == at_once and max(most_loading) <= at_once


def test_cpu_lanes_load_in_their_own_thread_and_the_last_models_take_the_idle_lanes_cores() -> None:
    held, most, threads, before = [], [], {}, torch.get_num_threads()
    both_at_work = threading.Barrier(2, timeout=10)

    def load(spec) -> str:
        held.append(spec.id)
        most.append(len(held))
        return spec.id

    def rank(loaded: str) -> str:
        if loaded == "last":
            while len(held) > 1:  # until it is the only lane at work
                time.sleep(0.01)
        else:
            both_at_work.wait()
        take_batch_threads()  # as before each batch of a pass
        threads[loaded] = torch.get_num_threads()
        time.sleep(0.05)
        held.remove(loaded)
        return loaded

    specs = [tiny_spec(name) for name in ("m0", "m1", "last")]
    ranked = [
        future.result() for _, future in loaded_and_ranked(specs, load, rank, Lanes(2, cores=2, load_ahead=False))
    ]
    assert ranked == ["m0", "m1", "last"] and max(most) == 2
    assert threads == {"m0": 1, "m1": 1, "last": 2}
    assert torch.get_num_threads() == before  # the caller's count is its own


def test_a_cpu_shares_its_cores_among_the_models_ranked_at_once() -> None:
    cpu, cores = torch.device("cpu"), torch.get_num_threads()
    assert Lanes.on(cpu) == Lanes(min(4, cores), cores=cores, load_ahead=False)
    assert Lanes.on(cpu, 1) == Lanes(1, cores=cores, load_ahead=False)


def test_ranking_several_models_at_once_gives_the_same_ranking(
    make_image_folder, tiny_zoo: Zoo, tmp_path: Path
) -> None:
    splits = load_data(str(make_image_folder(per_class=8)))
    one, two = (Ranker(tiny_zoo, models_at_once=n, cache_dir=tmp_path / str(n)).fit(splits).ranking_ for n in (1, 2))
    assert all(row.images_per_second is not None for row in one + two)  # extracted each time, not cached
    assert [(r.model, r.score) for r in one] == [(r.model, r.score) for r in two]


@register_model
def zoofit_test_keyerror(pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
    """A timm architecture whose forward pass fails with an error no loader anticipates (a KeyError)."""
    model = timm.create_model("test_resnet", pretrained=pretrained, **kwargs)

    def forward_features(x: torch.Tensor) -> torch.Tensor:
        raise KeyError("stem")

    model.forward_features = forward_features
    return model


def test_a_model_failing_in_an_unexpected_way_is_recorded_and_the_ranking_goes_on(make_image_folder) -> None:
    zoo = Zoo("mixed", (tiny_spec("odd", arch="zoofit_test_keyerror"), tiny_spec()))
    ranker = Ranker(zoo).fit(load_data(str(make_image_folder(per_class=3))))
    assert [row.model for row in ranker.ranking_] == ["tiny_resnet"]
    assert ranker.skipped_ == [SkippedModel("odd", "model 'odd' failed: KeyError: 'stem'")]


def test_a_run_level_error_of_a_model_is_not_taken_for_the_model() -> None:
    with pytest.raises(ZoofitError, match="disk"):
        ModelError.failed("m", ZoofitError("the cache's disk is full"))
    assert str(ModelError.failed("m", ValueError("bad\nmore"))) == "model 'm' failed: ValueError: bad"


def test_all_models_failing_is_an_error(make_image_folder, tmp_path: Path) -> None:
    zoo = Zoo("broken", (tiny_spec("broken", weights=f"file:{tmp_path / 'missing.pth'}"),))
    with pytest.raises(ZoofitError, match="none of the 1 models"):
        Ranker(zoo).fit(load_data(str(make_image_folder(per_class=4))))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 100}, "k must lie between 1 and 11 (images - 1), not 100"),
        ({"k": 0}, "k must be at least 1, not 0"),
        ({"metric": "l1"}, "metric must be one of cosine, euclidean, not 'l1'"),
        ({"proxy": "lasso"}, "proxy must be one of knn, logme, not 'lasso'"),
        ({"image_size": 8}, "image_size must be at least 16 pixels, not 8"),
        ({"feature_batch_size": 0}, "feature_batch_size must be positive, not 0"),
        ({"models_at_once": 0}, "models_at_once must be at least 1, not 0"),
    ],
)
def test_bad_ranking_options_are_errors_naming_the_parameter(
    make_image_folder, tiny_zoo: Zoo, options, message
) -> None:
    with pytest.raises(ParameterError) as error:
        Ranker(tiny_zoo, **options).fit(load_data(str(make_image_folder(per_class=4))))
    assert str(error.value) == message  # as Python spells it: the CLI spells it as its option


# ---------------------------------------------------------------- CLI

runner = CliRunner()


def write_tiny_zoo_file(folder: Path) -> Path:
    path = folder / "zoo.yaml"
    path.write_text(
        "name: tiny\nmodels:\n"
        "  - id: tiny_resnet\n    arch: test_resnet\n    weights: random\n"
        "    preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n"
    )
    return path


def test_cli_rank_writes_ranking_files(make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(per_class=6)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "rank",
            "--data",
            str(root),
            "--zoo",
            str(write_tiny_zoo_file(tmp_path)),
            "--out",
            str(out),
            "--k",
            "3",
            "--metric",
            "euclidean",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "ranking.json").read_text())["ranked"]
    assert rows[0]["model"] == "tiny_resnet" and rows[0]["proxy"] == "knn" and 0 <= rows[0]["score"] <= 1
    assert {"model", "proxy", "score", "feature_dim", "seconds"} <= rows[0].keys()
    assert (out / "ranking.csv").read_text().startswith("model,proxy,score,feature_dim,seconds")
    assert "Ranking by leave-one-out 3-NN (euclidean) accuracy" in result.output and "kNN accuracy" in result.output


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--help"], "rank"),
        (["run", "--data", "/no/such/folder"], "does not exist"),
        (["rank", "--data", "/no/such/folder"], "does not exist"),
    ],
)
def test_cli_help_and_bad_data_answer_without_loading_torch_or_timm(arguments: list[str], expected: str) -> None:
    check = f"import sys; from zoofit.cli import main; sys.argv = ['zoofit', *{arguments!r}]\ntry: main()\n"
    check += "except SystemExit: pass\nprint(sorted({'torch', 'timm'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert expected in result.stdout + result.stderr and result.stdout.strip().endswith("[]")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["rank", "--metric", "l1"], "--metric must be one of cosine, euclidean, not 'l1'"),
        (["rank", "--k", "0"], "--k must be at least 1, not 0"),
        (["rank", "--proxy", "lasso"], "--proxy must be one of knn, logme, not 'lasso'"),
        (["rank", "--image-size", "8"], "--image-size must be at least 16 pixels, not 8"),
        (["rank", "--feature-batch-size", "0"], "--feature-batch-size must be positive, not 0"),
        (["run", "--batch-size", "0"], "--batch-size"),
        (["run", "--proxy", "lasso"], "--proxy must be one of knn, logme"),
        (["rank", "--models", "nomodel"], "unknown model id"),
        (["run", "--preset", "huge"], "--preset must be one of quick, paper"),
        (["run", "--workers", "0"], "--workers"),
        (["run", "--k", "0"], "--k must be at least 1"),
        (["rank", "--proxy", "logme", "--k", "3"], "--k is neither a ranking setting"),  # not silently ignored
        (["run", "--selection", "vote"], "--selection must be one of greedy, bagged, not 'vote'"),
        (["run", "--seed-replicas", "-1"], "--seed-replicas must be at least 0, not -1"),
    ],
)
def test_cli_settings_are_checked_before_any_image_is_read(make_image_folder, arguments, message) -> None:
    result = runner.invoke(app, [*arguments, "--data", str(make_image_folder(per_class=4))])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and message in errors[0]
    assert "decoding" not in result.output  # no image was read


def test_a_data_error_inside_the_progress_bars_is_the_only_line(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"path,label\n\x80.png,x\n")  # read, and refused, where bars may be drawn
    result = runner.invoke(app, ["rank", "--data", str(tmp_path / "d.csv")])
    assert result.exit_code == 2 and result.output.splitlines() == [result.output.strip()]
    assert result.output.startswith("error: CSV")


def test_cli_zoo_list() -> None:
    result = runner.invoke(app, ["zoo", "list", "demo"])
    assert result.exit_code == 0 and "efficientnet_lite0" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["rank", "--data", "/no/such/folder"], "does not exist"),
        (["rank", "--data", "{images}", "--zoo", "nozoo"], "unknown zoo"),
        (["rank", "--data", "{images}", "--models", "nomodel"], "unknown model id"),
        (["rank", "--data", "{images}", "--train-per-class", "50"], "larger than class"),
        (["zoo", "list", "nozoo"], "unknown zoo"),
        (["rank", "--data", "/no/such/photos[v2]"], "'/no/such/photos[v2]' does not exist"),  # no markup
        (["rank", "--data", "{images}", "--out", "{images}/cat/0.png"], "--out '"),
        (["rank", "--data", "{images}", "--out", "{images}/cat/0.png/out"], "which is a file"),
    ],
)
def test_cli_bad_input_is_one_line(make_image_folder, arguments: list[str], message: str) -> None:
    images = str(make_image_folder(per_class=4))
    result = runner.invoke(app, [a.replace("{images}", images) for a in arguments])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(errors) == 1 and message in errors[0]


def test_the_weights_of_the_models_ahead_are_fetched_while_one_loads() -> None:
    specs = [tiny_spec(f"m{index}") for index in range(8)]
    fetched = {spec.id: threading.Event() for spec in specs}
    next_fetched_during_load = []

    def load(spec: ModelSpec) -> str:
        following = f"m{int(spec.id[1:]) + 1}"
        if following in fetched:  # its fetch began while this one is still to load (it waits on no load)
            next_fetched_during_load.append(fetched[following].wait(timeout=10))
        return spec.id

    def prefetch(spec: ModelSpec) -> None:
        fetched[spec.id].set()
        raise OSError("offline")  # ignored: the load reports it

    for _, ranked in loaded_and_ranked(specs, load, lambda name: name, prefetch=prefetch, ahead=2):
        ranked.result()
    assert next_fetched_during_load == [True] * 7
    assert not fetched["m0"].is_set()  # the first loads at once

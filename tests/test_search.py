"""``zoofit zoo search`` against a local HTTP server on 127.0.0.1 that answers ``/api/models`` as the hub does
(filters, sort, limit, the expanded card data and safetensors counts); the zoo file it writes is listed and ranked
from a real offline hub cache of the same tiny transformers models."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from typer.testing import CliRunner

from tests.test_transformers import write_transformers_cache
from zoofit.cli import app
from zoofit.errors import ParameterError
from zoofit.zoo.search import search_hub

runner = CliRunner()


def listed(repo: str, library: str, task: str, downloads: int, likes: int, params: int | None, **card) -> dict:
    """One model as the hub's ``/api/models?expand=...`` lists it."""
    tags = [library, task, *(f"license:{card['license']}" for _ in [0] if "license" in card)]
    tags += [f"dataset:{name}" for name in card.get("datasets", [])]
    model = {"id": repo, "modelId": repo, "library_name": library, "pipeline_tag": task, "downloads": downloads,
             "likes": likes, "tags": tags, "cardData": card}  # fmt: skip
    if params is not None:
        model["safetensors"] = {"parameters": {"F32": params}, "total": params}
    return model


HUB = [
    listed("tiny/vit", "transformers", "image-classification", 900, 5, 24_069, license="apache-2.0",
           datasets=["food101"]),
    listed("tiny/convnext", "transformers", "image-classification", 500, 50, 5_004, license="mit",
           datasets=["beans"]),
    listed("tiny/swin", "transformers", "image-classification", 100, 1, 5_366, license="apache-2.0"),
    listed("big/vit-huge", "transformers", "image-classification", 5_000, 500, 632_000_000, license="apache-2.0"),
    listed("tiny/nosize", "transformers", "image-classification", 50, 0, None, license="apache-2.0"),
    listed("tiny/dinov2", "transformers", "image-feature-extraction", 700, 7, 24_454, license="apache-2.0"),
    listed("timm/test_resnet.r160_in1k", "timm", "image-classification", 300, 3, 1_000, license="apache-2.0",
           datasets=["imagenet-1k"]),
    listed("someone/custom-timm", "timm", "image-classification", 200, 2, 1_000),
]  # fmt: skip


class FakeHub(BaseHTTPRequestHandler):
    """``GET /api/models`` with the hub's query parameters; every request's are kept in ``requests``."""

    requests: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = parse_qs(url.query)
        FakeHub.requests.append(query)
        if url.path != "/api/models":
            self.send_error(404)
            return
        models = [m for m in HUB if all(tag in m["tags"] for tag in query.get("filter", []))]
        models = [m for m in models if m["pipeline_tag"] == query.get("pipeline_tag", [m["pipeline_tag"]])[0]]
        if "num_parameters" in query:
            most = int(query["num_parameters"][0].removeprefix("max:"))
            models = [m for m in models if "safetensors" not in m or m["safetensors"]["total"] <= most]
        key = query.get("sort", ["downloads"])[0]
        models = sorted(models, key=lambda m: -m[key])[: int(query.get("limit", ["1000"])[0])]
        body = json.dumps(models).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(monkeypatch) -> Iterator[str]:
    """The fake hub's address, as HF_ENDPOINT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    FakeHub.requests.clear()
    yield endpoint
    server.shutdown()


def test_the_search_asks_the_hub_with_its_filters_and_annotates_each_entry(fake_hub: str) -> None:
    found = search_hub(license="apache-2.0", max_params=1.0, sort="likes", limit=10)
    query = FakeHub.requests[-1]
    assert query["filter"] == ["transformers", "license:apache-2.0"] and query["sort"] == ["likes"]
    assert (query["pipeline_tag"], query["num_parameters"]) == (["image-classification"], ["max:1000000"])
    assert [entry["id"] for entry in found.models] == ["tiny/vit", "tiny/swin"]
    assert found.models[0] == {"id": "tiny/vit", "weights": "transformers:tiny/vit", "upstream": "food101",
                               "license": "apache-2.0", "params": 0.0}  # fmt: skip
    assert found.skipped == {"tiny/nosize": "no parameter count"}


def test_timm_models_come_from_timms_registry(fake_hub: str) -> None:
    found = search_hub(library="timm", limit=5)
    assert [(entry["id"], entry["weights"]) for entry in found.models] == [
        ("timm/test_resnet.r160_in1k", "timm:test_resnet.r160_in1k")
    ]
    assert found.skipped == {"someone/custom-timm": "a timm model outside timm's registry"}


def test_search_writes_a_zoo_that_list_and_rank_accept(
    fake_hub: str, tmp_path: Path, monkeypatch, make_image_folder
) -> None:
    out = tmp_path / "hub-zoo.yaml"
    arguments = ["zoo", "search", "--out", str(out), "--max-params", "1", "--sort", "downloads", "--limit", "3"]
    searched = runner.invoke(app, arguments)
    assert searched.exit_code == 0, searched.output
    assert ": 3 models" in " ".join(searched.output.split())
    zoo = yaml.safe_load(out.read_text())
    assert [model["id"] for model in zoo["models"]] == ["tiny/vit", "tiny/convnext", "tiny/swin"]

    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    cache.mkdir()
    write_transformers_cache(cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    listed_zoo = runner.invoke(app, ["zoo", "list", str(out)])
    assert listed_zoo.exit_code == 0 and "food101" in listed_zoo.output and "beans" in listed_zoo.output
    data = make_image_folder(per_class=3)
    ranked = runner.invoke(app, ["rank", "--data", str(data), "--zoo", str(out), "--out", str(tmp_path / "r")])
    assert ranked.exit_code == 0, ranked.output
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert {row["model"] for row in ranking["ranked"]} == {"tiny/vit", "tiny/convnext", "tiny/swin"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--task", "object-detection", "--task must be one of image-classification, image-feature-extraction"),
        ("--library", "keras", "--library must be one of transformers, timm, not 'keras'"),
        ("--sort", "trending", "--sort must be one of downloads, likes"),
        ("--limit", "0", "--limit must be a whole number of at least 1"),
        ("--max-params", "-5", "--max-params must be a positive number of millions"),
    ],
)
def test_bad_filters_are_one_line_errors(fake_hub: str, tmp_path: Path, option: str, value: str, message: str) -> None:
    result = runner.invoke(app, ["zoo", "search", "--out", str(tmp_path / "z.yaml"), option, value])
    assert (
        result.exit_code == 2 and result.output.startswith(f"error: {message}") and len(result.output.splitlines()) == 1
    )
    assert not FakeHub.requests  # refused before asking the hub


def test_the_library_refuses_bad_filters_too(fake_hub: str) -> None:
    with pytest.raises(ParameterError, match="limit must be a whole number"):
        search_hub(limit=0)
    with pytest.raises(ParameterError, match="task must be one of"):
        search_hub(task="image-to-text")
    assert not FakeHub.requests


def test_a_hub_that_cannot_be_reached_is_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    result = runner.invoke(app, ["zoo", "search", "--out", str(tmp_path / "z.yaml"), "--limit", "1"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot list models on the hub")

"""Replay: every run folder's config.yaml holds every setting, and `zoofit run --config` (and `zoofit bench
--config`) run it again to the same figures; a bad config file is one line naming the file and the key."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import write_image_folder
from tests.test_rank import write_tiny_zoo_file
from tests.test_run import error_line
from zoofit.cli import app
from zoofit.errors import ParameterError
from zoofit.layout import CONFIG
from zoofit.replay import RunConfig
from zoofit.sweep_config import preset

runner = CliRunner()
#: A tiny run that sets a setting of every kind: data, ranking, search, training, ensemble, evaluation, the
#: student's (recorded; distilling is tests/test_distill.py's), seed.
OPTIONS = ["--lrs", "0.01,0.03", "--steps", "5", "--batch-size", "8", "--image-size", "32", "--val-fraction", "0.25",
           "--proxy", "logme", "--max-members", "2", "--shift-images", "12", "--shift-severity", "2", "--seed", "3",
           "--no-flip", "--members", "linear,trial", "--linear-heads", "2", "--precision", "fp32",
           "--workers", "1", "--distill-steps", "7", "--student", "tiny_resnet"]  # fmt: skip


def figures(run: Path) -> dict:
    """What a run found: summary.json less its timings, and trials.csv less its seconds."""
    summary = json.loads((run / "summary.json").read_text())
    for timing in ("stage_seconds", "wall_seconds", "units"):
        summary.pop(timing)
    with (run / "trials.csv").open() as handle:
        trials = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    return {"summary": summary, "trials": trials}


def settings(run: Path) -> dict:
    return yaml.safe_load((run / CONFIG).read_text())


def test_a_run_replayed_from_its_config_yaml_gives_the_same_figures(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=8, layout="split"), write_tiny_zoo_file(tmp_path)
    first = tmp_path / "x"
    result = runner.invoke(app, ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(first), *OPTIONS])
    assert result.exit_code == 0, result.output
    written = settings(first)
    assert written["data"] == {"source": str(data), "train_per_class": None, "train_size": None, "val_fraction": 0.25,
                               "seed": 3, "max_side": 512, "test_fraction": None}  # fmt: skip
    assert written["sweep"]["search"]["lrs"] == [0.01, 0.03] and written["sweep"]["training"]["flip"] is False
    assert written["sweep"]["ensemble"]["max_members"] == 2 and written["sweep"]["evaluation"]["shift_images"] == 12
    assert written["sweep"]["ensemble"]["members"] == ["linear", "trial"]
    assert written["sweep"]["ensemble"]["linear_heads"] == 2
    assert written["ranking"]["proxy"] == "logme" and written["seed"] == 3 and written["sweep"]["name"] == "quick"
    assert written["sweep"]["distill"] == {"distill": False, "distill_steps": 7, "student": "tiny_resnet",
                                           "unlabelled": None}  # fmt: skip
    assert set(written["versions"]) == {"zoofit", "torch", "timm"}

    again = tmp_path / "y"
    result = runner.invoke(app, ["run", "--config", str(first / CONFIG), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert figures(again) == figures(first) and settings(again) == written

    changed = tmp_path / "z"  # an option given beside --config changes that setting alone
    result = runner.invoke(app, ["run", "--config", str(first / CONFIG), "--out", str(changed), "--shift-images", "0"])
    assert result.exit_code == 0, result.output
    replayed = settings(changed)
    assert replayed["sweep"].pop("evaluation") == {**written["sweep"].pop("evaluation"), "shift_images": 0}
    assert replayed["sweep"] == written["sweep"] and replayed["data"] == written["data"]
    assert figures(changed)["summary"]["ensemble"] == figures(first)["summary"]["ensemble"]
    assert figures(changed)["summary"]["robustness"] is None


def test_a_bench_replayed_from_its_config_yaml_gives_the_same_table(tmp_path: Path) -> None:
    colours = write_image_folder(tmp_path / "colours", per_class=6, layout="split")
    (tmp_path / "suite.yaml").write_text(f"name: tiny\ntasks:\n  - {{id: colours, data: '{colours}', group: g}}\n")
    zoo = write_tiny_zoo_file(tmp_path)
    arguments = ["--zoo", str(zoo), "--top-k", "1", "--lrs", "0.03", "--steps", "4", "--batch-size", "8",
                 "--image-size", "32", "--shift-images", "0", "--precision", "fp32", "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, ["bench", "--suite", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "a"),
                                 "--test-images", "6", *arguments])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = settings(tmp_path / "a")
    assert written["suite"] == {"suite": str(tmp_path / "suite.yaml"), "tasks": None, "test_images": 6, "audit": False}
    assert written["data"] is None and settings(tmp_path / "a" / "colours")["data"]["source"] == str(colours)
    result = runner.invoke(app, ["bench", "--config", str(tmp_path / "a" / CONFIG), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    table = [json.loads((tmp_path / out / "bench.json").read_text())["tasks"] for out in ("a", "b")]
    for task in table:
        task[0].pop("wall_seconds")
    assert table[0] == table[1] and settings(tmp_path / "b") == written
    message = error_line(runner.invoke(app, ["run", "--config", str(tmp_path / "a" / CONFIG)]))
    assert "is a bench's; replay it with 'zoofit bench --config'" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("- a\n- b\n", "holds no settings"),
        ("zoo: demo\ncolour: red\n", "key 'colour' is not a setting"),
        ("sweep: {search: {top_k: many}}\n", "key 'sweep.search.top_k' must be int, not 'many'; correct it"),
        ("sweep: {search: {top_k: 0}}\n", "key 'sweep.search.top_k' must be at least 1, not 0"),
        ("sweep: {ensemble: {lrs: [0.1]}}\n", "key 'sweep.ensemble.lrs' is not a setting"),
        ("data: {source: x, val_fraction: 2}\n", "key 'data.val_fraction' must lie strictly between 0 and 1"),
        ("zoo: demo\n", "give --data"),
        ("zoo: [demo\n", "cannot be read"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_the_key(tmp_path: Path, content, message) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    line = error_line(runner.invoke(app, ["run", "--config", str(path), "--out", str(tmp_path / "o")]))
    assert message in line and (message == "give --data" or f"config file '{path}'" in line)


def test_run_config_routes_each_setting_by_name_and_round_trips(tmp_path: Path) -> None:
    config = RunConfig(sweep=preset("quick")).changed(
        source="fashion-mnist", seed=2, top_k=4, proxy="logme", seed_replicas=2, safeguard=False
    )
    assert (config.data.source, config.data.seed, config.seed) == ("fashion-mnist", 2, 2)
    assert config.sweep.ensemble.seed_replicas == 2 and config.sweep.ensemble.safeguard is False
    assert config.sweep.search.top_k == 4 and config.ranking.proxy == "logme" and config.sweep.name == "quick"
    with pytest.raises(ParameterError, match="^colour is not a setting of a run$"):
        config.changed(colour="red")
    (tmp_path / CONFIG).write_text(config.text())
    assert RunConfig.read(tmp_path / CONFIG) == config.changed(versions=RunConfig.read(tmp_path / CONFIG).versions)


@pytest.mark.parametrize("soup, members", [(True, ("trial", "soup")), (False, ("trial",))])
def test_a_config_from_before_member_kinds_replays_its_pool(tmp_path: Path, soup: bool, members: tuple) -> None:
    text = RunConfig(sweep=preset("quick")).text().replace("    members:\n", "    soup: SOUP\n    old_members:\n")
    text = text.replace("SOUP", str(soup).lower())
    lines = text.splitlines()
    start = lines.index("    old_members:")  # the list under it goes too
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    - "))
    (tmp_path / CONFIG).write_text("\n".join(lines[:start] + lines[end:]) + "\n")
    assert RunConfig.read(tmp_path / CONFIG).sweep.ensemble.members == members

"""--refit (members trained again on train + validation) and --selection bagged, end to end on tiny models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_run import SWEEP, quick
from zoofit import EnsembleClassifier, ZooFit, load_data
from zoofit.ensemble import average
from zoofit.export import export_run
from zoofit.finetune.sweep import training_splits
from zoofit.report.rows import result_rows
from zoofit.result import RunResult, Units


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory: pytest.TempPathFactory):
    """A tiny run with --refit, soups and linear heads, a seed baseline and bagged selection: its folder, splits and fit."""
    from tests.conftest import tiny_spec, write_image_folder
    from zoofit.zoo import Zoo

    root = tmp_path_factory.mktemp("refit")
    splits = load_data(str(write_image_folder(root / "images", per_class=8, layout="split")))
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    sweep = quick(
        refit=True,
        members=("trial", "soup", "linear"),
        seed_baseline=2,
        selection="bagged",
        bags=5,
        shift_images=0,
        **{**SWEEP, "steps": (4,)},
    )
    fit = ZooFit(zoo, sweep=sweep, precision="fp32", workers=1, cache_dir=root / "cache").fit(splits, root / "run")
    return root / "run", splits, fit, zoo, sweep


def test_refit_members_are_the_ensemble_and_the_selected_one_is_kept(refit_run) -> None:
    out, splits, fit, _, _ = refit_run
    result = RunResult.read(out)
    assert result.before_refit is not None and all(not m.settings.refit for m in result.before_refit.members)
    assert all(m.settings.refit for m in result.ensemble.members)
    assert [m.weight for m in result.ensemble.members] == [m.weight for m in result.before_refit.members]
    assert {m.trial for m in result.ensemble.members}.isdisjoint(m.trial for m in result.before_refit.members)
    assert result.seed_baseline is not None and len(result.seed_baseline.trials) == 2
    assert "refit" in result.stage_seconds
    names = [row[0] for row in result_rows(result)]  # the terminal's and report.html's table
    assert names[:2] == ["bagged ensemble (refit)", "bagged ensemble before refit"]
    assert not any(t.config.refit for t in fit.trials_)  # trials_ are the sweep's; trials.csv lists the refits too
    rows = (out / "trials.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in rows[1:]} >= {m.trial for m in result.ensemble.members if m.ingredients == 1}


def test_a_refit_trial_trains_on_train_and_validation(refit_run) -> None:
    _, splits, _, _, _ = refit_run
    config = quick(**SWEEP).trials()[0]
    assert training_splits(splits, config) is splits
    refit = training_splits(splits, replace(config, refit=True))
    assert len(refit.train) == len(splits.train) + len(splits.val)
    assert refit.val is splits.val and refit.test is splits.test


def test_refit_reuses_every_trial_on_rerun(refit_run) -> None:
    out, splits, first, zoo, sweep = refit_run
    second = ZooFit(zoo, sweep=sweep, precision="fp32", workers=1, cache_dir=out.parent / "cache").fit(splits, out)
    assert second.result_.units.computed == 0
    assert second.result_.units == Units(0, first.result_.units.computed + first.result_.units.reused)
    assert second.result_.ensemble == first.result_.ensemble


def test_predict_and_export_use_the_refit_members(refit_run, tmp_path: Path) -> None:
    out, splits, fit, _, _ = refit_run
    result = fit.result_
    manifest = json.loads((out / "ensemble.json").read_text())
    refit_keys = [m.trial for m in result.ensemble.members]
    assert [Path(m["checkpoint"]).parent.name for m in manifest["members"]] == refit_keys

    from zoofit.finetune.sweep import load_record
    from zoofit.store import RunStore

    store = RunStore(out)
    records = [load_record(store, m.trial, m.model, m.settings, True) for m in result.ensemble.members]
    expected = average([r.test_probs for r in records], np.array([m.weight for m in result.ensemble.members]))
    images = list(splits.test.images)
    np.testing.assert_allclose(
        EnsembleClassifier.load(out, precision="fp32").predict_proba(images), expected, atol=1e-5
    )

    height, width = splits.test.images.shape[1:3]
    exported = export_run(out, tmp_path / "e.pt2", format="pt2", image_shape=(height, width))
    program = torch.export.load(str(exported.path)).module()
    probs = program(torch.from_numpy(np.ascontiguousarray(splits.test.images))).detach().numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-4)

"""Refitting: the trials the selection chose on train/validation, trained again on train + validation with their
own settings and seed (the VTAB-1k practice of BiT and VPT: choose on 800/200, then train on all 1,000).

A refit trial is a trial like any other (its :class:`TrialConfig` has ``refit=True``, so it has its own key, is
stored in the run, reused on a rerun, and runs on any executor); a soup's refit is the average of its
ingredients' refits (the same ingredients: nothing is chosen on validation images they trained on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from zoofit.finetune.runner import TrialRunner
from zoofit.finetune.soup import cook_soup
from zoofit.finetune.sweep import Job, TrialRecord
from zoofit.zoo import ModelSpec


def ingredients(record: TrialRecord, trials: dict[str, TrialRecord]) -> list[TrialRecord]:
    """The trials ``record`` is made of: a soup's ingredients (from ``trials``, by key), else itself."""
    return [trials[key] for key in record.result.soup or ()] or [record]


def refit(
    records: Sequence[TrialRecord], trials: Sequence[TrialRecord], specs: dict[str, ModelSpec], runner: TrialRunner
) -> dict[str, TrialRecord]:
    """The refit of each of ``records`` (trials, or soups of ``trials``), by the record's key; the trials are
    trained in one batch on the runner (those already stored are reused), then the soups averaged. A record
    whose refit (or an ingredient's) failed has none: it stays as trained on train alone, the failure in
    ``runner.failed``."""
    by_key = {trial.key: trial for trial in trials}
    needed = {t.key: t for record in records for t in ingredients(record, by_key)}
    jobs: list[Job] = [(specs[t.model], replace(t.config, refit=True)) for t in needed.values()]
    costs = [t.gflops * t.config.steps * t.config.batch_size for t in needed.values()]
    finished = {record.key: record for record in runner.run(jobs, costs)}
    refit_keys = {key: runner.context.key(*job) for key, job in zip(needed, jobs, strict=True)}
    refits = {key: finished[refit_key] for key, refit_key in refit_keys.items() if refit_key in finished}
    whole = [record for record in records if all(t.key in refits for t in ingredients(record, by_key))]
    return {
        record.key: refits[record.key] if record.result.soup is None else cook_soup(
            [refits[t.key] for t in ingredients(record, by_key)], runner.context, greedy=False
        )
        for record in whole
    }  # fmt: skip

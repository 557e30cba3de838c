"""A model's greedy soup as a unit of work: its trials' checkpoints averaged (:mod:`zoofit.ensemble.soup`),
predicted as a trial predicts, and stored in the run like a trial, keyed by its candidate trials."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from safetensors.torch import load_file

from zoofit.data import ImageSet
from zoofit.device import to_device
from zoofit.ensemble.classifier import member_entry, member_spec
from zoofit.ensemble.soup import Soup, State, average_states, greedy_soup
from zoofit.evaluate import summarize
from zoofit.finetune.sweep import TrialContext, TrialOutput, TrialRecord, load_record
from zoofit.finetune.trial import predict
from zoofit.result import Scores
from zoofit.store import Cache, content_key
from zoofit.zoo import load_model
from zoofit.zoo.inference import fold_batch_norms

SOUP_VERSION = 1  # bump when cooking changes, so old soups are not reused


def cook_soup(group: Sequence[TrialRecord], context: TrialContext, *, greedy: bool = True) -> TrialRecord:
    """The greedy soup of ``group`` (trials of one model, best by validation accuracy first), from the run
    where it is stored, else cooked and stored there. Its record's ``result.soup`` lists its ingredients.
    With ``greedy=False``, every trial of ``group`` is an ingredient (a soup's refit ingredients, say)."""
    store = context.store
    kind = "soup" if greedy else "soup-of-all"
    key = content_key(kind, SOUP_VERSION, [trial.key for trial in group], context.eval_precision)
    reused = store.has_trial(key)
    if not reused:
        _cook(group, context, key, greedy).save(store)
    return load_record(store, key, group[0].model, group[0].config, reused=reused)


def _cook(group: Sequence[TrialRecord], context: TrialContext, key: str, greedy: bool) -> TrialOutput:
    start = time.perf_counter()
    store, splits, first = context.store, context.splits, group[0]
    spec = member_spec(store.root, member_entry(first.result.json(), 1.0, store.checkpoint_name(first.key)))
    loaded = load_model(spec, Cache(context.cache_root))
    device, prep = torch.device(context.device), loaded.preprocessing

    def predicted(state: State, images: ImageSet) -> np.ndarray:
        loaded.model.load_state_dict(state)
        model = fold_batch_norms(to_device(loaded.model, device).eval(), prep.input_size)
        return predict(model, images, prep, device, context.eval_precision, context.eval_batch_size)

    states = [load_file(str(store.checkpoint_path(trial.key))) for trial in group]
    if greedy:
        soup = greedy_soup(states, [t.val_probs for t in group], splits.val.labels, lambda s: predicted(s, splits.val))
    else:
        state = average_states(states)
        val_probs = first.val_probs if len(states) == 1 else predicted(state, splits.val)
        soup = Soup(tuple(range(len(states))), state, val_probs)
    if len(soup.ingredients) == 1 or splits.test is None:  # the best trial alone: its own predictions
        test_probs = first.test_probs
    else:
        test_probs = predicted(soup.state, splits.test)
    result = first.result.souped(
        key,
        val=Scores(**summarize(soup.val_probs, splits.val.labels)),
        test=Scores(**summarize(test_probs, splits.test.labels)) if test_probs is not None else None,
        seconds=time.perf_counter() - start,
        ingredients=[group[i].key for i in soup.ingredients],
    )
    predictions = {"val_probs": torch.from_numpy(soup.val_probs)}
    if test_probs is not None:
        predictions["test_probs"] = torch.from_numpy(test_probs)
    return TrialOutput(key, result, predictions, soup.state)

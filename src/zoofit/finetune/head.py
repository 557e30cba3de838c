"""A linear head on a ranked model's frozen features as a unit of work: the logistic regression of
:mod:`zoofit.rank.probe` (its C chosen on validation, never on test) on the features the ranking cached, saved as
the model's pre-trained network with its classifier replaced by a ``Linear`` that holds the regression's weights
(the standardisation folded in), and stored in the run like a trial, keyed by its inputs, so that ``predict``,
``export``, ``evaluate`` and a rerun treat it as any member. Its refit is the same C fitted on train + validation.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from zoofit.errors import ModelError
from zoofit.evaluate import summarize
from zoofit.finetune.sweep import TrialContext, TrialOutput, TrialRecord, TrialResult, load_record
from zoofit.finetune.trial import new_head
from zoofit.rank import Ranker
from zoofit.rank.features import FEATURES_VERSION
from zoofit.rank.probe import STRENGTHS, FrozenFeatures, LinearHead, fit_head, fit_probe, frozen_features
from zoofit.result import FailedTrial, Scores
from zoofit.store import content_key
from zoofit.sweep_config import TrialConfig
from zoofit.zoo.load import count_gflops

HEAD_VERSION = 1  # bump when fitting or saving a head changes, so old heads are not reused


def head_config(size: int, seed: int, refit: bool) -> TrialConfig:
    """A head's settings as a member records them: no training steps (``depth()`` is ``frozen``), at ``size``."""
    return TrialConfig(lr=0.0, steps=0, batch_size=0, image_size=size, seed=seed, flip=False, shift=0.0, refit=refit)


def linear_head(
    ranker: Ranker, model: str, context: TrialContext, seed: int, *, strength: float | None = None
) -> TrialRecord | FailedTrial:
    """The linear head of the ranked ``model``, from the run where stored, else fitted and stored there; with a
    ``strength`` (a refit), that C fitted on the training and validation images. A head that cannot be made is a
    :class:`FailedTrial` of kind ``linear`` with the reason (nothing stored: a rerun tries again)."""
    row = next(row for row in ranker.ranking_ if row.model == model)
    spec = next(spec for spec in ranker.zoo_.models if spec.id == model)
    splits, refit = context.splits, strength is not None
    config = head_config(row.input_size, seed, refit)
    test = splits.test.fingerprint if splits.test is not None else None
    key = content_key(
        "linear-head", HEAD_VERSION, FEATURES_VERSION, spec.identity(), row.input_size, ranker.machine.precision,
        splits.train.fingerprint, splits.val.fingerprint, test, strength if refit else STRENGTHS,
    )  # fmt: skip
    store = context.store
    reused = store.has_trial(key)
    if not reused:
        try:
            _fitted(frozen_features(ranker, model, splits), context, key, config, strength).save(store)
        except Exception as error:  # whatever the model or the fit raised fails this head alone
            return FailedTrial(key, model, config, str(ModelError.failed(model, error)), kind="linear")
    return load_record(store, key, model, config, reused)


def _fitted(
    features: FrozenFeatures, context: TrialContext, key: str, config: TrialConfig, strength: float | None
) -> TrialOutput:
    """The head fitted on ``features`` (C chosen on validation, or ``strength`` on train + validation), with its
    predictions and the network it is saved as."""
    start, splits = time.perf_counter(), context.splits
    classes = len(splits.class_names)
    if strength is None:
        fitted = fit_probe(features.train, splits.train.labels, features.val, splits.val.labels, features.test, classes)
        head, strength = fitted.head, fitted.strength
    else:
        both = np.concatenate([features.train, features.val])
        head = fit_head(both, np.concatenate([splits.train.labels, splits.val.labels]), strength, classes)
    val_probs, test_probs = head.probabilities(features.val), head.probabilities(features.test)
    loaded = features.loaded
    checkpoint = head_state(loaded.model, head)
    result = TrialResult(
        trial=key, model=loaded.spec.id, arch=loaded.spec.arch, arch_kwargs=loaded.spec.arch_kwargs,
        num_classes=splits.train.num_classes, config=config, preprocessing=features.prep,
        gflops=count_gflops(loaded.model, features.prep.input_size), seconds=time.perf_counter() - start,
        val=Scores(**summarize(val_probs, splits.val.labels)), test=Scores(**summarize(test_probs, splits.test.labels)),
        losses=(), kind="linear", strength=strength,
    )  # fmt: skip
    predictions = {name: torch.from_numpy(probs.astype(np.float32)) for name, probs in
                   (("val_probs", val_probs), ("test_probs", test_probs))}  # fmt: skip
    return TrialOutput(key, result, predictions, checkpoint)


def head_state(model: torch.nn.Module, head: LinearHead) -> dict[str, torch.Tensor]:
    """The state of ``model`` with its classifier replaced by a ``Linear`` holding ``head`` (``model`` changed)."""
    new_head(model, len(head.bias))
    classifier = model.get_classifier()
    if not isinstance(classifier, torch.nn.Linear) or tuple(classifier.weight.shape) != head.weight.shape:
        raise ValueError(
            f"its classifier is a {type(classifier).__name__}, not a linear layer on the pre-logit features"
        )
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(head.weight))
        classifier.bias.copy_(torch.from_numpy(head.bias))
    return {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}

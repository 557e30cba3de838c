"""Greedy model soups (Wortsman et al., 2022): the weights of one model's fine-tuned trials averaged, adding the
trials in order of validation accuracy and keeping each only where the soup's validation NLL does not get worse.
A soup costs one forward pass, however many trials it holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zoofit.evaluate import nll

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Soup:
    """The chosen ``ingredients`` (indices of the candidates, best first), their averaged ``state`` and its
    validation probabilities."""

    ingredients: tuple[int, ...]
    state: State
    val_probs: np.ndarray


def average_states(states: Sequence[State]) -> State:
    """The mean of ``states``, tensor by tensor; a tensor equal in all of them (a layer kept frozen, a counter)
    is kept as it is."""
    mean: State = {}
    for name, first in states[0].items():
        tensors = [state[name] for state in states]
        if not first.is_floating_point() or all(torch.equal(first, tensor) for tensor in tensors[1:]):
            mean[name] = first
        else:
            mean[name] = torch.stack([tensor.double() for tensor in tensors]).mean(dim=0).to(first.dtype)
    return mean


def greedy_soup(
    states: Sequence[State],
    val_probs: Sequence[np.ndarray],
    labels: np.ndarray,
    evaluate: Callable[[State], np.ndarray],
) -> Soup:
    """The greedy soup of candidates ``states`` (ordered best first, with their own validation probabilities
    ``val_probs``): each next candidate joins where the validation NLL (on ``labels``) of the averaged weights,
    predicted by ``evaluate(state)``, is no worse than the soup's so far."""
    chosen, state, probs = [0], states[0], val_probs[0]
    best = nll(probs, labels)
    for index in range(1, len(states)):
        candidate = average_states([states[i] for i in (*chosen, index)])
        candidate_probs = evaluate(candidate)
        if (candidate_nll := nll(candidate_probs, labels)) <= best:
            chosen, state, probs, best = [*chosen, index], candidate, candidate_probs, candidate_nll
    return Soup(tuple(chosen), state, probs)

"""One trial: fine-tuning of one model with one set of hyper-parameters and one seed."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zoofit.data import ImageSet, Splits
from zoofit.device import autocast, to_device, to_input, upload
from zoofit.errors import first_line
from zoofit.finetune.freeze import freeze_early_layers
from zoofit.progress import Progress, SilentProgress
from zoofit.sweep_config import TrialConfig
from zoofit.zoo import LoadedModel, Preprocessing, prepare_batch
from zoofit.zoo.inference import fold_batch_norms, forward_batches, frozen_batch_norms_folded, probabilities

log = logging.getLogger("zoofit")

#: Endless training batches (inputs, targets) on a device, made for a model's preprocessing from a seeded numpy
#: and torch generator: ``batches(prep, rng, generator, device)``.
Batches = Callable[
    [Preprocessing, np.random.Generator, torch.Generator, torch.device], Iterator[tuple[torch.Tensor, torch.Tensor]]
]
#: A training loss of the logits (float) and the targets: ``loss(logits, targets)``.
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainedTrial:
    """What a trial produces: the fine-tuned weights, its predictions and its training curve."""

    state: dict[str, torch.Tensor]
    preprocessing: Preprocessing
    val_probs: np.ndarray
    test_probs: np.ndarray | None
    losses: np.ndarray  # training loss per step
    seconds: float


def new_head(model: torch.nn.Module, num_classes: int) -> None:
    """Replace the classifier with a zero-initialised one for ``num_classes`` (as in the paper)."""
    model.reset_classifier(num_classes)
    head = model.get_classifier()
    for parameter in (getattr(head, "weight", None), getattr(head, "bias", None)):
        if parameter is not None:
            torch.nn.init.zeros_(parameter)


def warmup_cosine(steps: int, warmup_fraction: float):
    """Learning-rate factor per step: linear warm-up, then cosine decay to zero."""
    warmup = max(1, round(steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def batch_indices(count: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches drawn from shuffled passes over ``count`` images."""
    queue = np.empty(0, dtype=np.int64)
    while True:
        while len(queue) < batch_size:
            queue = np.concatenate([queue, rng.permutation(count)])
        yield queue[:batch_size]
        queue = queue[batch_size:]


def augment(inputs: torch.Tensor, config: TrialConfig, generator: torch.Generator) -> torch.Tensor:
    """Random translation (reflect-padded crop) and optional horizontal flip, per image. The crops are two
    gathers, not a slice per image: on a GPU that is two kernel launches instead of one per image."""
    count, channels, size = inputs.shape[0], inputs.shape[1], inputs.shape[-1]
    pad = round(size * config.shift)
    if pad:
        padded = F.pad(inputs, (pad, pad, pad, pad), mode="reflect")
        offsets = upload(torch.randint(0, 2 * pad + 1, (count, 2), generator=generator), inputs.device)
        span = torch.arange(size, device=inputs.device)
        rows, columns = (offsets[:, axis, None] + span for axis in (0, 1))  # count x size, each
        inputs = padded.gather(2, rows[:, None, :, None].expand(-1, channels, -1, size + 2 * pad))
        inputs = inputs.gather(3, columns[:, None, None, :].expand(-1, channels, size, -1))
    if config.flip:
        flips = upload(torch.rand(len(inputs), generator=generator) < 0.5, inputs.device)
        inputs = torch.where(flips[:, None, None, None], inputs.flip(-1), inputs)
    return inputs


def train_trial(
    loaded: LoadedModel,
    splits: Splits,
    config: TrialConfig,
    *,
    device: torch.device,
    precision: str,
    eval_precision: str | None = None,
    eval_batch_size: int = 128,
    progress: Progress | None = None,
    description: str = "trial",
    cuda_graphs: bool = True,
    batches: Batches | None = None,
    loss: Loss = F.cross_entropy,
) -> TrainedTrial:
    """Fine-tune ``loaded`` on ``splits.train`` (SGD, momentum 0.9, warm-up + cosine; the layers up to
    ``config.freeze_stride`` stay as pre-trained), then predict the validation and test splits (in
    ``eval_precision``, default ``precision``). Deterministic on the CPU for a given seed. On a GPU the
    forward and backward passes are replayed from CUDA graphs (see :func:`cuda_graphs_of`;
    ``cuda_graphs=False`` runs them eagerly). ``batches`` and ``loss`` replace the augmented labelled training
    images and the cross-entropy (a distilled student's views and its teacher's probabilities, say)."""
    eval_precision = eval_precision or precision
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = loaded.model
    new_head(model, splits.train.num_classes)
    prep = loaded.preprocessing.with_size(config.image_size)
    frozen = freeze_early_layers(model.train(), config.freeze_stride, prep.input_size)
    if config.freeze_stride and not frozen:
        log.info(
            "%s: no stage up to stride %d to keep; the whole network is fine-tuned", description, config.freeze_stride
        )
    model = to_device(model, device)  # the same module, its training flags kept
    make = batches or functools.partial(_batches, splits.train, config=config)
    losses = train_steps(
        model, make(prep, rng, generator, device), config, frozen=frozen, input_size=prep.input_size,
        device=device, precision=precision, progress=progress or SilentProgress(), description=description,
        cuda_graphs=cuda_graphs, loss=loss,
    )  # fmt: skip
    model.eval()
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    model = fold_batch_norms(model, prep.input_size)
    val_probs = predict(model, splits.val, prep, device, eval_precision, eval_batch_size)
    test = splits.test
    test_probs = predict(model, test, prep, device, eval_precision, eval_batch_size) if test is not None else None
    return TrainedTrial(
        state, prep, val_probs, test_probs, torch.stack(losses).float().cpu().numpy(), time.perf_counter() - start
    )


def _batches(
    train: ImageSet,
    prep: Preprocessing,
    rng: np.random.Generator,
    generator: torch.Generator,
    device: torch.device,
    *,
    config: TrialConfig,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented training batches on ``device``: the inputs and their labels."""
    for indices in batch_indices(len(train), config.batch_size, rng):
        inputs = augment(prepare_batch(train.batch(indices), prep, device), config, generator)
        yield to_input(inputs), upload(torch.as_tensor(train.labels[indices]), device)


def train_steps(
    model: torch.nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    config: TrialConfig,
    *,
    frozen: list[torch.nn.Module],
    input_size: int,
    device: torch.device,
    precision: str,
    progress: Progress,
    description: str,
    cuda_graphs: bool,
    loss: Loss = F.cross_entropy,
) -> list[torch.Tensor]:
    """Each step's ``loss``, ``config.steps`` steps of SGD (momentum 0.9, warm-up then cosine decay) on
    ``batches`` (inputs, targets), the ``frozen`` layers' batch norms folded; the first batch is also the example
    the CUDA graphs are captured for."""
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, momentum=0.9,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(config.steps, config.warmup_fraction))
    losses: list[torch.Tensor] = []
    with progress.task(description, total=config.steps) as task:
        first = next(batches)
        with (
            frozen_batch_norms_folded(model, frozen, input_size),
            cuda_graphs_of(model, first[0], precision, description, enabled=cuda_graphs),
        ):
            for inputs, targets in itertools.chain([first], itertools.islice(batches, config.steps - 1)):
                with autocast(device, precision):
                    value = loss(model(inputs).float(), targets)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                schedule.step()
                losses.append(value.detach())
                task.advance()
    return losses


@contextmanager
def cuda_graphs_of(
    model: torch.nn.Module, example: torch.Tensor, precision: str, description: str, *, enabled: bool = True
) -> Iterator[None]:
    """Within: ``model`` (on a GPU, in training mode) runs its forward and backward passes by replaying CUDA
    graphs, captured once for inputs shaped like ``example``, instead of launching each kernel from Python
    (a MobileNetV2 trial on an H200: 1.17x, benchmarks/results/gpu_suite-gpu.json). The loss, the optimizer
    and evaluation (in eval mode) stay eager. Capture runs a few passes, so the normalisation statistics are
    put back afterwards; a model that cannot be captured (an operation that waits for the host, say) runs
    eagerly, with a log line. Nothing happens on a CPU or with ``enabled=False``."""
    if not enabled or example.device.type != "cuda":
        yield
        return
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        with autocast(example.device, precision, cache=False):
            torch.cuda.make_graphed_callables(model, (example,))  # replaces model.forward
    except (RuntimeError, AssertionError) as error:
        log.info("%s: trained without CUDA graphs (%s)", description, first_line(error))
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
    try:
        yield
    finally:
        model.__dict__.pop("forward", None)  # the class's forward again; the graphs and their memory go


def predict(
    model: torch.nn.Module, images: ImageSet, prep: Preprocessing, device: torch.device, precision: str, batch: int
) -> np.ndarray:
    return forward_batches(
        model, images.images, prep, probabilities, device=device, precision=precision, batch_size=batch
    ).numpy()

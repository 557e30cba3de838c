"""Where and how models run: device, precision (bf16 autocast where the hardware has it), memory format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

import torch

from zoofit.errors import ParameterError

PRECISIONS = ("auto", "fp32", "bf16")
_batch_threads: ContextVar[Callable[[], int] | None] = ContextVar("zoofit_batch_threads", default=None)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; anything else must be a device torch knows."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ParameterError.of(
            "device", f"'{device}' is not a device torch knows (auto, cpu, cuda, cuda:N)"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"{{device}} '{device}' asked for CUDA, but no GPU is visible; use the CPU ('cpu')")
    return resolved


def default_batch_size(device: torch.device) -> int:
    """For inference: small batches stay in a CPU's caches (measured fastest on 2 cores); a GPU wants large ones."""
    return 256 if device.type == "cuda" else 16


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA, or a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return True
    cpu = torch.cpu
    return bool(
        getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )


def resolve_precision(precision: str, device: torch.device, *, training: bool = False) -> str:
    """``auto`` is bf16 where the device computes it natively, else fp32; for training on a CPU it is fp32
    (measured no faster in bf16 there: the backward pass gains nothing)."""
    if precision not in PRECISIONS:
        raise ParameterError.of("precision", f"must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    if precision == "auto":
        if training and device.type != "cuda":
            return "fp32"
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str, *, cache: bool = True) -> AbstractContextManager:
    """bf16 autocast for ``precision="bf16"``; ``cache=False`` while a CUDA graph is captured (its casts must
    be part of the graph)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on a CPU, where convolutions run fastest in it; NCHW on a GPU, where channels_last
    costs a depthwise-convolution model seconds of first use per process and shape (efficientnet_b0 on an
    H200: 8.8 s vs 1.0 s) for a few percent of steady speed (benchmarks/results/gpu_probe-gpu.json)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device`` in the device's fast memory format."""
    return model.to(device=device, memory_format=memory_format(device))


def upload(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A CPU tensor on ``device``. To a GPU it goes through pinned memory, without waiting: a copy from
    ordinary (pageable) memory first waits for all the work queued on the GPU, so the host could not prepare
    the next batch, or launch the next step, while the GPU computes."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.contiguous(memory_format=memory_format(batch.device))


@contextmanager
def threads_per_batch(threads: Callable[[], int]) -> Iterator[None]:
    """Within, in this thread: before each batch of inference, torch runs on ``threads()`` CPU threads (see
    :func:`take_batch_threads`; a ranking's lanes share a CPU's cores out this way). The count is left as the
    last batch set it: restore it where it matters (:func:`zoofit.execute.base.torch_threads`)."""
    token = _batch_threads.set(threads)
    try:
        yield
    finally:
        _batch_threads.reset(token)


def take_batch_threads() -> None:
    """This thread's torch thread count for its next batch, where :func:`threads_per_batch` gives one."""
    wanted = _batch_threads.get()
    if wanted is not None and (threads := wanted()) != torch.get_num_threads():  # setting it costs, even unchanged
        torch.set_num_threads(threads)

"""Device, precision and memory-format choices."""

from __future__ import annotations

import pytest
import torch

from zoofit.device import memory_format, resolve_device, resolve_precision, to_device, to_input
from zoofit.errors import ZoofitError

CPU = torch.device("cpu")


def test_cpu_runs_channels_last_and_a_gpu_nchw() -> None:
    model = to_device(torch.nn.Conv2d(3, 4, 3), CPU)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert to_input(torch.zeros(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    assert memory_format(torch.device("cuda")) == torch.contiguous_format


def test_training_on_a_cpu_defaults_to_fp32() -> None:
    assert resolve_precision("auto", CPU, training=True) == "fp32"
    assert resolve_precision("bf16", CPU, training=True) == "bf16"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve_precision("fp8", CPU), "^precision must be one of auto, fp32, bf16, not 'fp8'$"),
        (lambda: resolve_device("tpu:zero"), "^device 'tpu:zero' is not a device torch knows"),
    ],
)
def test_bad_device_options_are_one_line_errors(call, message) -> None:
    with pytest.raises(ZoofitError, match=message):
        call()

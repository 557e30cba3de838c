"""Architectures of small pre-trained experts of other upstream tasks that ship inside PyPI wheels (see the
``offline-diverse`` preset): zoofit's own modules whose tensors, in order and shape, are those of the shipped
checkpoints, so the ``positional`` and ``keras`` converters load them strictly. Each takes RGB images."""

from __future__ import annotations

import torch
from torch import nn


class _Grey(nn.Module):
    """RGB -> one grey channel (the mean of the three; zoofit feeds a grey image as three equal channels)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=1, keepdim=True)


def _conv_relu_pool(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]


def mnist_cnn() -> nn.Module:
    """The MNIST digit CNN of ``digit-recognizer-py==0.1.0`` (1 x 28 x 28 input, MNIST mean/std): three 3x3
    convolutions of 32/64/128 channels, each with ReLU and 2x2 max pooling, a 256-unit hidden layer and a 10-way
    classifier ``2.2`` (features: the 256 hidden units after their ReLU)."""
    return nn.Sequential(
        _Grey(),
        nn.Sequential(*_conv_relu_pool(1, 32), *_conv_relu_pool(32, 64), *_conv_relu_pool(64, 128), nn.Flatten()),
        nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10)),
    )


def _conv_relu_norm(inputs: int, outputs: int) -> list[nn.Module]:
    """Keras' ``Conv2D(activation='relu')`` ('valid' padding) then ``BatchNormalization`` (epsilon 1e-3)."""
    return [nn.Conv2d(inputs, outputs, 3), nn.ReLU(), nn.BatchNorm2d(outputs, eps=1e-3)]


def cifar10_cnn() -> nn.Module:
    """The Keras CIFAR-10 CNN of ``cifar-10-model==7.4.0`` (32 x 32 RGB input of raw 0-255 values): three blocks
    of two 3x3 convolutions (64, 128, 64 channels; each ReLU then batch norm), 2x2 max pooling after the first two
    blocks, then dense layers of 1024 and 512 units (ReLU) and a 10-way classifier ``1.5`` (Keras put a ReLU on
    its logits; zoofit replaces the classifier anyway)."""
    blocks = [
        *_conv_relu_norm(3, 64), *_conv_relu_norm(64, 64), nn.MaxPool2d(2),
        *_conv_relu_norm(64, 128), *_conv_relu_norm(128, 128), nn.MaxPool2d(2),
        *_conv_relu_norm(128, 64), *_conv_relu_norm(64, 64),
    ]  # fmt: skip
    dense = [nn.Flatten(), nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 10)]
    return nn.Sequential(nn.Sequential(*blocks), nn.Sequential(*dense))

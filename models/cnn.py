"""The convolutional network: blocks of conv -> (batch norm) -> 2x2 max-pool ->
activation (with ``convs_per_block`` > 1, conv -> (batch norm) -> activation
before the block's last conv), then the same fully connected head as the MLP.

It takes the pipeline's flattened images (N x H*W) as well as N x 1 x H x W, so
every step that feeds an MLP (batches, augmentation, evaluation, the judge)
feeds a CNN unchanged. Three choices make it about twice as fast on a CPU
(docs/performance.md), none of which changes what it can learn:
- convolutions are unpadded ("valid") unless ``padding="same"``: on MNIST's
  centred digits the border holds no ink, and the smaller maps halve the work
  (Fashion-MNIST's garments fill the frame, and gain from "same");
- pooling comes before the activation: for a monotonic activation (relu,
  leaky_relu, tanh, sigmoid) the result is the same, on a quarter of the values;
- activations and weights are channels-last, the layout oneDNN's (and cuDNN's)
  fastest convolution and pooling kernels use.

With ``test_flip``, the network in eval mode also classifies every image
mirrored left to right and answers the mean of the two logits: test-time
augmentation for Fashion-MNIST, inside the network so that evaluation, the
service and the ONNX export all do it. Training never sees it.
"""

from __future__ import annotations

import torch
from torch import nn

from .mlp import ACTIVATIONS, dense_layers, max_norm_


class CNN(nn.Module):
    def __init__(self, channels: list[int], kernels: list[int], hidden: list[int], activation: str = "relu",
                 dropout: float = 0.0, batch_norm: bool = False, input_shape: tuple[int, int] = (28, 28),
                 classes: int = 10, padding: str = "valid", convs_per_block: int = 1,
                 test_flip: bool = False) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.test_flip = test_flip
        blocks: list[nn.Module] = []
        width = 1
        for out, kernel in zip(channels, kernels):
            for conv in range(convs_per_block):
                # A bias before batch norm is cancelled by its mean subtraction.
                blocks.append(nn.Conv2d(width, out, kernel, padding=padding, bias=not batch_norm))
                if batch_norm:
                    blocks.append(nn.BatchNorm2d(out))
                if conv < convs_per_block - 1:
                    blocks.append(ACTIVATIONS[activation]())
                width = out
            blocks += [nn.MaxPool2d(2), ACTIVATIONS[activation]()]
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():  # the head's input size, from the shapes themselves
            flat = self.features(torch.zeros(1, 1, *self.input_shape)).numel()
        self.head = nn.Sequential(*dense_layers(flat, list(hidden), activation, dropout, classes))
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, *self.input_shape)
        if self.test_flip and not self.training:
            return (self._logits(x) + self._logits(x.flip(-1))) / 2
        return self._logits(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x).flatten(1))

    def apply_max_norm(self, max_norm: float) -> None:
        max_norm_(self.head, max_norm)

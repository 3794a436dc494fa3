# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""PyTorch backend: eager fp32 on the CPU (and GPU)."""

import torch

from lseg_ros.core.backends.base import EncoderBackend
from lseg_ros.core.checkpoint import build_image_encoder


class TorchBackend(EncoderBackend):
    """The image encoder in PyTorch."""

    name = 'torch'

    def __init__(self, weights, device: torch.device, precision: str = 'fp32'):
        super().__init__(device, precision)
        self.model = build_image_encoder(weights, device)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised input."""
        return self.model(x)

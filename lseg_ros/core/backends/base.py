# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The image-encoder backend interface and the factory that picks one.

A backend turns the normalised (B, 3, H, W) float32 network input, a tensor on
``backend.device``, into (B, 512, H/2, W/2) image features on the same device.  ``max_batch``
is the largest B it takes in one call (None: any; an ONNX file or engine with a fixed batch
of one: 1); the pipeline splits larger batches.  The text
encoder and the head are not part of a backend: they run in PyTorch on the same device.
Heavy optional modules (onnxruntime, tensorrt) are imported only by the backend that uses
them.
"""

from abc import ABC, abstractmethod
import logging
from typing import Dict, Optional

import torch

from lseg_ros.core.errors import BackendError

LOG = logging.getLogger(__name__)


class EncoderBackend(ABC):
    """Runs the LSeg image encoder.

    ``fallback_reason`` is set by :func:`create_backend` when ``auto`` could not use a
    configured engine or ONNX file (e.g. ``'engine /m.engine not used: ...'``), else None;
    :meth:`describe` reports it as ``fallback``.
    """

    name = 'base'
    fallback_reason: Optional[str] = None
    max_batch: Optional[int] = None
    #: True when every new input shape costs a capture or a compilation: the pipeline then
    #: pads batches to powers of two so that few shapes occur.
    pad_batches: bool = False

    def __init__(self, device: torch.device, precision: str):
        self.device = torch.device(device)
        self.precision = precision

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised (B, 3, H, W) input into (B, 512, H/2, W/2) features."""

    def describe(self) -> Dict[str, str]:
        """Return what this backend runs, for logs, diagnostics and benchmark reports."""
        info = {'backend': self.name, 'device': str(self.device), 'precision': self.precision}
        if self.fallback_reason:
            info['fallback'] = self.fallback_reason
        return info

    def close(self) -> None:
        """Release resources (GPU memory, engines)."""


def resolve_device(device='auto') -> torch.device:
    """Return an explicit device: ``cpu`` or ``cuda:N`` (always with its index).

    ``auto`` -> the current CUDA device when a GPU is usable, else ``cpu``; ``cuda`` -> the
    current CUDA device; ``cuda:N`` is checked against the GPUs present.  The index matters:
    ``torch.cuda.set_device`` and per-thread binding refuse an index-less ``cuda``.
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or 'auto').strip().lower()
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise BackendError(f'invalid device {device!r}: {error}') from None
    if resolved.type != 'cuda':
        return resolved
    if not torch.cuda.is_available():
        raise BackendError(f'device {device!r} requested but no CUDA GPU is available '
                           '(use device "cpu" or "auto")')
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= count:
        raise BackendError(f'device {device!r} requested but this machine has {count} CUDA '
                           f'GPU(s): cuda:0 to cuda:{count - 1}')
    return torch.device('cuda', index)

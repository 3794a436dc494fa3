# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The image-encoder backend interface and the factory that picks one.

A backend turns the normalised (1, 3, H, W) float32 network input, a tensor on
``backend.device``, into (1, 512, H/2, W/2) image features on the same device.  The text
encoder and the head are not part of a backend: they run in PyTorch on the same device.
Heavy optional modules (onnxruntime, tensorrt) are imported only by the backend that uses
them.
"""

from abc import ABC, abstractmethod
from typing import Dict, Optional

import torch

from lseg_ros.core.errors import BackendError

#: Names accepted by the ``backend`` parameter, in the order ``auto`` prefers them.
BACKENDS = ('auto', 'tensorrt', 'torch', 'onnxruntime')
PRECISIONS = ('fp32', 'fp16')


class EncoderBackend(ABC):
    """Runs the LSeg image encoder."""

    name = 'base'

    def __init__(self, device: torch.device, precision: str):
        self.device = torch.device(device)
        self.precision = precision

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised (1, 3, H, W) input into (1, 512, H/2, W/2) features."""

    def warmup(self, height: int, width: int) -> None:
        """Run once at a network input size so the first real frame is not slow."""
        self(torch.zeros(1, 3, height, width, device=self.device))

    def describe(self) -> Dict[str, str]:
        """Return what this backend runs, for logs, diagnostics and benchmark reports."""
        return {'backend': self.name, 'device': str(self.device), 'precision': self.precision}

    def close(self) -> None:
        """Release resources (GPU memory, engines)."""


def resolve_device(device='auto') -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; checks explicit choices."""
    if isinstance(device, torch.device):
        return device
    device = (device or 'auto').strip().lower()
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise BackendError(f'invalid device {device!r}: {error}') from None
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise BackendError(f'device {device!r} requested but no CUDA GPU is available '
                           '(use device "cpu" or "auto")')
    return resolved


def create_backend(name: str, weights=None, device: str = 'auto', precision: str = 'fp32',
                   engine: Optional[str] = None, onnx: Optional[str] = None,
                   **options) -> EncoderBackend:
    """Create the backend ``name`` (``auto`` picks the best one that can run here).

    ``weights`` (:class:`~lseg_ros.core.checkpoint.LsegWeights`) feeds the torch backend;
    ``engine`` a TensorRT engine file; ``onnx`` an ONNX file for ONNX Runtime.
    """
    name = (name or 'auto').strip().lower()
    if name not in BACKENDS:
        raise BackendError(f'unknown backend {name!r}; choose one of {", ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise BackendError(f'unknown precision {precision!r}; choose one of '
                           f'{", ".join(PRECISIONS)}')
    resolved = resolve_device(device)
    if name == 'auto':
        name = _auto_backend(resolved, engine, onnx)
    if name == 'torch':
        from lseg_ros.core.backends.torch_backend import TorchBackend
        if weights is None:
            raise BackendError('the torch backend needs a checkpoint')
        return TorchBackend(weights, resolved, precision, **options)
    if name == 'onnxruntime':
        from lseg_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend
        return OnnxRuntimeBackend(onnx, resolved, precision, **options)
    from lseg_ros.core.backends.tensorrt_backend import TensorRTBackend
    return TensorRTBackend(engine, resolved, precision, **options)


def _auto_backend(device: torch.device, engine: Optional[str], onnx: Optional[str]) -> str:
    """Pick a backend for ``auto``.

    TensorRT when an engine is configured and TensorRT runs here, else ONNX Runtime when
    only an ONNX file is configured, else torch.
    """
    if engine and device.type == 'cuda':
        from lseg_ros.core.backends.tensorrt_backend import tensorrt_available
        if tensorrt_available():
            return 'tensorrt'
    if onnx and not engine:
        return 'onnxruntime'
    return 'torch'

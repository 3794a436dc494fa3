# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Image-encoder backends behind one interface.

The interface (:mod:`.base`), the factory (:mod:`.factory`), the implementations (torch,
ONNX Runtime, TensorRT) and what a deployed file is and whether it runs here
(:mod:`.artifacts`).
"""

from lseg_ros.core.backends.base import EncoderBackend, resolve_device
from lseg_ros.core.backends.factory import create_backend
from lseg_ros.core.options import BACKENDS

__all__ = ['BACKENDS', 'EncoderBackend', 'create_backend', 'resolve_device']

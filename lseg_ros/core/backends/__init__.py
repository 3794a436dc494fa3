# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Image-encoder backends behind one interface (see :mod:`.base`)."""

from lseg_ros.core.backends.base import (BACKENDS, create_backend, EncoderBackend,
                                         resolve_device)

__all__ = ['BACKENDS', 'EncoderBackend', 'create_backend', 'resolve_device']

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where lseg_ros keeps generated files (vocabulary embeddings, reference checkpoints)."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LSEG_ROS_CACHE`` or ``~/.cache/lseg_ros``."""
    return Path(os.environ.get('LSEG_ROS_CACHE', Path.home() / '.cache' / 'lseg_ros'))

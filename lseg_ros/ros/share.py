# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Files the package installs under share/lseg_ros (the source tree's when not installed)."""

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def installed_config(name: str) -> str:
    """Return share/lseg_ros/config/``name`` (config/``name`` of the source tree if absent)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = Path(get_package_share_directory('lseg_ros')) / 'config' / name
        if path.exists():
            return str(path)
    except (ImportError, LookupError, ValueError, OSError):
        pass
    return str(SOURCE_ROOT / 'config' / name)

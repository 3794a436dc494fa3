# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Open-vocabulary semantic segmentation (LSeg) for ROS 2."""

__version__ = '0.1.0'

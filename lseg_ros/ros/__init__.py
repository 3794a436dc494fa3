# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS 2 layer: the /lseg node, its parameters and QoS, bench, replay, demo."""

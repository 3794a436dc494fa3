# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS-free file and message formats: image payloads, rosbag2 bags, sample bags."""

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS-free core of lseg_ros: models, checkpoint loading, pre/post-processing, backends.

Nothing under ``lseg_ros.core`` imports rclpy or any ROS message package.
"""

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""QoS profiles of the node's topics (shared with bench's transport echo)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_system_default,
                       QoSProfile, ReliabilityPolicy)


def input_qos(name: str) -> QoSProfile:
    """Return the QoS of the image subscription for an ``input_qos`` value."""
    if name == 'system_default':
        return qos_profile_system_default
    reliability = ReliabilityPolicy.RELIABLE if name == 'reliable' else \
        ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                        reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
CAMERA_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.BEST_EFFORT)

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Bag archives on Ray Data: many bags, many GPUs, resumable (``segment_bags``)."""

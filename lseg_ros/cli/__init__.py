# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Command-line entry points (console scripts) of lseg_ros."""

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The network: LSeg variants, checkpoint loading, image and text encoders, head."""

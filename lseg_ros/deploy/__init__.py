# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment tools: ONNX export, TensorRT engine build, latency and fidelity reports."""

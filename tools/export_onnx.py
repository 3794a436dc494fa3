#!/usr/bin/env python3
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``export_onnx``: see lseg_ros/cli/export_onnx.py (also ``ros2 run lseg_ros export_onnx``)."""

from pathlib import Path
import sys

sys.path.append(str(Path(__file__).resolve().parents[1]))     # a source checkout's lseg_ros/
try:
    from lseg_ros.cli.export_onnx import entry
except ImportError as error:
    sys.exit(f'export_onnx: error: cannot import lseg_ros ({error}); run "source env.sh" in the '
             'lseg_ros checkout (or install the package) first')

if __name__ == '__main__':
    sys.exit(entry())

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The core imports without ROS, and optional heavy modules stay lazy."""

import subprocess
import sys

CODE = '''
import sys
for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'tensorrt', 'tensorrt_rtx', 'onnxruntime'):
    sys.modules[name] = None     # any import of these now raises ImportError
import pkgutil, importlib, lseg_ros.core
for info in pkgutil.walk_packages(lseg_ros.core.__path__, 'lseg_ros.core.'):
    importlib.import_module(info.name)
import lseg_ros.cli.segment
print('ok')
'''


def test_core_imports_without_ros_and_optional_backends():
    out = subprocess.run([sys.executable, '-c', CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'

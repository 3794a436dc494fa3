# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The layers of docs/architecture.md: what each folder of lseg_ros may import.

Every import of every module is read (also the lazy ones inside functions), so a boundary
cannot be crossed by importing late.  Then the runtime is imported with ROS, ONNX Runtime
and TensorRT made unimportable.
"""

import ast
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / 'lseg_ros'

#: folder -> lseg_ros sub-packages it must never import (prefix match on module names).
FORBIDDEN = {
    'core': ('lseg_ros.deploy', 'lseg_ros.formats', 'lseg_ros.ros', 'lseg_ros.cli'),
    'formats': ('lseg_ros.deploy', 'lseg_ros.ros', 'lseg_ros.cli'),
    'deploy': ('lseg_ros.ros', 'lseg_ros.cli'),
    'archive': ('lseg_ros.deploy', 'lseg_ros.ros', 'lseg_ros.cli'),
    'ros': ('lseg_ros.cli',),
}
#: third-party modules a folder must never import.
NEVER = {'core': ('rclpy',), 'formats': ('rclpy',), 'deploy': ('rclpy',),
         'archive': ('rclpy',)}


def imports_of(path: Path):
    """Return every module name ``path`` imports (absolute; lazy imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f'{node.module}.{alias.name}' for alias in node.names]
    return names


def modules(folder: str):
    return sorted((PACKAGE / folder).rglob('*.py'))


@pytest.mark.parametrize('folder', sorted(FORBIDDEN))
def test_each_layer_imports_only_what_is_below_it(folder):
    crossings = []
    for path in modules(folder):
        for name in imports_of(path):
            bad = [p for p in FORBIDDEN[folder] + NEVER.get(folder, ())
                   if name == p or name.startswith(p + '.')]
            if bad:
                crossings.append(f'{path.relative_to(PACKAGE.parent)} imports {name}')
    assert not crossings, '\n'.join(crossings)


def test_backends_use_neither_the_exporter_nor_the_engine_builder():
    crossings = [f'{path.name} imports {name}'
                 for path in modules('core/backends') for name in imports_of(path)
                 if name.startswith(('lseg_ros.deploy.export', 'lseg_ros.deploy.engine_build'))]
    assert not crossings, '\n'.join(crossings)


CODE = '''
import sys
for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'tensorrt', 'tensorrt_rtx', 'onnxruntime'):
    sys.modules[name] = None     # any import of these now raises ImportError
import pkgutil, importlib, lseg_ros.core, lseg_ros.formats, lseg_ros.deploy, lseg_ros.archive
for package in (lseg_ros.core, lseg_ros.formats, lseg_ros.deploy, lseg_ros.archive):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):
        importlib.import_module(info.name)
import lseg_ros.cli.segment, lseg_ros.cli.segment_bag, lseg_ros.cli.segment_bags
print('ok')
'''


def test_core_formats_deploy_and_archive_import_without_ros_onnxruntime_or_tensorrt():
    out = subprocess.run([sys.executable, '-c', CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'

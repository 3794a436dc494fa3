# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The launch file starts /lseg with config/lseg.yaml (where launch is installed)."""

import importlib.util
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAVE_LAUNCH = all(importlib.util.find_spec(m) for m in ('launch', 'launch_ros'))

pytestmark = [pytest.mark.ros, pytest.mark.skipif(
    not HAVE_LAUNCH, reason='launch/launch_ros are not installed (they are not on PyPI; a '
    'system ROS 2 has them): see README "What is verified where" for how it was checked')]

# What `ros2 launch lseg_ros segment.launch.py ARGS` does: a LaunchService in a main thread.
LAUNCH = '''
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService()
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[a.split(':=', 1) for a in sys.argv[2:]])]))
sys.exit(service.run())
'''


def test_launch_file_starts_the_node(rn_checkpoint, tmp_path):
    from support.ros import RosClient
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    log = open(tmp_path / 'launch.log', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-c', LAUNCH, str(ROOT / 'launch' / 'segment.launch.py'),
         f'checkpoint:={rn_checkpoint}', 'namespace:=robot', 'image:=/robot/camera/image',
         f'params_file:={ROOT / "config" / "lseg.yaml"}', 'log_level:=debug',
         'labels:=dog, grass', 'input_size:=64', 'device:=cpu', 'input_qos:=reliable'],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = RosClient('launch_client')
    try:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        client.subscribe(String, '/robot/lseg/labels', latched)
        try:
            client.wait_for(lambda: client.received('/robot/lseg/labels'), 120)
        except TimeoutError:
            raise AssertionError((tmp_path / 'launch.log').read_text())
        names = client.node.get_node_names_and_namespaces()
        assert ('lseg', '/robot') in names
        import json
        assert json.loads(client.received('/robot/lseg/labels')[-1].data)['labels'] == [
            'dog', 'grass']
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / 'launch.log').read_text()
        log.close()
    output = (tmp_path / 'launch.log').read_text()
    assert 'process has finished cleanly' in output and 'Traceback' not in output
    assert 'input size 64' in output and 'input QoS reliable' in output, output
    assert 'Fast DDS profile' in output and 'fastdds.xml' in output, output


def test_launch_fails_when_the_node_cannot_start(tmp_path):
    """A start-up error of the node ends the launch with a non-zero exit code."""
    out = subprocess.run(
        [sys.executable, '-c', LAUNCH, str(ROOT / 'launch' / 'segment.launch.py'),
         f'checkpoint:={tmp_path / "missing.ckpt"}'],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'cannot start' in out.stdout + out.stderr

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The Fast DDS profile, launch arguments, --help and the bench's errors (no model needed)."""

import os
from pathlib import Path
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from lseg_ros.ros import dds_profile
from lseg_ros.ros.launch_args import launch_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_profile_gives_shared_memory_for_two_4k_frames_and_no_builtin_transports():
    tree = ET.parse(ROOT / 'config' / 'fastdds.xml')
    text = {el.tag.split('}')[1]: (el.text or '').strip() for el in tree.iter()}
    assert int(text['segment_size']) >= 2 * 3840 * 2160 * 3
    assert text['useBuiltinTransports'] == 'false'
    types = [el.text for el in tree.iter() if el.tag.endswith('}type')]
    assert types == ['SHM', 'UDPv4']
    participant = next(el for el in tree.iter() if el.tag.endswith('}participant'))
    assert participant.get('is_default_profile') == 'true'


def test_profile_variable_follows_the_distribution(monkeypatch):
    assert dds_profile.profile_variable('jazzy') == 'FASTRTPS_DEFAULT_PROFILES_FILE'
    assert dds_profile.profile_variable('kilted') == 'FASTDDS_DEFAULT_PROFILES_FILE'
    assert dds_profile.profile_variable('') == 'FASTDDS_DEFAULT_PROFILES_FILE'   # PyPI wheels
    monkeypatch.setenv('ROS_DISTRO', 'jazzy')
    env = dds_profile.profile_environment()
    assert env == {'FASTRTPS_DEFAULT_PROFILES_FILE': str(Path(
        dds_profile.installed_profile()).resolve())}


def test_profile_rule_default_explicit_empty(tmp_path, monkeypatch):
    monkeypatch.delenv('ROS_DISTRO', raising=False)
    assert dds_profile.profile_environment('') == {}
    assert dds_profile.profile_environment(None) == {}
    mine = tmp_path / 'mine.xml'
    mine.write_text('<profiles/>')
    assert dds_profile.profile_environment(str(mine)) == {
        'FASTDDS_DEFAULT_PROFILES_FILE': str(mine)}
    with pytest.raises(FileNotFoundError, match='does not exist'):
        dds_profile.profile_environment(str(tmp_path / 'missing.xml'))
    env = {'FASTDDS_DEFAULT_PROFILES_FILE': '/theirs.xml'}
    assert dds_profile.apply_profile('', env) == '/theirs.xml'          # left alone
    assert dds_profile.apply_profile(str(mine), env) == str(mine)


def test_launch_arguments_are_typed_and_empty_keeps_the_file_value():
    assert launch_overrides({'input_size': '', 'device': '', 'labels': ''}) == {}
    assert launch_overrides({'input_size': '640', 'device': 'cuda:1', 'input_qos': 'reliable',
                             'compressed_input': 'true', 'labels': 'dog, grass',
                             'precision': 'fp16'}) == {
        'input_size': 640, 'device': 'cuda:1', 'input_qos': 'reliable',
        'compressed_input': True, 'labels': 'dog, grass', 'precision': 'fp16'}
    with pytest.raises(ValueError, match='input_size must be an integer'):
        launch_overrides({'input_size': 'big'})
    with pytest.raises(ValueError, match='compressed_input must be true or false'):
        launch_overrides({'compressed_input': 'maybe'})


@pytest.mark.parametrize('command', [['lseg_ros.ros.node'], ['lseg_ros.cli.bench'],
                                     ['lseg_ros.cli.segment']])
def test_help_answers_without_torch_or_ros(command):
    code = ('import runpy, sys; sys.argv = ["x", "--help"]\n'
            'try:\n'
            f'    runpy.run_module("{command[0]}", run_name="__main__")\n'
            'except SystemExit as exit:\n'
            '    assert not exit.code, exit.code\n'
            'print("TORCH" if "torch" in sys.modules else "NO-TORCH")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'usage' in out.stdout and out.stdout.strip().endswith('NO-TORCH'), out.stdout


def test_env_sh_puts_the_venv_ros_packages_on_the_ament_prefix_path():
    if not (ROOT / '.venv' / 'share' / 'ament_index').is_dir():
        pytest.skip('ROS 2 does not come from PyPI wheels here')
    out = subprocess.run(
        ['bash', '-c', 'source env.sh && python -c "from ament_index_python.packages import '
         'get_package_share_directory as g; print(g(\'std_msgs\'))"'],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != 'AMENT_PREFIX_PATH'})
    assert out.returncode == 0 and 'std_msgs' in out.stdout, out.stderr


@pytest.mark.ros
def test_bench_without_masks_is_an_error_with_a_hint(tmp_path):
    """No node on the topic: exit 1, a hint about QoS and the DDS profile, no NaN table."""
    from lseg_ros.cli.bench import entry as bench
    report = tmp_path / 'b.json'
    start = time.monotonic()
    code = bench(['--image-topic', '/nobody/listens', '--timeout', '3', '--rates', '5',
                  '--duration', '1', '--warmup', '0', '--frames', '1', '--output', str(report)])
    assert code == 1 and time.monotonic() - start < 60
    import json
    data = json.loads(report.read_text())
    assert data['phases'] == [] and 'no mask from /lseg' in data['errors'][0]
    assert 'Fast DDS profile' in data['errors'][0] and 'input_qos' in data['errors'][0]


def test_check_phases_names_each_phase_without_masks():
    from lseg_ros.ros.bench import check_phases
    phases = [{'rate_hz': 30.0, 'published': 240, 'masks': 0},
              {'rate_hz': 'peak', 'published': 10, 'masks': 10}]
    errors = check_phases(phases, '/lseg', '/camera/image_raw')
    assert len(errors) == 1 and errors[0].startswith('phase 30.0: 0 of 240 frames')
    assert 'input_qos' in errors[0] and 'config/fastdds.xml' in errors[0]

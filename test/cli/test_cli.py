# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The command lines: one home (lseg_ros/cli), --help without torch; lseg_segment's errors."""

import importlib
from pathlib import Path
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lseg_ros.cli.segment import entry, write_image

ROOT = Path(__file__).resolve().parents[2]
#: Console script -> its module (setup.py); lseg_node stays in lseg_ros.ros.node.
COMMANDS = {
    'lseg_segment': 'lseg_ros.cli.segment', 'segment_bag': 'lseg_ros.cli.segment_bag',
    'make_sample_bag': 'lseg_ros.cli.sample_bag', 'lseg_replay': 'lseg_ros.cli.replay',
    'bench': 'lseg_ros.cli.bench', 'lseg_demo': 'lseg_ros.cli.demo',
    'export_onnx': 'lseg_ros.cli.export_onnx', 'build_engine': 'lseg_ros.cli.build_engine',
    'latency': 'lseg_ros.cli.latency', 'fidelity': 'lseg_ros.cli.fidelity',
    'segment_bags': 'lseg_ros.cli.segment_bags', 'archive_bench': 'lseg_ros.cli.archive_bench',
}
TOOLS = ('export_onnx', 'build_engine', 'latency', 'fidelity', 'archive_bench')
HELP = '''
import runpy, sys
sys.argv = [{prog!r}, '--help']
try:
    runpy.{run}({target!r}, run_name='__main__')
except SystemExit as exit:
    assert not exit.code, exit.code
print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')
assert 'ray' not in sys.modules
'''


def test_console_scripts_are_the_cli_modules():
    scripts = dict(re.findall(r"'(\w+) = ([\w.]+):entry'", (ROOT / 'setup.py').read_text()))
    assert scripts.pop('lseg_node') == 'lseg_ros.ros.node'
    assert scripts.pop('lseg_lifecycle_node') == 'lseg_ros.ros.lifecycle_node'
    assert scripts == COMMANDS
    for module in scripts.values():
        assert callable(importlib.import_module(module).entry)


@pytest.mark.parametrize('prog, run, target', [
    *[(name, 'run_module', module) for name, module in COMMANDS.items()],
    *[(name, 'run_path', str(ROOT / 'tools' / f'{name}.py')) for name in TOOLS]])
def test_help_answers_without_torch(prog, run, target):
    out = subprocess.run([sys.executable, '-c', HELP.format(prog=prog, run=run, target=target)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f'usage: {prog} ' in out.stdout, out.stdout
    assert out.stdout.strip().endswith('NO-TORCH'), out.stdout


def test_bad_arguments_found_after_parsing_exit_2_with_one_line(capsys):
    from lseg_ros.cli.bench import entry as bench
    assert bench(['--rates', '5,fast']) == 2
    assert capsys.readouterr().err.strip() == "bench: error: bad --rates '5,fast'"


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / 'in.png'
    write_image(str(path), np.random.default_rng(0).integers(0, 256, (97, 131, 3), np.uint8))
    return str(path)


def test_writes_overlay_and_mask(rn_checkpoint, image, tmp_path):
    out = tmp_path / 'sub' / 'seg.png'
    assert entry(['--checkpoint', rn_checkpoint, '--image', image, '--labels', 'a, b, c',
                  '--size', '96', '--device', 'cpu', '--output', str(out)]) == 0
    overlay = cv2.imread(str(out))
    mask = cv2.imread(str(tmp_path / 'sub' / 'seg_mask.png'), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (97, 131, 3) and mask.shape == (97, 131) and mask.max() <= 2


@pytest.mark.parametrize('args, message', [
    (['--labels', 'a,,b'], 'label 2 of 3 is empty'),
    (['--labels', 'a', '--checkpoint', '/nonexistent.ckpt'], 'checkpoint not found'),
    (['--labels', 'a', '--image', '/nonexistent.png'], 'image not found'),
    (['--labels', 'a', '--alpha', '2'], 'alpha'),
])
def test_errors_are_one_line(rn_checkpoint, image, tmp_path, capsys, args, message):
    base = {'--checkpoint': rn_checkpoint, '--image': image,
            '--output': str(tmp_path / 'o.png'), '--device': 'cpu'}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    argv = [x for kv in base.items() for x in kv]
    assert entry(argv) == 1
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1


def test_installed_console_script_runs(rn_checkpoint, image, tmp_path):
    out = subprocess.run(['lseg_segment', '--checkpoint', rn_checkpoint, '--image', image,
                          '--labels', 'x, y', '--size', '64', '--device', 'cpu',
                          '--output', str(tmp_path / 'o.png')],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'wrote' in out.stdout


def test_image_above_the_pixel_limit_is_refused_before_decoding(rn_checkpoint, image, tmp_path,
                                                                capsys):
    base = ['--checkpoint', rn_checkpoint, '--labels', 'a', '--device', 'cpu', '--size', '64',
            '--output', str(tmp_path / 'o.png')]
    assert entry(base + ['--image', image, '--max-input-pixels', str(97 * 131 - 1)]) == 1
    err = capsys.readouterr().err
    assert 'declares 131x97 = 12,707 pixels, more than the limit of 12,706' in err
    assert '--max-input-pixels' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'o.png').exists()
    assert entry(base + ['--image', image, '--max-input-pixels', str(97 * 131)]) == 0

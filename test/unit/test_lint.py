# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ament's Python style: flake8 (99 columns, single quotes, google imports) and pep257."""

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [str(ROOT / p) for p in ('lseg_ros', 'test', 'tools', 'launch', 'setup.py')
           if (ROOT / p).exists()]


def test_flake8():
    out = subprocess.run([sys.executable, '-m', 'flake8', '--config', str(ROOT / 'setup.cfg')]
                         + TARGETS, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pep257():
    out = subprocess.run([sys.executable, '-m', 'pydocstyle', '--config',
                          str(ROOT / 'setup.cfg')] + TARGETS,
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr

#!/usr/bin/env python3
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``archive_bench``: see lseg_ros/cli/archive_bench.py (also a console script)."""

from pathlib import Path
import sys

sys.path.append(str(Path(__file__).resolve().parents[1]))     # a source checkout's lseg_ros/
try:
    from lseg_ros.cli.archive_bench import entry
except ImportError as error:
    sys.exit(f'archive_bench: error: cannot import lseg_ros ({error}); run "source env.sh" in the '
             'lseg_ros checkout (or install the package) first')

if __name__ == '__main__':
    sys.exit(entry())

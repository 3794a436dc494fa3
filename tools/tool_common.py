# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared start-up of the tools in this folder: import check, logging, one-line errors.

The tools run from any directory once the package is importable (``source env.sh`` in the
checkout, or an installed lseg_ros); this folder is on ``sys.path`` because Python puts a
script's own directory there.
"""

import argparse
import sys
from typing import Callable, Optional, Sequence


def require_package(prog: str) -> None:
    """Exit with one error line when ``lseg_ros`` cannot be imported."""
    try:
        import lseg_ros.core  # noqa: F401
    except ImportError as error:
        sys.exit(f'{prog}: error: cannot import lseg_ros ({error}); run "source env.sh" in the '
                 'lseg_ros checkout (or install the package) first')


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """Add -v/--verbose."""
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log at DEBUG level and show tracebacks')


def run_tool(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
             argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` and run ``main`` with the package's one-line error handling."""
    from lseg_ros.cli.common import run_main
    return run_main(main, parser, argv)

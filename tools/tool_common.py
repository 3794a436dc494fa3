# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared start-up of the tools in this folder: import check, logging, one-line errors.

The tools run from any directory once the package is importable (``source env.sh`` in the
checkout, or an installed lseg_ros); this folder is on ``sys.path`` because Python puts a
script's own directory there.
"""

import argparse
import logging
import sys
import traceback
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
    """Parse ``argv`` and run ``main``; failures become one ``error:`` line and exit 1."""
    from lseg_ros.core.errors import LsegError

    args = parser.parse_args(argv)
    verbose = getattr(args, 'verbose', False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(main(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (LsegError, OSError, ValueError) as error:
        if verbose:
            traceback.print_exc()
        message = str(error).replace('\n', '\n  ')
        print(f'{parser.prog}: error: {message}', file=sys.stderr)
        return 1
    except Exception as error:  # noqa: B902 - the tool must end with one clear line
        if verbose:
            traceback.print_exc()
        print(f'{parser.prog}: error: {type(error).__name__}: {error} (run with -v for the '
              'traceback)', file=sys.stderr)
        return 1

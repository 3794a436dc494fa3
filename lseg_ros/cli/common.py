# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What every command line shares: arguments, logging and one error style.

Every command (``lseg_segment``, ``segment_bag``, ``make_sample_bag``, ``lseg_replay``,
``bench``, ``lseg_demo`` and the tools ``export_onnx``, ``build_engine``, ``latency``,
``fidelity``) runs through :func:`run_main`: one line ``<prog>: error: ...`` and exit code
1 for a failure, 2 for bad arguments (argparse or :class:`UsageError`), 130/143 when
interrupted by SIGINT/SIGTERM.  This module imports no torch, so ``--help`` answers at once.
"""

import argparse
import logging
import sys
import traceback
from typing import Callable, Sequence

from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import exit_code, handle_signals, signal_name
from lseg_ros.core.options import BACKENDS, DEFAULT_INPUT_SIZE, PRECISIONS
from lseg_ros.formats.image_codec import DEFAULT_MAX_INPUT_PIXELS


class UsageError(LsegError):
    """Bad arguments found after parsing: one error line and exit code 2, as argparse."""


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """Add -v/--verbose."""
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log at DEBUG level and show tracebacks')


def add_model_arguments(parser: argparse.ArgumentParser, checkpoint_required=True) -> None:
    """Add --checkpoint, --backend, --device, --precision, --engine, --onnx and --size."""
    group = parser.add_argument_group('model')
    group.add_argument('--checkpoint', required=checkpoint_required,
                       help='official lang-seg checkpoint (demo_e200.ckpt, fss_rn101.ckpt, ...)')
    group.add_argument('--backend', default='auto', choices=BACKENDS,
                       help='image encoder backend (default: auto)')
    group.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    group.add_argument('--precision', default='auto', choices=PRECISIONS,
                       help='encoder precision (auto: torch fp16 on a GPU, fp32 on a CPU; '
                            'ONNX/engine: their own)')
    group.add_argument('--compile', default='auto', choices=('auto', 'on', 'off'),
                       help='torch on a GPU: compile the encoder with Inductor; auto (default): '
                            'the variants whose compiled model passes the fidelity gate, '
                            'today both; on: every variant; off: none; ~25 s per input size '
                            'the first time, ~6 s from the cache')
    group.add_argument('--no-compile', dest='compile', action='store_const', const='off',
                       help='the same as --compile off')
    group.add_argument('--engine', help='TensorRT engine file (backend tensorrt)')
    group.add_argument('--onnx', help='ONNX image encoder file (backend onnxruntime)')
    group.add_argument('--size', type=int, default=DEFAULT_INPUT_SIZE,
                       help='long side of the network input in pixels; padded to a multiple '
                            f'of 32 (default: {DEFAULT_INPUT_SIZE})')
    add_verbose(parser)


def add_max_pixels_argument(parser) -> None:
    """Add --max-input-pixels (the decompression-bomb limit of the image decoders)."""
    parser.add_argument('--max-input-pixels', type=int, default=DEFAULT_MAX_INPUT_PIXELS,
                        metavar='N',
                        help='refuse input images that declare more than N pixels (width x '
                             'height), before decoding them (default '
                             f'{DEFAULT_MAX_INPUT_PIXELS} = 4096x4096; 0: no limit)')


def check_max_pixels(value: int) -> None:
    """Refuse a negative --max-input-pixels."""
    if value < 0:
        raise LsegError(f'--max-input-pixels must be 0 (no limit) or more, got {value}')


def run_main(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
             argv: Sequence[str] = None) -> int:
    """Parse ``argv``, set up logging and run ``main``.

    Failures become one ``<prog>: error: …`` line and exit code 1 (argparse errors and
    :class:`UsageError` exit with 2); ``-v`` also prints the traceback.  SIGTERM is handled
    like Ctrl-C (SIGINT): the work stops through the same clean-up paths and the exit code
    is 143 (130 for SIGINT).
    """
    args = parser.parse_args(argv)
    verbose = getattr(args, 'verbose', False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        with handle_signals():
            return int(main(args) or 0)
    except KeyboardInterrupt as error:
        if not getattr(error, 'reported', False):
            print(f'{parser.prog}: interrupted ({signal_name(error)})', file=sys.stderr)
        return exit_code(error)
    except UsageError as error:
        print(f'{parser.prog}: error: {error}', file=sys.stderr)
        return 2
    except (LsegError, OSError, ValueError) as error:
        if verbose:
            traceback.print_exc()
        message = str(error).replace('\n', '\n  ')
        print(f'{parser.prog}: error: {message}', file=sys.stderr)
        return 1
    except Exception as error:  # noqa: B902 - a tool must end with one clear line
        if verbose:
            traceback.print_exc()
        print(f'{parser.prog}: error: {type(error).__name__}: {error} (run with -v for the '
              'traceback)', file=sys.stderr)
        return 1

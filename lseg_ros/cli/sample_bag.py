# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``make_sample_bag``: write a small rosbag2 bag of the bundled sample stream.

What is written (topics, stamps, QoS) is described in :mod:`lseg_ros.formats.sample_bag`.
Sizes are HxW (height x width), as in every other tool.
"""

import argparse
import sys
from typing import List, Optional

from lseg_ros.cli.common import run_main
from lseg_ros.core.errors import LsegError
from lseg_ros.formats import bag
from lseg_ros.formats.sample_bag import (CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC,
                                         write_sample_bag)


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='make_sample_bag', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', '-o', required=True, help='bag directory to create')
    parser.add_argument('--storage', choices=bag.STORAGES, default='sqlite3',
                        help='rosbag2 storage (default: sqlite3)')
    parser.add_argument('--frames', type=int, default=20, help='number of frames (default 20)')
    parser.add_argument('--rate', type=float, default=10.0, help='frame rate in Hz (default 10)')
    parser.add_argument('--size', default='240x320', metavar='HxW',
                        help='frame size, height x width (default 240x320)')
    parser.add_argument('--encoding', choices=('rgb8', 'bgr8'), default='rgb8',
                        help='encoding of the raw images (default rgb8)')
    parser.add_argument('--raw', action=argparse.BooleanOptionalAction, default=True,
                        help=f'write {IMAGE_TOPIC} (default: yes)')
    parser.add_argument('--compressed', action=argparse.BooleanOptionalAction, default=True,
                        help=f'write {COMPRESSED_TOPIC} (default: yes)')
    parser.add_argument('--camera-info', action=argparse.BooleanOptionalAction, default=True,
                        help=f'write {CAMERA_INFO_TOPIC} (default: yes)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    return parser


def parse_size(text: str):
    """Parse ``HxW`` (height x width, as every tool's sizes) into ``(height, width)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise LsegError(f'--size must be HxW such as 240x320, got {text!r}') from None
    return height, width


def main(args: argparse.Namespace) -> int:
    """Run the tool."""
    height, width = parse_size(args.size)
    counts = write_sample_bag(args.output, args.frames, args.rate, height, width, args.raw,
                              args.compressed, args.camera_info, args.storage, args.encoding,
                              overwrite=args.overwrite)
    print(f'wrote {sum(counts.values())} messages of the sample stream ({height}x{width}, '
          f'{args.rate:g} Hz):')
    print(bag.describe(args.output))
    return 0


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

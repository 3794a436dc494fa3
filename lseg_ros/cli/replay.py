# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``lseg_replay``: replay a rosbag2 bag into the ROS graph as ``ros2 bag play`` does.

The player is :class:`lseg_ros.ros.replay.BagPlayer` (rosbags + rclpy); its module docstring
is this command's description.
"""

import argparse
import sys
import time
from typing import List, Optional

from lseg_ros.cli.common import add_verbose, run_main
from lseg_ros.core.errors import LsegError
from lseg_ros.ros import replay
from lseg_ros.ros.dds_profile import add_profile_argument, apply_profile
from lseg_ros.ros.replay import BagPlayer, DEFAULT_CLOCK_HZ, parse_remaps, QOS_CHOICES


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='lseg_replay', description=replay.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bag', help='bag directory or .db3 / .mcap file')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help='topics to replay (default: all whose message types are installed)')
    parser.add_argument('--rate', '-r', type=float, default=1.0,
                        help='playback speed factor (default 1.0)')
    parser.add_argument('--clock', type=float, nargs='?', const=DEFAULT_CLOCK_HZ, default=0.0,
                        metavar='HZ', help='publish /clock from the bag time, at HZ '
                                           f'(default {DEFAULT_CLOCK_HZ:g} when given)')
    parser.add_argument('--qos', choices=QOS_CHOICES, default='recorded',
                        help='publisher QoS (default: recorded, as ros2 bag play)')
    parser.add_argument('--remap', '-m', nargs='+', default=[], metavar='FROM:=TO',
                        help='rename topics, e.g. /camera/image_raw:=/image')
    parser.add_argument('--loop', '-l', action='store_true', help='play again and again')
    parser.add_argument('--delay', '-d', type=float, default=0.0,
                        help='seconds to wait before playing (default 0)')
    parser.add_argument('--wait-for-subscribers', type=int, default=0, metavar='N',
                        help='before playing, wait until every topic has N subscribers')
    parser.add_argument('--wait-timeout', type=float, default=30.0,
                        help='seconds to wait for subscribers (default 30)')
    parser.add_argument('--restamp', action='store_true',
                        help='stamp headers with the current time instead of the recorded one')
    add_verbose(parser)
    add_profile_argument(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the player."""
    import rclpy
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions
    if args.delay < 0:
        raise LsegError(f'--delay must be 0 or more, got {args.delay}')
    remap = parse_remaps(args.remap)
    apply_profile(args.dds_profile)                 # before the first participant
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    player = None
    try:
        node = Node('lseg_replay', context=context)
        player = BagPlayer(node, args.bag, topics=args.topics, rate=args.rate,
                           clock=args.clock > 0, clock_hz=args.clock or DEFAULT_CLOCK_HZ,
                           qos=args.qos, remap=remap, loop=args.loop, restamp=args.restamp)
        print(f'lseg_replay: {args.bag}: ' + ', '.join(
            f'{t} -> {player.remap.get(t, t)}' if t in player.remap else t
            for t in player.topics) + (' and /clock' if args.clock > 0 else ''))
        if args.wait_for_subscribers > 0 and not player.wait_for_subscribers(
                args.wait_for_subscribers, args.wait_timeout):
            raise LsegError(f'fewer than {args.wait_for_subscribers} subscriber(s) after '
                            f'{args.wait_timeout:g} s')
        if args.delay:
            time.sleep(args.delay)
        start = time.monotonic()
        count = player.play()
        print(f'lseg_replay: published {count} messages in {time.monotonic() - start:.1f} s')
        return 0
    finally:
        if player is not None:
            player.close()
        if node is not None:
            node.destroy_node()
        context.try_shutdown()


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

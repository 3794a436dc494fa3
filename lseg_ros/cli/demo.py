# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``make demo``: the /lseg node segmenting the bundled sample stream through ROS 2.

Starts ``lseg_node`` as the launch file does (with ``config/lseg.yaml``), publishes the
generated sample frames on a camera topic at a fixed rate, collects ``~/overlay`` and
``~/mask`` and writes them with a latency summary to the output folder.  On a CPU the
model is slower than the camera, so the node drops frames (newest frame wins), which the
summary shows.  Uses ``models/demo_e200.ckpt`` when present; otherwise an official-layout
checkpoint with random weights, and says loudly that the masks are untrained.
"""

import argparse
import json
import os
from pathlib import Path
import sys
import threading
import time
from typing import List, Optional

import numpy as np

from lseg_ros.cli.common import add_verbose, run_main
from lseg_ros.cli.segment import write_image
from lseg_ros.core.errors import LsegError
from lseg_ros.core.samples import sample_frames, SAMPLE_LABELS
from lseg_ros.ros.dds_profile import add_profile_argument, apply_profile
from lseg_ros.ros.demo import CAMERA, demo_checkpoint, ROOT, untrained_warning
from lseg_ros.ros.frame_slot import percentiles
from lseg_ros.ros.node_process import start_node, stop_node

PROG = 'lseg_demo'


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default=str(ROOT / 'demo_output'))
    parser.add_argument('--frames', type=int, default=24, help='distinct sample frames')
    parser.add_argument('--masks', type=int, default=6, help='masks to collect')
    parser.add_argument('--rate', type=float, default=2.0, help='camera rate in Hz')
    parser.add_argument('--size', type=int, default=256, help='network input long side')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--timeout', type=float, default=900.0)
    add_profile_argument(parser)
    add_verbose(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the demo."""
    apply_profile(args.dds_profile)          # this process (the camera); the node inherits it
    checkpoint, trained = demo_checkpoint()
    if not trained:
        untrained_warning()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob('*.png'):
        old.unlink()

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header, String
    from diagnostic_msgs.msg import DiagnosticArray
    from lseg_ros.ros.conversions import to_image_msg

    proc = start_node({'checkpoint': checkpoint, 'labels': SAMPLE_LABELS,
                       'input_size': args.size, 'device': args.device},
                      {'image': CAMERA, 'camera_info': '/demo/camera/camera_info'},
                      str(out / 'node.log'), dds_profile=args.dds_profile)
    rclpy.init()
    node = rclpy.create_node('lseg_demo')
    lock = threading.Lock()
    overlays, masks, diagnostics, labels = {}, {}, {}, []
    sent = {}

    def on_overlay(msg):
        with lock:
            overlays[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (time.time(), msg)

    def on_mask(msg):
        with lock:
            masks[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (time.time(), msg)

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith('/lseg'):
                diagnostics.update({kv.key: kv.value for kv in status.values})

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, '/lseg/overlay', on_overlay, reliable)
    node.create_subscription(Image, '/lseg/mask', on_mask, reliable)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    node.create_subscription(String, '/lseg/labels', lambda m: labels.append(m.data),
                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    camera = node.create_publisher(Image, CAMERA, reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    frames = [to_image_msg(f, 'rgb8', Header(frame_id='demo_camera'))
              for f in sample_frames(args.frames, 480, 640)]
    code = 0
    try:
        print(f'starting /lseg (log: {out / "node.log"}) ...', flush=True)
        deadline = time.monotonic() + args.timeout
        while not labels:                                  # latched: the node is ready
            if proc.poll() is not None or time.monotonic() > deadline:
                print((out / 'node.log').read_text(), file=sys.stderr)
                raise LsegError('the node did not start')
            time.sleep(0.2)
        print(f'node ready; publishing the sample stream ({len(frames)} frames, cycled) at '
              f'{args.rate:g} Hz on {CAMERA} until {args.masks} masks are back', flush=True)
        index = 0
        while time.monotonic() < deadline:
            with lock:
                if len(masks) >= args.masks:
                    break
            msg = frames[index % len(frames)]
            now = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int(now % 1 * 1e9)
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (index, now)
            camera.publish(msg)
            index += 1
            time.sleep(1.0 / args.rate)
        time.sleep(1.5)                                    # one more diagnostics message
    finally:
        stop_node(proc, timeout=30)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    with lock:
        received = sorted(masks.items())
    latencies = []
    for stamp, (arrival, mask) in received:
        index, published = sent.get(stamp, (None, None))
        if index is None:
            continue
        latencies.append(1000.0 * (arrival - published))
        entry = overlays.get(stamp)
        if entry:
            overlay = np.frombuffer(bytes(entry[1].data), np.uint8).reshape(
                entry[1].height, entry[1].width, 3)
            write_image(str(out / f'overlay_{index:03d}.png'), overlay)
        labels_map = np.frombuffer(bytes(mask.data), np.uint8).reshape(mask.height, mask.width)
        write_image(str(out / f'mask_{index:03d}.png'), labels_map)
    summary = {
        'checkpoint': checkpoint, 'trained_weights': trained, 'labels': SAMPLE_LABELS,
        'camera_rate_hz': args.rate, 'frames_published': len(sent),
        'masks_received': len(latencies),
        'node_counters': {k: int(diagnostics[k]) for k in (
            'frames_received', 'frames_processed', 'frames_dropped', 'frames_bad',
            'frames_lost_in_transport') if k in diagnostics},
        'latency_ms_stamp_to_mask': percentiles(latencies),
        'node': {k: diagnostics.get(k) for k in (
            'backend', 'device', 'precision', 'variant', 'input_size', 'fps', 'startup_s')},
        'node_stages_p50_ms': {k[6:-7]: float(v) for k, v in diagnostics.items()
                               if k.startswith('stage_')},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f'wrote {len(latencies)} overlays/masks, node.log and summary.json to {out}{os.sep}')
    if not latencies:
        print(f'{PROG}: error: no masks came back', file=sys.stderr)
        code = 1
    if not trained:
        untrained_warning()
    return code


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point (``make demo`` runs it through scripts/demo.sh)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

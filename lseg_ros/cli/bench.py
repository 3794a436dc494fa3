# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``bench`` (``ros2 run lseg_ros bench``): the command line of the ROS 2 benchmark.

What is measured and how is :mod:`lseg_ros.ros.bench` (its docstring is this command's
description); this module parses the arguments, runs the phases and prints the table.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from lseg_ros.cli.common import add_verbose, run_main, UsageError
from lseg_ros.core.interrupts import signal_name
from lseg_ros.core.options import BACKENDS, DEFAULT_INPUT_SIZE, PRECISIONS
from lseg_ros.ros import bench as ros_bench
from lseg_ros.ros.bench import (Bench, BenchError, camera_names, check_phases,
                                DEFAULT_IMAGE_TOPIC, environment, find_node_pid, load_frames,
                                pipeline_reference, run_camera_phases, run_phases, spawn_echo,
                                spawn_node, wait_for_first_mask)
from lseg_ros.ros.dds_profile import add_profile_argument, apply_profile
from lseg_ros.ros.node_process import stop_node
from lseg_ros.ros.params import QOS_CHOICES

PROG = 'bench'
DEFAULT_RATES = '2,5,peak'


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=ros_bench.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--spawn', action='store_true',
                        help='start a node (needs --checkpoint) instead of using a running one')
    parser.add_argument('--checkpoint', help='checkpoint for --spawn')
    parser.add_argument('--params-file', help='parameters file for --spawn')
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='backend of a spawned node (default: auto)')
    parser.add_argument('--engine', default='')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help='precision of a spawned node (default: auto)')
    parser.add_argument('--size', type=int, default=DEFAULT_INPUT_SIZE,
                        help=f'input_size of a spawned node (default {DEFAULT_INPUT_SIZE})')
    parser.add_argument('--labels', default='dog, grass, road, sky, other')
    parser.add_argument('--node', default='/lseg',
                        help='name of a running node (default /lseg; --spawn starts one '
                             'with a name of its own)')
    parser.add_argument('--image-topic', default=None,
                        help=f'topic the node subscribes to (default: {DEFAULT_IMAGE_TOPIC} '
                             'as in the launch file, or a private topic with --spawn)')
    parser.add_argument('--input-qos', default='sensor_data',
                        choices=QOS_CHOICES,
                        help='input_qos of a spawned node and of the echo node (default: '
                             'best effort, as the node)')
    parser.add_argument('--source', default='synthetic',
                        help='synthetic, a folder of images, or a rosbag2 bag')
    parser.add_argument('--bag-topic', help='image topic to read from a bag source')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--frames', type=int, default=20, help='distinct frames to cycle')
    parser.add_argument('--rates', default=DEFAULT_RATES,
                        help='comma-separated rates in Hz and/or "peak" '
                             f'(default {DEFAULT_RATES})')
    parser.add_argument('--duration', type=float, default=10.0, help='seconds per phase')
    parser.add_argument('--warmup', type=float, default=3.0, help='seconds of warm-up frames')
    parser.add_argument('--timeout', type=float, default=30.0,
                        help='seconds to wait for a mask (peak phase) / for the node')
    parser.add_argument('--output', default='bench.json', help='JSON report to write')
    parser.add_argument('--cameras', type=int, default=0,
                        help='N > 0: a node serving N cameras (parameter cameras: cam0 ... '
                             'cam<N-1>, inputs /<node>/cam<k>/image_raw with --spawn, else '
                             '/cam<k>/image_raw), N streams of the frames published together; '
                             'per-camera and total frames/s, latency, drops (default 0: one '
                             'camera, the single-camera topics)')
    parser.add_argument('--batch-window-ms', type=float, default=None,
                        help='batch_window_ms of a spawned node (default: the parameters '
                             "file's, 5 ms); 0 turns batching off, for the batching gain")
    parser.add_argument('--transport-baseline', action='store_true',
                        help='first run the same phases through an echo node with no model')
    parser.add_argument('--pipeline-reference', action='store_true',
                        help='also measure LsegPipeline.segment on the same frames in this '
                             'process (needs --checkpoint; loads the model here)')
    add_profile_argument(parser)
    add_verbose(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; exit code 1 when a phase produced no mask."""
    try:
        rates = [None if r.strip() == 'peak' else float(r) for r in args.rates.split(',')]
    except ValueError:
        raise UsageError(f'bad --rates {args.rates!r}') from None
    if (args.spawn or args.pipeline_reference) and not args.checkpoint and \
            not args.params_file:
        raise UsageError('--spawn and --pipeline-reference need --checkpoint')
    if args.cameras < 0:
        raise UsageError(f'--cameras must be 0 or more, got {args.cameras}')
    if args.cameras and (args.transport_baseline or args.image_topic):
        raise UsageError('--cameras does not combine with --transport-baseline or '
                         '--image-topic')
    try:
        profile = apply_profile(args.dds_profile)           # before rclpy.init
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    suffix = f'{os.getpid()}'
    node_name = f'/lseg_bench_{suffix}' if args.spawn else '/' + args.node.strip('/')
    image_topic = args.image_topic or (f'{node_name}/image' if args.spawn
                                       else DEFAULT_IMAGE_TOPIC)
    frames = load_frames(args.source, args.width, args.height, args.frames, args.bag_topic)

    import rclpy
    from lseg_ros.ros.conversions import to_image_msg
    from lseg_ros.ros.executors import EXECUTOR_ENV, make_executor, spin_until_shutdown
    from std_msgs.msg import Header

    rclpy.init()
    node = rclpy.create_node(f'lseg_bench_client_{suffix}')
    msgs = [to_image_msg(f, 'rgb8', Header(frame_id='bench')) for f in frames]
    executor = make_executor(os.environ.get(EXECUTOR_ENV, 'auto'))
    executor.add_node(node)
    stop_spinning = threading.Event()
    spinner = threading.Thread(target=spin_until_shutdown, args=(executor, stop_spinning),
                               daemon=True)
    spinner.start()
    procs: List[subprocess.Popen] = []
    output = Path(args.output)
    report = {'config': vars(args), 'node': node_name, 'image_topic': image_topic,
              'frame_size': list(frames[0].shape[:2]), 'dds_profile': profile,
              'environment': environment(), 'phases': []}
    errors: List[str] = []
    interrupted: Optional[KeyboardInterrupt] = None
    try:
        if args.transport_baseline:
            echo_name = f'/lseg_echo_{suffix}'
            echo_log = str(output.with_suffix('.echo.log'))
            procs.append(spawn_echo(args, echo_name.lstrip('/'), f'{echo_name}/image',
                                    echo_log))
            echo = Bench(node, f'{echo_name}/image', echo_name)
            error = wait_for_first_mask(echo, msgs, procs[-1], echo_log, 60.0,
                                        'the echo node', f'{echo_name}/image')
            if error:
                raise BenchError(error)
            print('transport baseline (echo node, no model):', flush=True)
            report['transport_baseline'] = run_phases(echo, msgs, rates, args)
            errors += check_phases(report['transport_baseline'], echo_name,
                                   f'{echo_name}/image')
            stop_node(procs.pop())
        start = time.monotonic()
        node_log = str(output.with_suffix('.node.log'))
        proc = None
        cameras = camera_names(args.cameras)
        topics = {name: (f'{node_name}/{name}/image_raw' if args.spawn
                         else f'/{name}/image_raw') for name in cameras}
        if args.spawn:
            remaps = ({f'{name}/image_raw': topic for name, topic in topics.items()}
                      if cameras else {'image': image_topic})
            proc = spawn_node(args, node_name.lstrip('/'), remaps, node_log)
            procs.append(proc)
        benches = ([Bench(node, topics[name], node_name, camera=name) for name in cameras]
                   or [Bench(node, image_topic, node_name)])
        for bench in benches:
            topic = topics.get(bench.camera, image_topic)
            error = wait_for_first_mask(bench, msgs, proc, node_log,
                                        max(args.timeout, 600.0 if args.spawn else 0.0),
                                        node_name, topic)
            if error:
                raise BenchError(error)
            bench.node_pid = proc.pid if proc is not None else find_node_pid()
        report['startup_to_first_mask_s'] = time.monotonic() - start if args.spawn else None
        print(f'{node_name}:', flush=True)
        if cameras:
            report['image_topic'] = list(topics.values())
            report['phases'], report['cameras'] = run_camera_phases(benches, msgs, rates,
                                                                    args)
            for name, phases in report['cameras'].items():
                errors += check_phases(phases, f'{node_name} (camera {name})', topics[name])
        else:
            report['phases'] = run_phases(benches[0], msgs, rates, args)
            errors += check_phases(report['phases'], node_name, image_topic)
        report['node_diagnostics'] = benches[0].diagnostics
    except BenchError as error:
        errors.append(str(error))
    except (KeyboardInterrupt, RuntimeError) as error:   # RCLError once rclpy shut down
        if rclpy.ok() and not isinstance(error, KeyboardInterrupt):
            raise
        if isinstance(error, KeyboardInterrupt):
            interrupted = error
        errors.append('interrupted (' + (signal_name(error) if interrupted else
                                         'SIGINT or SIGTERM') + '); phases measured so far '
                      'are kept')
    finally:
        for proc in procs:
            stop_node(proc)
        stop_spinning.set()
        spinner.join(timeout=5.0)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if args.pipeline_reference and not errors:
        report['pipeline_reference'] = pipeline_reference(args, frames, args.duration)
    report['errors'] = errors
    print(summary(report))
    output.write_text(json.dumps(report, indent=2, default=str))
    print(f'wrote {output}')
    for error in errors:
        print(f'{PROG}: error: {error}', file=sys.stderr)
    if interrupted is not None:          # exit code 130 / 143 (run_main), lines said above
        interrupted.reported = True
        raise interrupted
    return 1 if errors else 0


def summary(report: Dict) -> str:
    """Return the table and the lines under it."""
    lines = []
    if report.get('transport_baseline'):
        lines += ['transport baseline (echo node, no model):',
                  format_table(report['transport_baseline']), '']
    for name, phases in report.get('cameras', {}).items():
        lines += [f'camera {name}:', format_table(phases), '']
    if report['phases']:
        title = (f'{report["node"]} (total of {len(report["cameras"])} cameras):'
                 if report.get('cameras') else f'{report["node"]}:')
        lines += [title, format_table(report['phases'], report.get('transport_baseline'))]
    if report.get('startup_to_first_mask_s') is not None:
        lines.append(f'start-up (spawn -> first mask): {report["startup_to_first_mask_s"]:.1f} '
                     f's; node model start-up '
                     f'{report.get("node_diagnostics", {}).get("startup_s", "?")} s')
    stages = report['phases'][-1]['node_stages_p50_ms'] if report['phases'] else {}
    if stages:
        lines.append('node stages p50 (ms): ' + ', '.join(f'{k} {v:.2f}'
                                                          for k, v in stages.items()))
        node50 = report['phases'][-1].get('node_latency_p50_ms', float('nan'))
        lines.append(f'node overhead (receive -> publish p50 minus encoder p50): '
                     f'{node50 - stages.get("encoder", float("nan")):.2f} ms')
    reference = report.get('pipeline_reference')
    if reference:
        peak = [p['output_fps'] for p in report['phases'] if p['rate_hz'] == 'peak']
        ratio = f'; peak / in-process = {peak[0] / reference["fps"]:.2f}' if peak else ''
        lines.append(f'in-process LsegPipeline.segment: {reference["fps"]:.1f} frames/s '
                     f'(p50 {reference["segment_ms"]["p50"]:.2f} ms){ratio}')
    return '\n'.join(lines)


def format_table(phases: List[Dict], baseline: Optional[List[Dict]] = None) -> str:
    """Return the terminal table of all phases (with the transport baseline's p50)."""
    head = (f'{"rate":>6} {"pub":>5} {"masks":>5} {"drop":>5} {"fps":>6} {"p50":>8} {"p90":>8} '
            f'{"p99":>8} {"max":>8} {"jitter":>7} {"cpu%":>6} {"gpu%":>5} {"node50":>7} '
            f'{"echo50":>7} {"budget":>7}')
    lines = [head, '-' * len(head)]
    echo = {str(p['rate_hz']): p for p in baseline or []}
    for p in phases:
        lat = p['latency_ms']
        gpu = p['gpu']['utilization_percent_mean'] if p['gpu'] else float('nan')
        cpu = p['cpu'].get('node_percent_of_one_core', float('nan'))
        node50 = p.get('node_latency_p50_ms', float('nan'))
        base = echo.get(str(p['rate_hz']))
        echo50 = base['latency_ms']['p50'] if base else float('nan')
        lines.append(f'{str(p["rate_hz"]):>6} {p["published"]:>5} {p["masks"]:>5} '
                     f'{p["dropped"]:>5} {p["output_fps"]:>6.1f} {lat["p50"]:>8.1f} '
                     f'{lat["p90"]:>8.1f} {lat["p99"]:>8.1f} {lat["max"]:>8.1f} '
                     f'{p["jitter_ms"]:>7.1f} {cpu:>6.0f} {gpu:>5.0f} {node50:>7.1f} '
                     f'{echo50:>7.1f} {echo50 + node50 + 1.0:>7.1f}')
    lines.append('latency in ms: input header stamp -> mask received; cpu% of one core (node '
                 'process); node50: node receive -> publish p50; echo50: transport baseline '
                 'p50 at that rate; budget = echo50 + node50 + 1 ms (target for p50)')
    return '\n'.join(lines)


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

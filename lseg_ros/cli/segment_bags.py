# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``segment_bags``: segment a whole bag archive on Ray Data (many bags, many GPUs, resumable).

Writes, for every input bag, the output bag ``segment_bag`` writes (same topics, stamps,
frame ids, bag times, labels and embeddings, QoS; deterministic) to --output/<bag name>,
on a Ray cluster: a local one started for the run, or the one at --address.  CPU tasks read
and decode the bags (sqlite3 and mcap; raw and compressed images), a pool of actors runs the
model on batches of frames of one size, CPU tasks encode the output messages and the driver
writes each output bag in bag order.

Inputs: bags, folders of bags, or list files (.txt/.list, one bag or folder a line).
Resumable: each output bag is written under a temporary name and renamed when complete, then
recorded in --output/segment_bags_manifest.json (input size and mtime, options hash); the
next run skips recorded bags.  A bag that fails is reported and the others are still
segmented.  A summary is printed at the end and --report writes it as JSON.

Needs Ray: pip install 'ray[data]' (scripts/setup.sh installs it).  Exit status: 0 when every
bag was segmented or skipped, 1 when one failed, 2 on bad arguments, 130/143 when interrupted
(SIGINT/SIGTERM; no partial output bag is left under its final name).
"""

import argparse
import json
import sys
from typing import List, Optional

from lseg_ros.cli.common import run_main, UsageError
from lseg_ros.cli.segment_bag import add_bag_arguments
from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import write_text
from lseg_ros.formats.bag_segmenter import check_confidence_encoding, check_options


#: Default GPUs per model actor: two actors share a GPU (measured 294.7 vs 214.1 frames/s
#: for one actor per GPU, H200, docs/rosbag.md).
GPUS_PER_ACTOR = 0.5


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='segment_bags', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', '-i', required=True, action='append',
                        help='a bag (rosbag2 directory or .db3/.mcap file), a folder of bags '
                             'or a list file (.txt/.list, one path a line); repeatable')
    parser.add_argument('--output', '-o', required=True,
                        help='folder that gets one output bag per input bag, named after it, '
                             'and the manifest of finished bags')
    add_bag_arguments(parser)
    ray = parser.add_argument_group('ray')
    ray.add_argument('--address',
                     help='Ray cluster to run on (e.g. auto, or ray://head:10001); default: '
                          'a local cluster started for this run')
    ray.add_argument('--num-actors', type=int, default=None,
                     help='model actors (each loads the model once; default: as many as the '
                          'GPUs of the cluster hold at --gpus-per-actor, i.e. 2 per GPU; 1 '
                          'without GPUs)')
    ray.add_argument('--gpus-per-actor', type=float, default=None,
                     help='GPUs per actor, fractions allowed (default: 0.5 with a GPU device: '
                          'two actors share a GPU, one computing while the other moves data; '
                          '0 with --device cpu)')
    ray.add_argument('--cpus-per-actor', type=float, default=1.0,
                     help='CPUs reserved per actor (default 1)')
    ray.add_argument('--batch-size', type=int, default=8,
                     help='frames of one size per encoder call (default 8)')
    ray.add_argument('--decode-workers', type=int, default=2,
                     help='concurrent CPU tasks that read and decode bags, and that encode '
                          'outputs (default 2)')
    ray.add_argument('--num-cpus', type=int,
                     help='CPUs of the local cluster (default: all; ignored with --address)')
    ray.add_argument('--object-store-mb', type=int, default=0,
                     help="object store of the local cluster in MB (default: Ray's)")
    ray.add_argument('--report', metavar='JSON',
                     help='write the summary (bags, frames, frames/s, per-stage seconds, '
                          'failures, options, environment) to this JSON file')
    return parser


def config_from_args(args: argparse.Namespace) -> dict:
    """Return the run's configuration (what the stages and the manifest hash see)."""
    gpus = args.gpus_per_actor
    if gpus is None:
        gpus = 0.0 if args.device == 'cpu' else GPUS_PER_ACTOR
        if args.device == 'auto' and not args.address:
            from lseg_ros.core.backends import resolve_device    # torch: not for --help
            gpus = 0.0 if resolve_device('auto').type == 'cpu' else GPUS_PER_ACTOR
    return {
        'output': args.output, 'checkpoint': args.checkpoint, 'labels': args.labels,
        'backend': args.backend, 'device': args.device, 'precision': args.precision,
        'size': args.size, 'engine': args.engine, 'onnx': args.onnx, 'compile': args.compile,
        'image_topics': list(args.topics), 'copy_topics': list(args.copy_topics),
        'storage': args.storage, 'confidence': args.confidence,
        'confidence_encoding': args.confidence_encoding, 'overlay': args.overlay,
        'alpha': args.alpha, 'feature_stride': args.feature_stride if args.features else 0,
        'max_frames': max(0, args.max_frames), 'max_pixels': args.max_input_pixels,
        'skip_bad_frames': args.skip_bad_frames, 'num_actors': args.num_actors,
        'gpus_per_actor': gpus, 'actor_cpus': args.cpus_per_actor,
        'batch_size': args.batch_size, 'decode_workers': args.decode_workers,
        'num_gpus': None if gpus else 0,
    }


def check_ray_options(args: argparse.Namespace) -> None:
    """Refuse impossible Ray options (exit code 2)."""
    if args.num_actors is not None and args.num_actors < 1:
        raise UsageError(f'--num-actors must be 1 or more, got {args.num_actors}')
    if args.gpus_per_actor is not None and args.gpus_per_actor < 0:
        raise UsageError(f'--gpus-per-actor must be 0 or more, got {args.gpus_per_actor}')
    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be 1 or more, got {args.batch_size}')
    if args.decode_workers < 1:
        raise UsageError(f'--decode-workers must be 1 or more, got {args.decode_workers}')
    if args.cpus_per_actor < 0:
        raise UsageError(f'--cpus-per-actor must be 0 or more, got {args.cpus_per_actor}')


def summary(report: dict) -> str:
    """Return the end-of-run summary lines."""
    bags = report['bags']
    ms = report['stage_ms_per_frame']
    lines = [f'segment_bags: {bags["segmented"]} bag(s) segmented, {bags["skipped"]} skipped '
             f'(already done), {bags["failed"]} failed of {bags["total"]}; '
             f'{report["frames"]} frame(s) in {report["wall_s"]:.1f} s '
             f'({report["frames_per_s"]:.2f} frames/s)']
    if report['frames']:
        stages = ('decode', 'inference', 'encode', 'write')
        lines.append('  per frame: '
                     + ', '.join(f'{stage} {ms[stage]:.1f} ms' for stage in stages))
    for failure in report['failures']:
        lines.append(f'  failed: {failure["bag"]}: {failure["error"]}')
    return '\n'.join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the tool."""
    check_ray_options(args)
    check_options(args.topics, args.alpha, args.feature_stride if args.features else None,
                  args.max_frames, args.max_input_pixels)
    check_confidence_encoding(args.confidence_encoding)
    try:
        import ray  # noqa: F401 - only checks that it is installed
    except ImportError:
        raise LsegError("segment_bags needs Ray: pip install 'ray[data]' (scripts/setup.sh "
                        'installs it into .venv)') from None
    from lseg_ros.archive.runner import plan_archive, run_archive
    jobs = plan_archive(args.input, args.output)
    config = config_from_args(args)
    if not args.address:
        import torch              # the thread count segment_bag would use on this machine
        config['torch_threads'] = torch.get_num_threads()
    print(f'segment_bags: {len(jobs)} bag(s) -> {args.output}', file=sys.stderr)
    report = run_archive(jobs, config, overwrite=args.overwrite,
                         progress=not args.no_progress, address=args.address,
                         num_cpus=args.num_cpus, object_store_mb=args.object_store_mb)
    print(summary(report))
    if args.report:
        from lseg_ros.deploy.report import environment
        report['environment'] = environment()
        write_text(args.report, json.dumps(report, indent=1, default=str) + '\n')
        print(f'segment_bags: report written to {args.report}', file=sys.stderr)
    if report['bags']['failed']:
        raise LsegError(f'{report["bags"]["failed"]} of {report["bags"]["total"]} bags failed '
                        '(the others were segmented)')
    return 0


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

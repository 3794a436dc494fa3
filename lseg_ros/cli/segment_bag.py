# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``segment_bag``: segment every frame of a rosbag2 bag into a new bag, offline.

Reads one or more image topics (sensor_msgs/Image or CompressedImage) of a bag (sqlite3 or
mcap storage, a bag directory or a single .db3/.mcap file) and writes, for each input topic
T, the topics the /lseg node publishes, with the input's header (stamp, frame_id) and bag
time:

  T/lseg/mask        sensor_msgs/Image mono8 (mono16 above 255 labels), label index per pixel
  T/lseg/confidence  sensor_msgs/Image mono8, softmax probability of the winning label x 255
                     (32FC1, the probability itself, with --confidence-encoding 32FC1)
  T/lseg/overlay     sensor_msgs/Image rgb8 (bgr8 for BGR cameras), labels blended on the image
  T/lseg/features    sensor_msgs/Image 32FC512 L2-normalised embeddings (with --features)

(T without a trailing /compressed, unless the raw topic is selected as well), plus
/lseg/labels (std_msgs/String, JSON as the node's ~/labels) and /lseg/text_embeddings
(std_msgs/Float32MultiArray, K x 512, the L2-normalised text embeddings).  The messages
are those of the node (lseg_ros.formats.outputs defines them for both).  Same input, same
model and backend: byte-identical output messages.

Several bags (--input repeated, or a folder of bags as --input) are segmented with one model
load into --output/<bag name>; every input and output is checked before the model loads.

Exit status: 0 when every frame was segmented, 1 on an error (the frames segmented before
it stay in a valid output bag), 2 on bad arguments, 130 when interrupted by Ctrl-C (SIGINT)
and 143 by SIGTERM: both stop after the message being written, close the output bag and
keep the frames segmented so far in it.
"""

import argparse
import sys
from typing import List, Optional

from lseg_ros.cli.common import add_max_pixels_argument, add_model_arguments, run_main
from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import signal_name
from lseg_ros.formats import bag
from lseg_ros.formats.bag_segmenter import (BagSegmenter, check_inputs, check_options,
                                            DEFAULT_FEATURE_STRIDE, plan_jobs, report)
from lseg_ros.formats.outputs import CONFIDENCE_ENCODINGS, DEFAULT_CONFIDENCE_ENCODING


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options segment_bag and segment_bags share (topics, labels, model, outputs)."""
    parser.add_argument('--image-topic', '-t', action='append', required=True, dest='topics',
                        metavar='TOPIC',
                        help='Image or CompressedImage topic to segment (repeat for several)')
    parser.add_argument('--labels', required=True,
                        help='comma-separated labels, e.g. "dog, grass, other"')
    add_model_arguments(parser)
    out = parser.add_argument_group('output')
    out.add_argument('--storage', choices=bag.STORAGES,
                     help='storage of the output bag (default: that of the input)')
    out.add_argument('--overwrite', action='store_true',
                     help='replace the output bag if it exists')
    out.add_argument('--confidence', action=argparse.BooleanOptionalAction, default=True,
                     help='write T/lseg/confidence (default: yes)')
    out.add_argument('--confidence-encoding', choices=CONFIDENCE_ENCODINGS,
                     default=DEFAULT_CONFIDENCE_ENCODING,
                     help='encoding of T/lseg/confidence: mono8 (0-255) or 32FC1 (0-1), like '
                          'the confidence_encoding parameter of the node (default: '
                          f'{DEFAULT_CONFIDENCE_ENCODING})')
    out.add_argument('--overlay', action=argparse.BooleanOptionalAction, default=True,
                     help='write T/lseg/overlay (default: yes)')
    out.add_argument('--alpha', type=float, default=0.5, help='overlay opacity (0..1)')
    out.add_argument('--features', action='store_true',
                     help='write T/lseg/features (32FC512 image embeddings)')
    out.add_argument('--feature-stride', type=int, default=DEFAULT_FEATURE_STRIDE,
                     help='keep every n-th cell of the H/2 feature grid (1..64, default '
                          f'{DEFAULT_FEATURE_STRIDE})')
    out.add_argument('--copy-topic', action='append', default=[], dest='copy_topics',
                     metavar='TOPIC',
                     help='copy this input topic unchanged (e.g. camera_info, tf; repeatable)')
    run = parser.add_argument_group('run')
    run.add_argument('--skip-bad-frames', action='store_true',
                     help='skip frames that cannot be decoded or are too large (warn and '
                          'count) instead of stopping with an error')
    add_max_pixels_argument(run)
    run.add_argument('--max-frames', type=int, default=0,
                     help='segment at most N frames per topic (0: all)')
    run.add_argument('--no-progress', action='store_true', help='no progress line on stderr')


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='segment_bag', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', '-i', required=True, action='append',
                        help='input bag: a rosbag2 directory or a .db3 / .mcap file; repeat it '
                             'or give a folder of bags to segment several with one model load')
    parser.add_argument('--output', '-o', required=True,
                        help='output bag directory to create (several inputs: the folder that '
                             'gets one output bag per input, named after it)')
    add_bag_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the tool."""
    check_options(args.topics, args.alpha, args.feature_stride if args.features else None,
                  args.max_frames, args.max_input_pixels)
    jobs = plan_jobs(args.input, args.output)
    inputs = [source for source, _ in jobs]
    # Check every input, its topics and every output before the model loads (seconds).
    problems = []
    for source, target in jobs:
        try:
            with bag.BagReader(source) as reader:
                check_inputs(reader, args.topics, args.copy_topics)
            bag.check_output(target, args.overwrite, protect=inputs)
        except LsegError as error:
            problems.append(str(error))
    if problems:
        raise LsegError(problems[0] if len(problems) == 1 else
                        f'{len(problems)} of {len(jobs)} bags cannot be segmented:\n  '
                        + '\n  '.join(problems))
    # Determinism: cuDNN's per-shape autotuning may pick other kernels in another run.
    from lseg_ros.core.backends.factory import user_options
    options = user_options(args.backend, args.compile, deterministic=True)
    from lseg_ros.core.pipeline import LsegPipeline    # torch: not needed for --help
    pipeline = LsegPipeline.from_checkpoint(
        args.checkpoint, backend=args.backend, device=args.device, precision=args.precision,
        input_size=args.size, engine=args.engine, onnx=args.onnx, labels=args.labels,
        **options)
    print(f'segment_bag: {pipeline.variant.name} ({pipeline.backend.name} on '
          f'{pipeline.device}, input size {args.size}), labels {list(pipeline.labels.labels)}',
          file=sys.stderr)
    failed = []
    for number, (source, target) in enumerate(jobs, start=1):
        if len(jobs) > 1:
            print(f'segment_bag: [{number}/{len(jobs)}] {source} -> {target}', file=sys.stderr)
        segmenter = BagSegmenter(
            pipeline, source, target, args.topics, storage=args.storage,
            overwrite=args.overwrite, confidence=args.confidence, overlay=args.overlay,
            alpha=args.alpha, feature_stride=args.feature_stride if args.features else 0,
            copy_topics=args.copy_topics, skip_bad_frames=args.skip_bad_frames,
            max_frames=args.max_frames, progress=not args.no_progress, protect=inputs,
            max_pixels=args.max_input_pixels, confidence_encoding=args.confidence_encoding)
        try:
            counts = segmenter.run()
        except KeyboardInterrupt as error:
            print(f'segment_bag: interrupted ({signal_name(error)}); '
                  f'{sum(segmenter.counts.values())} frame(s) kept in {target}', file=sys.stderr)
            error.reported = True
            raise
        except LsegError as error:
            if len(jobs) == 1:
                raise
            print(f'segment_bag: error: {error}', file=sys.stderr)
            failed.append(str(source))
            continue
        report(segmenter, counts, target)
    if failed:
        raise LsegError(f'{len(failed)} of {len(jobs)} bags failed: {", ".join(failed)} '
                        '(the others were segmented)')
    return 0


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

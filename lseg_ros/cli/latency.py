# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Measure image-encoder latency: PyTorch eager fp32 against every backend available here.

The first row is always PyTorch eager fp32 (strict, no TF32).  Default presets: on a GPU
torch-fp32-eager, torch-fp16-eager, torch-fp16-graph, torch-fp16-graph-nhwc (the GPU
default before issue 11), torch-fp16-lean and torch-default (the torch backend's own
defaults: on a GPU fp16, compiled, in a CUDA graph); on the CPU torch-fp32-eager.
Add ONNX Runtime with --onnx FILE and TensorRT with --engine FILE (both repeatable).
Same input, same transfer accounting (input already on the device, output left there) and
the same timer for every row; see lseg_ros/deploy/latency.py for the method.

Example:
  tools/latency.py --checkpoint demo_e200.ckpt --sizes 384x384,480x640,1024x1024 \
      --output latency.json --plot latency.png --table latency.md
"""

import argparse
import sys

from lseg_ros.cli.common import add_verbose, run_main

PROG = 'latency'


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='official lang-seg checkpoint')
    parser.add_argument('--output', required=True, help='JSON report to write')
    parser.add_argument('--plot', metavar='FILE.png', help='bar chart to write')
    parser.add_argument('--table', metavar='FILE.md', help='markdown table to write')
    parser.add_argument('--sizes', default='384x384,480x640',
                        help='comma-separated HxW input sizes (default 384x384,480x640)')
    parser.add_argument('--backends', nargs='+', metavar='PRESET',
                        help='torch presets (TORCH_PRESETS in lseg_ros/deploy/latency.py; '
                             'an unknown name lists them all), e.g. torch-default, '
                             'torch-fp32-eager, torch-fp16-graph-nhwc, torch-fp16-lean, '
                             'torch-default-exact-gelu')
    parser.add_argument('--onnx', action='append', default=[], help='ONNX file for ONNX Runtime')
    parser.add_argument('--engine', action='append', default=[], help='TensorRT engine file')
    parser.add_argument('--batch', default='1',
                        help='batch sizes, comma-separated (default 1; e.g. 1,4): B copies of '
                             'the frame in one call, reported as frames/s and gain over 1')
    parser.add_argument('--no-baseline', action='store_true',
                        help='do not measure PyTorch eager fp32 (no "vs eager fp32" column)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--warmup', type=int, default=10, help='warm-up calls (default 10)')
    parser.add_argument('--iterations', type=int, default=50, help='timed calls (default 50)')
    parser.add_argument('--no-peak', action='store_true',
                        help='skip measuring the dense fp16 rate (no compute-floor column)')
    add_verbose(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the benchmark."""
    from lseg_ros.core.backends import resolve_device
    from lseg_ros.core.model.checkpoint import load_weights
    from lseg_ros.core.errors import LsegError
    from lseg_ros.core.interrupts import write_text
    from lseg_ros.deploy.latency import build_specs, format_table, measure, parse_sizes, plot, \
        write_json

    if args.warmup < 1 or args.iterations < 1:
        raise LsegError('--warmup and --iterations must be at least 1')
    sizes = parse_sizes(args.sizes)
    try:
        batches = [int(b) for b in str(args.batch).split(',') if b.strip()]
    except ValueError:
        raise LsegError(f'--batch: comma-separated positive integers, not {args.batch!r}') \
            from None
    if not batches or min(batches) < 1:
        raise LsegError(f'--batch: comma-separated positive integers, not {args.batch!r}')
    device = resolve_device(args.device)
    specs = build_specs(args.backends, device, args.onnx, args.engine,
                        baseline=not args.no_baseline)
    weights = load_weights(args.checkpoint)
    report = measure(weights, specs, sizes, device, args.warmup, args.iterations,
                     measure_peak=not args.no_peak, batches=batches)
    write_json(report, args.output)
    table = format_table(report)
    if args.table:
        write_text(args.table, table + '\n')
    if args.plot:
        plot([report], args.plot)
    print(table)
    print(f'\nreport: {args.output}' + (f', plot: {args.plot}' if args.plot else ''))
    if not report['results']:
        raise LsegError('no backend could be measured')
    return 0


def entry(argv=None) -> int:
    """Console-script entry point (also ``tools/latency.py``)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

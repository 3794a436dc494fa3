# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Check a backend against PyTorch fp32 on byte-identical pre-processed input.

Reports, per image and size, per-pixel cosine (mean, p1, min, in float64), relative L2 and
the argmax agreement of the label maps for --labels, and per size the mIoU of the set of
images (each label's intersections and unions summed over the images; labels on fewer than
--min-label-pixels pixels of the set are listed, not counted); compares them with
thresholds (defaults depend on the backend's precision, override with the --min-*/--max-*
options), prints PASS or FAIL and exits 0 (PASS), 1 (FAIL or error) or 2 (usage).  Writes
a JSON report and a heat map of 1 - cosine (per size, its worst image).  Default images:
20 frames of the bundled sample stream.

Examples:
  tools/fidelity.py --checkpoint demo_e200.ckpt --backend torch --precision fp16 \
      --sizes 384x384,480x640 --output fidelity.json --heatmap fidelity.png
  tools/fidelity.py --checkpoint demo_e200.ckpt --backend tensorrt --engine m.engine \
      --output trt.json --image frame.png
"""

import argparse
import json
import sys
from typing import Optional

from lseg_ros.cli.common import add_verbose, run_main
from lseg_ros.core.options import BACKENDS, FIDELITY_LABELS, PRECISIONS

PROG = 'fidelity'
#: Mirrors of lseg_ros.deploy.fidelity's defaults (not imported: --help stays light).
DEFAULT_FRAMES = 20
MIN_LABEL_PIXELS = 100
MAX_FRAMES = 28
#: A backend under test is named: ``auto`` would not say which one is measured.
BACKENDS_UNDER_TEST = tuple(name for name in BACKENDS if name != 'auto')
LIMITS = (('min_mean_cosine', 'mean_cosine'), ('min_p1_cosine', 'p1_cosine'),
          ('min_min_cosine', 'min_cosine'), ('max_rel_l2', 'rel_l2'),
          ('min_agreement', 'agreement'), ('min_miou', 'miou'))


def _count(low: int, high: Optional[int] = None):
    """Return an argparse type: a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not a whole number: {text!r}') from None
        if value < low or (high is not None and value > high):
            span = f'from {low} to {high}' if high is not None else f'{low} or more'
            raise argparse.ArgumentTypeError(f'needs {span}, not {text}')
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='official lang-seg checkpoint')
    parser.add_argument('--output', required=True, help='JSON report to write')
    parser.add_argument('--heatmap', metavar='FILE.png', help='heat map of 1 - cosine to write')
    parser.add_argument('--backend', required=True, choices=BACKENDS_UNDER_TEST,
                        help='backend under test')
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help='backend precision (auto: fp16 for torch on a GPU, else the '
                             'graph or engine precision)')
    parser.add_argument('--onnx', help='ONNX file (onnxruntime)')
    parser.add_argument('--engine', help='engine file (tensorrt)')
    parser.add_argument('--cuda-graph', action=argparse.BooleanOptionalAction, default=None,
                        help='torch/tensorrt: CUDA graphs (default: on for a GPU)')
    parser.add_argument('--compile', metavar='MODE', help='torch: torch.compile mode')
    parser.add_argument('--channels-last', action='store_true',
                        help='torch: NHWC memory format and cuDNN benchmark mode (GPU)')
    parser.add_argument('--preset', metavar='NAME',
                        help='torch: a named configuration of tools/latency.py (its precision '
                             'and options, e.g. torch-fp8-rowwise); overrides --precision')
    parser.add_argument('--sizes', default='384x384,480x640', help='HxW sizes, comma-separated')
    parser.add_argument('--image', action='append', default=[],
                        help='RGB image file (repeatable; default: --frames sample frames)')
    parser.add_argument('--frames', type=_count(1, MAX_FRAMES), default=DEFAULT_FRAMES,
                        metavar='N',
                        help=f'sample frames to compare on when no --image is given '
                             f'(default {DEFAULT_FRAMES}, at most {MAX_FRAMES})')
    parser.add_argument('--min-label-pixels', type=_count(0), default=MIN_LABEL_PIXELS,
                        metavar='N', help='a label counts in the mIoU when its union over the '
                                          f'images of a size covers N pixels or more (default '
                                          f'{MIN_LABEL_PIXELS}; 0: every label)')
    parser.add_argument('--labels', help='comma-separated labels for the label maps '
                                         '(default: 20 everyday labels)')
    parser.add_argument('--device', default='auto', help='device of the backend under test')
    parser.add_argument('--reference-device', help='device of PyTorch fp32 (default: --device)')
    for option, _ in LIMITS:
        parser.add_argument('--' + option.replace('_', '-'), type=float, metavar='X',
                            help='threshold override')
    add_verbose(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the comparison."""
    from lseg_ros.cli.segment import read_rgb
    from lseg_ros.core.model.checkpoint import load_weights
    from lseg_ros.deploy.fidelity import json_report, plot_heatmaps, run_fidelity
    from lseg_ros.deploy.latency import parse_sizes, write_json

    sizes = parse_sizes(args.sizes)
    images = [read_rgb(path) for path in args.image] or None
    thresholds = {metric: getattr(args, option) for option, metric in LIMITS}
    options = {}
    if args.cuda_graph is not None:
        options['cuda_graph'] = args.cuda_graph
    if args.compile:
        options['compile_mode'] = args.compile
    if args.channels_last:
        options.update(channels_last=True, cudnn_benchmark=True)
    precision = args.precision
    if args.preset:
        from lseg_ros.core.errors import LsegError
        from lseg_ros.deploy.latency import TORCH_PRESETS
        if args.backend != 'torch' or args.preset not in TORCH_PRESETS:
            raise LsegError(f'--preset needs --backend torch and one of '
                            f'{", ".join(TORCH_PRESETS)}')
        precision, preset_options = TORCH_PRESETS[args.preset]
        options.update(preset_options)
    weights = load_weights(args.checkpoint)
    report = run_fidelity(weights, args.backend, precision, sizes, args.device,
                          args.labels or FIDELITY_LABELS, images, engine=args.engine,
                          onnx=args.onnx, thresholds=thresholds,
                          reference_device=args.reference_device, frames=args.frames,
                          min_label_pixels=args.min_label_pixels, **options)
    write_json(json_report(report), args.output)
    if args.heatmap:
        plot_heatmaps(report, args.heatmap)
    backend = report['backend']
    print(f'{report["variant"]}: {backend["backend"]} {backend["precision"]} on '
          f'{backend["device"]} vs PyTorch fp32 on {report["reference"]["device"]}')
    print('thresholds: ' + json.dumps(report['thresholds']))
    print(f'{report["images"]} image(s); mIoU of the set of images per size, labels on '
          f'{report["min_label_pixels"]}+ pixels of the set')
    count = report['images']
    for index, summary in enumerate(report['sets']):
        size = summary['size']
        cases = report['cases'][index * count:(index + 1) * count]
        worst = min(cases, key=lambda c: c['metrics'].get('agreement', 1.0))['metrics']
        lowest = min(cases, key=lambda c: c['metrics']['min_cosine'])['metrics']
        print(f'  {size[0]}x{size[1]}: mean cos >= '
              f'{min(c["metrics"]["mean_cosine"] for c in cases):.6f}, min cos '
              f'{lowest["min_cosine"]:.6f}, rel L2 <= '
              f'{max(c["metrics"]["rel_l2"] for c in cases):.2e}, agreement >= '
              f'{worst.get("agreement", float("nan")):.4f}, set mIoU {summary["miou"]:.4f} '
              f'({summary["labels_counted"]} labels; every label '
              f'{summary["miou_every_label"]:.4f}) -> '
              + ('PASS' if summary['passed'] else 'FAIL: ' + '; '.join(summary['failed'])))
    print('PASS' if report['passed'] else 'FAIL')
    return 0 if report['passed'] else 1


def entry(argv=None) -> int:
    """Console-script entry point (also ``tools/fidelity.py``)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Check a backend against PyTorch fp32 on byte-identical pre-processed input.

Reports per-pixel cosine (mean, p1, min, in float64), relative L2, argmax agreement and
mIoU of the label maps for --labels; compares them with thresholds (defaults depend on the
backend's precision, override with the --min-*/--max-* options), prints PASS or FAIL and
exits 0 (PASS), 1 (FAIL or error) or 2 (usage).  Writes a JSON report and a heat map of
1 - cosine.

Examples:
  tools/fidelity.py --checkpoint demo_e200.ckpt --backend torch --precision fp16 \
      --sizes 384x384,480x640 --output fidelity.json --heatmap fidelity.png
  tools/fidelity.py --checkpoint demo_e200.ckpt --backend tensorrt --engine m.engine \
      --output trt.json --image frame.png
"""

import argparse
import json
import sys

from lseg_ros.cli.common import add_verbose, run_main
from lseg_ros.core.options import BACKENDS, FIDELITY_LABELS, PRECISIONS

PROG = 'fidelity'
#: A backend under test is named: ``auto`` would not say which one is measured.
BACKENDS_UNDER_TEST = tuple(name for name in BACKENDS if name != 'auto')
LIMITS = (('min_mean_cosine', 'mean_cosine'), ('min_p1_cosine', 'p1_cosine'),
          ('min_min_cosine', 'min_cosine'), ('max_rel_l2', 'rel_l2'),
          ('min_agreement', 'agreement'), ('min_miou', 'miou'))


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
                        help='RGB image file (repeatable; default: the bundled sample frame)')
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
                          reference_device=args.reference_device, **options)
    write_json(json_report(report), args.output)
    if args.heatmap:
        plot_heatmaps(report, args.heatmap)
    backend = report['backend']
    print(f'{report["variant"]}: {backend["backend"]} {backend["precision"]} on '
          f'{backend["device"]} vs PyTorch fp32 on {report["reference"]["device"]}')
    print('thresholds: ' + json.dumps(report['thresholds']))
    for case in report['cases']:
        m = case['metrics']
        print(f'  {case["size"][0]}x{case["size"][1]} (image {case["image"]}): mean cos '
              f'{m["mean_cosine"]:.6f}, p1 {m["p1_cosine"]:.6f}, min {m["min_cosine"]:.6f}, '
              f'rel L2 {m["rel_l2"]:.2e}, agreement {m.get("agreement", float("nan")):.4f}, '
              f'mIoU {m.get("miou", float("nan")):.4f} -> '
              + ('PASS' if case['passed'] else 'FAIL: ' + '; '.join(case['failed'])))
    print('PASS' if report['passed'] else 'FAIL')
    return 0 if report['passed'] else 1


def entry(argv=None) -> int:
    """Console-script entry point (also ``tools/fidelity.py``)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

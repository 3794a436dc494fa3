# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Export the LSeg image encoder (or, with --text, the CLIP text encoder) to ONNX.

The image encoder takes the normalised (1, 3, H, W) float32 image and returns the
(1, 512, H/2, W/2) float32 features; H and W are dynamic (multiples of 32) unless --fixed
is given.  --fp16 exports a float16 graph with LayerNorm and softmax kept in float32 for
strongly typed TensorRT engines (input and output stay float32).  Every export is checked
with onnx's checker and against PyTorch in ONNX Runtime; the tool fails beyond tolerance.

Examples:
  tools/export_onnx.py --checkpoint demo_e200.ckpt --output models/lseg_vitl16.onnx
  tools/export_onnx.py --checkpoint demo_e200.ckpt --output models/lseg_vitl16_fp16.onnx --fp16
  tools/export_onnx.py --checkpoint demo_e200.ckpt --output models/clip_text.onnx --text
  tools/export_onnx.py --checkpoint demo_e200.ckpt --output models/lseg_vitl16_int8.onnx \
      --fixed 480x640 --int8 --calibration frames/

--int8 writes an fp32 export next to the output (<output>.fp32.onnx), then the INT8 Q/DQ graph
(ONNX Runtime's static quantiser, symmetric, per-channel weights, float biases, calibrated on
--calibration images or the bundled sample frames) that TensorRT builds as an explicitly
quantised engine.  --fp8 writes the FP8 (E4M3, opset 19) Q/DQ graph with the same activation
ranges and per-channel weight scales, for TensorRT on FP8 GPUs (Ada, Hopper, Blackwell).
Measure what it costs with tools/fidelity.py --backend onnxruntime --onnx <output> before use:
with the reference weights no INT8 or FP8 variant passed (docs/benchmarks.md).
"""

import argparse
import json
import sys

from lseg_ros.cli.common import add_verbose, run_main

PROG = 'export_onnx'


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='official lang-seg checkpoint')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--text', action='store_true',
                        help='export the CLIP text encoder (dynamic batch, 77 tokens) instead')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 graph, LayerNorm/softmax in float32, float32 I/O')
    parser.add_argument('--fixed', metavar='HxW',
                        help='fixed input size instead of dynamic H and W (e.g. 480x640)')
    parser.add_argument('--trace-size', metavar='HxW',
                        help='example size traced for a dynamic export (default 256x320)')
    parser.add_argument('--check-size', metavar='HxW', action='append',
                        help='size checked in ONNX Runtime (repeatable; default: the traced '
                             'size and, when dynamic, a second size)')
    parser.add_argument('--opset', type=int, default=None,
                        help='ONNX opset (17..20; default 17, with --fp8 19)')
    parser.add_argument('--softmax-fp32', action=argparse.BooleanOptionalAction, default=True,
                        help='with --fp16: keep the attention softmax in float32 (default on)')
    parser.add_argument('--external-data', action=argparse.BooleanOptionalAction, default=None,
                        help='store weights in <output>.data (default: only above ~1.9 GB)')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the ONNX Runtime comparison (the checker still runs)')
    quantise = parser.add_mutually_exclusive_group()
    quantise.add_argument('--int8', action='store_true',
                          help='write an INT8 Q/DQ graph (for TensorRT explicit quantisation)')
    quantise.add_argument('--fp8', action='store_true',
                          help='write an FP8 (E4M3) Q/DQ graph, opset 19 (TensorRT on FP8 GPUs: '
                               'Ada, Hopper, Blackwell)')
    parser.add_argument('--calibration', metavar='DIR',
                        help='with --int8/--fp8: folder of calibration images (default: the '
                             'bundled sample frames)')
    parser.add_argument('--calibration-frames', type=int, default=8, metavar='N',
                        help='with --int8/--fp8: at most N calibration images (default 8)')
    parser.add_argument('--calibration-method', choices=('percentile', 'minmax'),
                        default='percentile', help='with --int8/--fp8 (default percentile)')
    parser.add_argument('--keep', action='append', default=[], metavar='REGEX',
                        help='with --int8/--fp8: Conv/MatMul/Gemm nodes whose name matches stay '
                             'unquantised, in the float type of the graph (repeatable; '
                             'replaces the default: decoder, patch embedding, readout, MLP fc2; '
                             'attention products always stay)')
    parser.add_argument('--report', metavar='FILE.json', help='write the export report here')
    add_verbose(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the export."""
    from lseg_ros.core.model.checkpoint import load_weights
    from lseg_ros.deploy.export import (DEFAULT_OPSET, ExportError, export_image_encoder,
                                        export_text_encoder, parse_size)
    from lseg_ros.deploy.quantize import FP8_OPSET
    from lseg_ros.core.interrupts import write_text

    if args.text and (args.fp16 or args.fixed or args.trace_size or args.check_size):
        raise ExportError('--text takes no --fp16/--fixed/--trace-size/--check-size')
    if args.fixed and args.trace_size:
        raise ExportError('--fixed and --trace-size exclude each other')
    mode = 'int8' if args.int8 else 'fp8' if args.fp8 else None
    if mode and (args.text or not args.fixed):
        raise ExportError(f'--{mode} quantises the image encoder at one size: give --fixed HxW '
                          '(the calibration size) and no --text')
    if not mode and (args.calibration or args.keep):
        raise ExportError('--calibration and --keep go with --int8 or --fp8')
    # float8, and Q/DQ of float16 tensors, need QuantizeLinear-19
    needs = FP8_OPSET if mode == 'fp8' or (mode and args.fp16) else None
    if args.opset is None:
        args.opset = needs or DEFAULT_OPSET
    elif needs and args.opset < needs:
        raise ExportError(f'--{mode}{" --fp16" if args.fp16 else ""} needs --opset {needs} or '
                          'higher (QuantizeLinear of float8 or float16)')
    weights = load_weights(args.checkpoint)
    base = None
    if args.text:
        result = export_text_encoder(weights, args.output, opset=args.opset,
                                     check=not args.no_check)
    else:
        size = parse_size(args.fixed or args.trace_size) if (args.fixed or args.trace_size) \
            else None
        checks = [parse_size(s) for s in args.check_size] if args.check_size else None

        def export(path, precision):
            return export_image_encoder(
                weights, path, precision=precision, dynamic=not args.fixed, size=size,
                check_sizes=checks, opset=args.opset, softmax_fp32=args.softmax_fp32,
                external_data=args.external_data, check=not args.no_check)
        # quantised: the fp32 export is calibrated; the Q/DQ go into it or the fp16 export
        result = export(args.output + '.fp32.onnx' if mode else args.output,
                        'fp16' if args.fp16 and not mode else 'fp32')
        base = export(args.output + '.fp16.onnx', 'fp16') if mode and args.fp16 else None
    report = result.as_dict()
    if base is not None:
        report['float16_base'] = base.as_dict()
    if mode:
        report[mode] = quantize(args, weights, result.path, size, mode,
                                base.path if base is not None else None)
    if args.report:
        write_text(args.report, json.dumps(report, indent=2) + '\n')
    shape = 'x'.join(str(d) for d in result.input_shape)
    external = ', external data' if result.external_data else ''
    print(f'wrote {result.path} ({result.size_bytes / 1e6:.1f} MB{external}): '
          f'{result.kind} encoder, {result.variant}, {result.precision}, input {shape}, '
          f'opset {result.opset}, {result.seconds:.1f} s')
    for check in result.checks:
        print(f'  onnxruntime vs torch at {check["size"][0]}x{check["size"][1]}: rel L2 '
              f'{check["rel_l2"]:.2e}, min cosine {check["min_cosine"]:.6f}, max abs '
              f'{check["max_abs"]:.2e} -> {"ok" if check["passed"] else "FAIL"}')
    if not result.checks:
        print('  ONNX Runtime comparison skipped (--no-check)')
    if mode:
        q = report[mode]
        print(f'wrote {q["output"]}: {mode.upper()} Q/DQ over {q["float_type"]}, '
              f'{q["quantize_nodes"]} QuantizeLinear nodes, {q["kept_count"]} of '
              f'{q["candidates"]} Conv/MatMul/Gemm kept in {q["float_type"]}, calibrated on '
              f'{q["calibration_frames"]} frames ({q["calibration"]}); check it with '
              f'tools/fidelity.py --backend onnxruntime --onnx {q["output"]}')
    return 0


def quantize(args: argparse.Namespace, weights, fp32_path: str, size, mode: str,
             float16_base=None) -> dict:
    """Calibrate ``fp32_path`` and write the ``mode`` (int8, fp8) Q/DQ graph."""
    from lseg_ros.deploy.quantize import quantize_image_encoder
    if args.calibration:
        from lseg_ros.formats.image_codec import read_image_folder
        images = read_image_folder(args.calibration, args.calibration_frames)
    else:
        from lseg_ros.core.samples import sample_frames
        images = list(sample_frames(max(1, args.calibration_frames), *size))
    from lseg_ros.deploy.quantize import DEFAULT_KEEP
    return quantize_image_encoder(fp32_path, args.output, images, size, weights.variant,
                                  mode=mode, keep=args.keep or DEFAULT_KEEP,
                                  calibration=args.calibration_method,
                                  float16_base=float16_base)


def entry(argv=None) -> int:
    """Console-script entry point (also ``tools/export_onnx.py``)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

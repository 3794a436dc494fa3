# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build a TensorRT engine from an exported ONNX image encoder (TensorRT 10/11 or RTX).

The precision follows the ONNX graph (strongly typed network): an fp16 ONNX
(export_onnx --fp16) gives an fp16 engine, an fp32 ONNX a strict fp32 engine (TF32 off
unless --tf32), and an INT8 or FP8 Q/DQ ONNX (export_onnx --int8/--fp8) an explicitly
quantised engine whose other layers run in the graph's float type.  --precision fp16 on an
fp32 ONNX uses BuilderFlag.FP16 where it still exists (TensorRT 10 only).  Shapes:
--opt-shape alone gives a static engine for that size; add --min-shape/--max-shape for a
range.  Shapes are HxW for the image input, or
name:D1xD2x... for any input.  The engine's identity is written to <output>.json; an
up-to-date engine is not rebuilt unless --force.

Examples (JetPack 6 / TensorRT 10.3, or an RTX GPU):
  tools/build_engine.py --onnx models/lseg_vitl16_fp16.onnx --output models/lseg_vitl16.engine \
      --min-shape 256x256 --opt-shape 480x640 --max-shape 640x640 --timing-cache models/trt.cache
  LSEG_TRT_MODULE=tensorrt_rtx tools/build_engine.py --onnx m_fp16.onnx --output m.engine \
      --opt-shape 480x640 --compute-capability CURRENT
"""

import argparse
import json
import sys

from lseg_ros.cli.common import add_verbose, run_main
from lseg_ros.core.options import PRECISIONS

PROG = 'build_engine'


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx', required=True, help='ONNX file from tools/export_onnx.py')
    parser.add_argument('--output', required=True, help='engine file to write')
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help='auto (default): the precision of the ONNX graph')
    parser.add_argument('--tf32', action='store_true', help='allow TF32 in an fp32 engine')
    for kind in ('min', 'opt', 'max'):
        parser.add_argument(f'--{kind}-shape', action='append', default=[],
                            metavar='[NAME:]SHAPE',
                            help=f'{kind} shape of the optimisation profile (repeatable per '
                                 'input), e.g. 480x640 or image:1x3x480x640')
    parser.add_argument('--workspace', type=int, metavar='MiB',
                        help='workspace limit (default: all device memory)')
    parser.add_argument('--optimization-level', type=int, choices=range(6), metavar='0..5',
                        help='builder optimisation level (TensorRT default: 3)')
    parser.add_argument('--timing-cache', metavar='FILE',
                        help='timing cache to read and update (TensorRT; no effect with RTX)')
    parser.add_argument('--module', choices=('tensorrt', 'tensorrt_rtx'),
                        help='TensorRT Python module (default: $LSEG_TRT_MODULE, else '
                             'tensorrt, else tensorrt_rtx)')
    parser.add_argument('--compute-capability', action='append', default=[], metavar='SMxx',
                        help='TensorRT-RTX target (repeatable: SM80, SM86, SM89, SM120, or '
                             'CURRENT); default: the list of TensorRT-RTX')
    parser.add_argument('--force', action='store_true', help='rebuild even when up to date')
    parser.add_argument('--log-level', default='warning',
                        choices=('error', 'warning', 'info', 'verbose'),
                        help='TensorRT log level (default warning)')
    add_verbose(parser)
    return parser


def shape_dict(specs, kind):
    """Turn repeated ``[name:]shape`` options into ``{name or '': spec}``."""
    from lseg_ros.core.backends.artifacts import EngineBuildError
    from lseg_ros.deploy.engine_build import parse_shape

    shapes = {}
    for spec in specs:
        name, _ = parse_shape(spec)
        key = name or ''
        if key in shapes:
            raise EngineBuildError(f'--{kind}-shape given twice for '
                                   f'{key or "the input"}: name the inputs (name:shape)')
        shapes[key] = spec
    return shapes


def main(args: argparse.Namespace) -> int:
    """Build the engine."""
    from lseg_ros.core.backends.artifacts import engine_validity, import_tensorrt, is_rtx
    from lseg_ros.deploy.engine_build import build_engine, BuildOptions

    options = BuildOptions(
        precision=args.precision, tf32=args.tf32,
        min_shapes=shape_dict(args.min_shape, 'min'), opt_shapes=shape_dict(args.opt_shape, 'opt'),
        max_shapes=shape_dict(args.max_shape, 'max'), workspace_mib=args.workspace,
        optimization_level=args.optimization_level, timing_cache=args.timing_cache,
        compute_capabilities=args.compute_capability)
    trt = import_tensorrt(args.module)
    result = build_engine(args.onnx, args.output, options, force=args.force, trt=trt,
                          log_level=args.log_level)
    identity = result.metadata['identity']
    state = f'built in {result.seconds:.1f} s' if result.built else 'up to date, not rebuilt'
    print(f'{result.engine}: {state} ({result.metadata["engine_bytes"] / 1e6:.1f} MB)')
    quantized = result.metadata.get('onnx_quantization')
    print(f'  {identity["trt_module"]} {identity["trt_version"]}, precision '
          f'{identity["precision"]} ({"strongly" if identity["strongly_typed"] else "weakly"} '
          f'typed{f", {quantized} Q/DQ" if quantized else ""}), gpu {identity["gpu"]}, '
          f'rtx targets {identity["rtx_targets"]}')
    for name, profile in identity['profiles'].items():
        print(f'  profile {name}: min {profile["min"]} opt {profile["opt"]} max {profile["max"]}')
    print(f'  metadata: {result.engine}.json (cache key {result.metadata["cache_key"][:16]})')
    if is_rtx(trt):
        with open(result.engine, 'rb') as handle:
            validity = engine_validity(trt, handle.read())
        if validity is not None:
            print('  TensorRT-RTX engine validity on this machine: '
                  + json.dumps(validity, sort_keys=True))
    return 0


def entry(argv=None) -> int:
    """Console-script entry point (also ``tools/build_engine.py``)."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())

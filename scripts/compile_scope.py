# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Which parts of the fp16 image encoder can Inductor compile and still pass the fidelity gate.

    python scripts/compile_scope.py --output scope.json \
        [--scopes lean,trunk,backbone,all] [--sizes 384x384,480x640,1024x1024]

For each scope, one fp16 torch backend (the GPU default: CUDA graph, channels-last, folded
BatchNorm, PyTorch's LayerNorm) with ``torch.compile`` (mode ``default``) applied to:

  lean      nothing (the uncompiled fp16 mode: ``compile: off``)
  trunk     the ViT trunk (patch and position embedding, the 24 blocks)
  backbone  the trunk and the four reassemble stages (the decoder stays eager)
  all       the whole encoder (the default, ``compile: auto`` or ``on``)

then, at each size and batch 1, its latency (``tools/latency.py``'s timing: warm-up 5, 30
timed calls, p50, no transfers, sample frame 5) and its fidelity against PyTorch fp32 on
the same inputs (``tools/fidelity.py``'s gate: its default frames and labels, per-image
thresholds, the set's mIoU over the labels on ``--min-label-pixels`` pixels or more).
Random official-layout ViT-L/16 weights (lseg_ros.core.model.synthetic).  Issue 11,
docs/benchmarks.md.  Needs a CUDA GPU; each compiled scope costs about 20 s per size.
"""

import argparse
import json
import sys
import time

SCOPES = ('lean', 'trunk', 'backbone', 'all')


def compiled_backend(weights, device, scope: str):
    """Return the fp16 torch backend with ``scope`` compiled by Inductor."""
    import torch

    from lseg_ros.core.backends.torch_backend import raise_recompile_limit, TorchBackend

    backend = TorchBackend(weights, device, 'fp16', compile_mode='gpu' if scope == 'all'
                           else None)
    raise_recompile_limit()
    if scope == 'trunk':
        backend.model.pretrained.model = torch.compile(backend.model.pretrained.model,
                                                       dynamic=False)
    elif scope == 'backbone':
        backend.model.pretrained = torch.compile(backend.model.pretrained, dynamic=False)
    return backend


def main(argv=None) -> int:
    """Measure latency and fidelity of each compile scope; write one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', required=True, help='JSON report to write')
    parser.add_argument('--scopes', default=','.join(SCOPES),
                        help=f'comma-separated, of {", ".join(SCOPES)}')
    parser.add_argument('--sizes', default='384x384,480x640,1024x1024',
                        help='comma-separated HxW input sizes (batch 1)')
    parser.add_argument('--frames', type=int,
                        help='sample frames compared (default: those of tools/fidelity.py)')
    parser.add_argument('--min-label-pixels', type=int,
                        help="the fidelity gate's minimum label support (0: every label; "
                             "default: tools/fidelity.py's)")
    args = parser.parse_args(argv)
    scopes = args.scopes.split(',')
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        parser.error(f'unknown scope(s) {", ".join(unknown)}; choose from {", ".join(SCOPES)}')

    from lseg_ros.core.errors import LsegError
    from lseg_ros.deploy import fidelity
    from lseg_ros.deploy.latency import parse_sizes
    if args.frames is None:
        args.frames = fidelity.DEFAULT_FRAMES
    if args.min_label_pixels is None:
        args.min_label_pixels = fidelity.MIN_LABEL_PIXELS
    if args.min_label_pixels < 0:
        parser.error('--min-label-pixels needs 0 or more')
    try:
        sizes = parse_sizes(args.sizes)
        frames = fidelity.default_images(args.frames)
    except LsegError as error:
        parser.error(str(error))

    import torch

    from lseg_ros.core.backends.torch_backend import TorchBackend
    from lseg_ros.core.interrupts import write_text
    from lseg_ros.core.labels import parse_labels
    from lseg_ros.core.model.checkpoint import load_weights
    from lseg_ros.core.model.head import text_weights
    from lseg_ros.core.model.synthetic import cached_reference_checkpoint
    from lseg_ros.core.model.text_encoder import ClipTextEncoder
    from lseg_ros.core.model.variants import VIT_L16
    from lseg_ros.core.options import FIDELITY_LABELS
    from lseg_ros.deploy.fidelity import (compare, default_thresholds, judge_set,
                                          per_image_limits, prepare_input, verdict)
    from lseg_ros.deploy.latency import strict_fp32, time_backend
    from lseg_ros.deploy.report import environment

    if not torch.cuda.is_available():
        print('compile_scope: needs a CUDA GPU', file=sys.stderr)
        return 2
    device = torch.device('cuda')
    weights = load_weights(cached_reference_checkpoint(VIT_L16))
    labels = parse_labels(FIDELITY_LABELS)
    head = text_weights(ClipTextEncoder(weights.text, device='cpu').encode(labels))
    limits = default_thresholds('fp16')
    per_image = per_image_limits(limits)
    rows = []
    report = {'tool': 'compile_scope', 'variant': VIT_L16.name, 'labels': list(labels),
              'thresholds': limits, 'frames': args.frames,
              'min_label_pixels': args.min_label_pixels, 'environment': environment(device),
              'rows': rows}
    with strict_fp32():
        reference = TorchBackend(weights, device, 'fp32', cuda_graph=False,
                                 channels_last=False, cudnn_benchmark=False, compile_mode=None)
        cases = {}          # size -> [(input, fp32 features)] (20 frames at 1024x1024: 10 GB)
        for size in sizes:
            cases[size] = []
            for rgb in frames:
                x = prepare_input(rgb, size, VIT_L16)
                cases[size].append((x, reference(x.to(device)).float().clone()))
        reference.close()
        del reference
        torch.cuda.empty_cache()
        for scope in scopes:
            start = time.monotonic()
            backend = compiled_backend(weights, device, scope)
            for size, pairs in cases.items():
                timed = pairs[5 % len(pairs)][0]
                row = {'scope': scope, 'size': list(size),
                       'latency_ms': time_backend(backend, timed.to(device), 5, 30)}
                images = []
                for index, (x, expected) in enumerate(pairs):
                    metrics, _ = compare(expected, backend(x.to(device)).float().clone(), head)
                    for entry in metrics['label_ious']:
                        entry['name'] = labels[entry['label']]
                    images.append({'image': index, 'metrics': metrics,
                                   'failed': verdict(metrics, per_image)})
                summary = judge_set(images, limits, args.min_label_pixels)
                # the backend falls back to eager when Inductor fails: say what really ran
                row['backend_mode'] = backend.describe()['mode']
                row.update(set=summary, images=images, failed=summary['failed'],
                           passed=summary['passed'],
                           elapsed_s=round(time.monotonic() - start, 1))
                rows.append(row)
                lowest = {key: min(m['metrics'][key] for m in images)
                          for key in ('mean_cosine', 'agreement')}
                print(f'{scope:9s} {size[0]}x{size[1]}: p50 {row["latency_ms"]["p50"]:.2f} ms, '
                      f'mean cos >= {lowest["mean_cosine"]:.7f}, agreement >= '
                      f'{lowest["agreement"]:.4f}, set mIoU {summary["miou"]:.4f} (every '
                      f'label {summary["miou_every_label"]:.4f}) '
                      f'-> {"PASS" if row["passed"] else "FAIL"}', flush=True)
            backend.close()
            del backend
            torch.cuda.empty_cache()
            # Dynamo does not guard on Inductor's settings: a fresh start for each scope
            torch._dynamo.reset()
            write_text(args.output, json.dumps(report, indent=1) + '\n')   # after each scope
    return 0


if __name__ == '__main__':
    sys.exit(main())

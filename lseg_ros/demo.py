# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``make demo``: segment the bundled sample stream and write overlays and a summary."""

import argparse
import json
import logging
import os
from pathlib import Path
import sys
import time

import numpy as np

from lseg_ros.cli.segment import write_image
from lseg_ros.core.pipeline import LsegPipeline, OutputRequest
from lseg_ros.core.synthetic import write_reference_checkpoint
from lseg_ros.core.variants import VIT_L16
from lseg_ros.core.wordfree import cache_dir
from lseg_ros.samples import SAMPLE_LABELS, sample_frames

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / 'models' / 'demo_e200.ckpt'
BANNER = '!' * 78


def demo_checkpoint() -> (str, bool):
    """Return ``(path, trained)``: models/demo_e200.ckpt, or a random-weights stand-in."""
    if TRAINED.exists():
        return str(TRAINED), True
    path = cache_dir() / 'demo' / 'vit_l16_random_official_layout.ckpt'
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print('generating an official-layout ViT-L/16 checkpoint with random weights ...')
        write_reference_checkpoint(str(path), VIT_L16)
    return str(path), False


def untrained_warning() -> None:
    """Say loudly that the masks come from random weights."""
    print(f'{BANNER}\n!! models/demo_e200.ckpt not found: using RANDOM weights with the official\n'
          f'!! layout. The masks below are UNTRAINED and meaningless; put the official\n'
          f'!! checkpoint in models/ (see models/README.md) for real segmentation.\n{BANNER}')


def main(argv=None) -> int:
    """Run the demo."""
    parser = argparse.ArgumentParser(prog='lseg_demo', description=__doc__)
    parser.add_argument('--output', default=str(ROOT / 'demo_output'))
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--size', type=int, default=256, help='network input long side')
    parser.add_argument('--device', default='auto')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    checkpoint, trained = demo_checkpoint()
    if not trained:
        untrained_warning()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = LsegPipeline.from_checkpoint(checkpoint, device=args.device,
                                            input_size=args.size, labels=SAMPLE_LABELS)
    times = []
    for index, frame in enumerate(sample_frames(args.frames)):
        start = time.perf_counter()
        result = pipeline.segment(frame, OutputRequest(overlay=True))
        times.append(1000 * (time.perf_counter() - start))
        write_image(str(out / f'overlay_{index:03d}.png'), result.overlay)
        write_image(str(out / f'mask_{index:03d}.png'), result.mask)
    summary = {'checkpoint': checkpoint, 'trained': trained, 'labels': SAMPLE_LABELS,
               'frames': len(times), 'latency_ms_p50': float(np.percentile(times, 50)),
               'latency_ms_max': float(np.max(times)), **pipeline.describe()}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f'wrote {len(times)} overlays and masks to {out}{os.sep}')
    if not trained:
        untrained_warning()
    return 0


if __name__ == '__main__':
    sys.exit(main())

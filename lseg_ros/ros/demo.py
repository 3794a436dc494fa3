# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The demo's checkpoint, camera topic and untrained-weights warning.

The demo itself is the ``lseg_demo`` command (``make demo``).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAINED = ROOT / 'models' / 'demo_e200.ckpt'
BANNER = '!' * 78
CAMERA = '/demo/camera/image_raw'


def demo_checkpoint():
    """Return ``(path, trained)``: models/demo_e200.ckpt, or a random-weights stand-in."""
    if TRAINED.exists():
        return str(TRAINED), True
    from lseg_ros.core.model.synthetic import cached_reference_checkpoint   # torch
    from lseg_ros.core.model.variants import VIT_L16
    print('using an official-layout ViT-L/16 checkpoint with random weights (generated once '
          'into the cache) ...', flush=True)
    return cached_reference_checkpoint(VIT_L16), False


def untrained_warning() -> None:
    """Say loudly that the masks come from random weights."""
    print(f'{BANNER}\n!! models/demo_e200.ckpt not found: the node runs RANDOM weights with the\n'
          f'!! official layout. The masks are UNTRAINED and meaningless; put the official\n'
          f'!! checkpoint in models/ (see models/README.md) for real segmentation.\n{BANNER}',
          flush=True)

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stable per-label colours and the colour overlay of a mask on its image."""

import colorsys
import hashlib
from typing import Sequence

import torch


def label_color(label: str) -> tuple:
    """Return a vivid RGB colour that depends only on the label text (stable across runs)."""
    digest = hashlib.sha1(' '.join(label.lower().split()).encode()).digest()
    hue = int.from_bytes(digest[:2], 'big') / 65536.0
    saturation = 0.65 + 0.35 * digest[2] / 255.0
    value = 0.75 + 0.25 * digest[3] / 255.0
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def palette(labels: Sequence[str], device='cpu') -> torch.Tensor:
    """(K, 3) float32 colours for ``labels``."""
    return torch.tensor([label_color(label) for label in labels], dtype=torch.float32,
                        device=device)


def blend(rgb: torch.Tensor, mask: torch.Tensor, colors: torch.Tensor,
          alpha: float) -> torch.Tensor:
    """Blend label colours on an (H, W, 3) uint8 image: ``(1 - alpha) * rgb + alpha * color``."""
    out = torch.lerp(rgb.float(), colors[mask], alpha)
    return out.round_().clamp_(0, 255).to(torch.uint8)

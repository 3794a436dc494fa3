# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pre-processing: any RGB uint8 image to the network input, and the way back.

RGB uint8 (H, W, 3) -> resize keeping aspect so that the long side equals ``size``
(bilinear, antialiased when shrinking) -> pad right/bottom with black to multiples of 32
-> the variant's normalisation.  The padding is black *before* normalisation, like the
official demo's padding value ``-mean/std``.  An image whose sides are multiples of 32 and
whose long side equals ``size`` goes through unchanged.
"""

from dataclasses import dataclass
import math
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from lseg_ros.core.errors import ImageError

MULTIPLE = 32


@dataclass(frozen=True)
class Geometry:
    """Sizes (height, width) of the source image, its resized copy and the padded input."""

    source: Tuple[int, int]
    resized: Tuple[int, int]
    padded: Tuple[int, int]

    @property
    def feature_valid(self) -> Tuple[int, int]:
        """Size of the feature map (H/2 grid) region that covers the resized image."""
        return (math.ceil(self.resized[0] / 2), math.ceil(self.resized[1] / 2))


def plan_geometry(height: int, width: int, size: int) -> Geometry:
    """Return the geometry for an image of ``height`` x ``width`` at long side ``size``."""
    if height < 1 or width < 1:
        raise ImageError(f'image of size {height}x{width} is empty')
    if size < MULTIPLE:
        raise ValueError(f'input size {size} is below the minimum of {MULTIPLE}')
    scale = size / max(height, width)
    resized = (max(1, round(height * scale)), max(1, round(width * scale)))
    padded = tuple(MULTIPLE * math.ceil(s / MULTIPLE) for s in resized)
    return Geometry((height, width), resized, padded)


def check_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it is an (H, W, 3) uint8 array, else raise :class:`ImageError`."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ImageError(f'expected an RGB uint8 image of shape (H, W, 3), got {dtype} {shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f'image of shape {image.shape} is empty')
    return image


class Normalizer:
    """Turns (H, W, 3) or (B, H, W, 3) uint8 tensors into normalised, padded network input.

    The result is (1, 3, H', W') or (B, 3, H', W') float32.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], device='cpu'):
        device = torch.device(device)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, rgb: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Resize, pad and normalise ``rgb`` (uint8, [B x] H x W x 3, on the target device)."""
        if rgb.dim() == 3:
            rgb = rgb.unsqueeze(0)
        x = rgb.permute(0, 3, 1, 2).float()
        if geometry.resized != geometry.source:
            shrink = geometry.resized[0] < geometry.source[0]
            x = F.interpolate(x, size=geometry.resized, mode='bilinear', align_corners=False,
                              antialias=shrink)
        pad_h = geometry.padded[0] - geometry.resized[0]
        pad_w = geometry.padded[1] - geometry.resized[1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=0.0)
        return torch.addcmul(self.shift, x, self.scale)

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LSeg's DPT-style fusion decoder (``scratch.*`` in the official checkpoints)."""

from typing import Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling with ``align_corners=True``, as everywhere in LSeg."""
    return F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=True)


class ResidualConvUnit(nn.Module):
    """``ResidualConvUnit_custom`` with bn: ``x + bn2(conv2(relu(bn1(conv1(relu(x))))))``."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(features)
        self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the residual unit."""
        out = self.bn1(self.conv1(F.relu(x)))
        out = self.bn2(self.conv2(F.relu(out)))
        return out + x


class FeatureFusionBlock(nn.Module):
    """``FeatureFusionBlock_custom`` (bn=True, expand=False, align_corners=True).

    ``project_first``: apply the 1x1 ``out_conv`` before the x2 upsampling instead of after
    it (the same function: bilinear weights sum to one, so a 1x1 convolution and its bias
    commute with the upsampling; four times fewer pixels to project;
    :func:`lseg_ros.core.model.fusion.fold_projections`).
    """

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.project_first = False

    def forward(self, x: torch.Tensor, skip: torch.Tensor = None) -> torch.Tensor:
        """Fuse ``x`` with an optional skip connection, then upsample x2."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if self.project_first:
            return upsample2x(self.out_conv(x))
        return self.out_conv(upsample2x(x))


class Scratch(nn.Module):
    """Projection convs, four fusion blocks and ``head1``: backbone levels to features.

    Takes the four backbone levels at H/4, H/8, H/16 and H/32 and returns the
    (B, 512, H/2, W/2) image features, not normalised.
    """

    def __init__(self, in_channels: Sequence[int], features: int = 256, out_dim: int = 512):
        super().__init__()
        for i, channels in enumerate(in_channels, start=1):
            self.add_module(f'layer{i}_rn', nn.Conv2d(channels, features, 3, padding=1,
                                                      bias=False))
        for i in range(1, 5):
            self.add_module(f'refinenet{i}', FeatureFusionBlock(features))
        self.head1 = nn.Conv2d(features, out_dim, 1)

    def forward(self, l1, l2, l3, l4) -> torch.Tensor:
        """Fuse the four levels and project to the embedding dimension."""
        return self.fine(*self.coarse(l1, l2, l3, l4))

    def coarse(self, l1, l2, l3, l4) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fuse the three coarser levels: the path at H/4 and the H/4 level's projection."""
        path = self.refinenet4(self.layer4_rn(l4))
        path = self.refinenet3(path, self.layer3_rn(l3))
        path = self.refinenet2(path, self.layer2_rn(l2))
        return path, self.layer1_rn(l1)

    def fine(self, path: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Run the last fusion block and ``head1``: the (B, 512, H/2, W/2) features.

        Its maps at H/4 and H/2 are most of the encoder's working memory.
        """
        return self.head1(self.refinenet1(path, skip))

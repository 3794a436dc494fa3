# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The segmentation head: features x text embeddings -> logits -> mask and confidence.

Logits follow the official network: per-pixel L2-normalised image features dotted with the
L2-normalised text embeddings, times 1/0.07, then x2 bilinear upsampling with
``align_corners=True`` to the network input size.  Masks are the argmax over labels.

Confidence is defined as the softmax probability of the winning label over the current
labels at the model's logit scale (1/0.07): 1/K for a pixel where every label is equally
likely, close to 1 where one label clearly wins.

The query similarity (free-text heat-map) is the same head without the logit scale: the
cosine of the per-pixel normalised features with one normalised text embedding, x2
upsampled and brought back to the source size exactly like the logits (values in [-1, 1]).

Back to the source image size: the logits of the valid (unpadded) region are resized
bilinearly (``align_corners=False``, the same pixel mapping as the input resize) to the
source size and then reduced; this is done in chunks of labels with an online softmax, so
memory stays bounded for many labels and large images while the result equals resizing
all logits at once.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from lseg_ros.core.model.decoder import upsample2x
from lseg_ros.core.model.variants import LOGIT_SCALE
from lseg_ros.core.preprocess import Geometry

#: Upper bound of elements of one chunk of resized logits.
CHUNK_ELEMENTS = 1 << 24


def text_weights(text_features: torch.Tensor) -> torch.Tensor:
    """Return L2-normalised text embeddings times the logit scale: (K, D)."""
    return F.normalize(text_features.float(), dim=-1) * LOGIT_SCALE


def normalize_features(image_features: torch.Tensor) -> torch.Tensor:
    """Return per-pixel L2-normalised (B, D, h, w) features, as a new float32 tensor.

    The values of ``F.normalize(image_features.float(), dim=1)``, dividing a float32 copy
    in place (one copy of the features instead of two).
    """
    x = image_features.to(torch.float32, copy=True)
    return x.div_(torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(1e-12))


def logits_at_input(image_features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) features and (K, D) weights -> (B, K, 2h, 2w) logits (official head).

    One image at a time: the float32 copy of a batch's features (B x 157 MB at 480x640)
    would otherwise stay in the GPU allocator's cache.
    """
    _, d, h, w = image_features.shape
    # (K, D) @ (D, h*w) per image: no transposed copy of the features (einsum makes one)
    low = torch.stack([(weights @ normalize_features(features).reshape(d, h * w))
                       .reshape(-1, h, w) for features in image_features.split(1)])
    return upsample2x(low)


def to_source(maps: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """(C, H', W') network-size maps -> (C, H, W) at the source size.

    Crops the padding and resizes bilinearly (``align_corners=False``, the pixel mapping of
    the input resize) when the source size differs from the resized one.
    """
    rh, rw = geometry.resized
    maps = maps[:, :rh, :rw]
    if geometry.source == (rh, rw):
        return maps
    return F.interpolate(maps.unsqueeze(0), size=geometry.source, mode='bilinear',
                         align_corners=False).squeeze(0)


def similarity_at_input(image_features: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) features and a (D,) L2-normalised query -> (B, 1, 2h, 2w) cosines."""
    return logits_at_input(image_features, query.float().reshape(1, -1))


def reduce_logits(logits: torch.Tensor, geometry: Geometry, confidence: bool = False
                  ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(1, K, H', W') network-size logits -> (H, W) label index and optional confidence.

    Crops the padding, resizes to the source size (when it differs) and takes the argmax,
    chunked over labels.  Returns int64 indices and float32 softmax confidence (or None).
    """
    logits = logits[0]
    k = logits.shape[0]
    size = geometry.source
    chunk = max(1, CHUNK_ELEMENTS // (size[0] * size[1]))
    best = index = total = None
    for start in range(0, k, chunk):
        part = to_source(logits[start:start + chunk], geometry)
        part_best, part_index = part.max(dim=0)
        if best is None:
            best, index = part_best, part_index
            if confidence:
                total = torch.exp(part - best).sum(dim=0)
            continue
        new_best = torch.maximum(best, part_best)
        if confidence:
            total = total * torch.exp(best - new_best) + torch.exp(part - new_best).sum(dim=0)
        index = torch.where(part_best > best, part_index + start, index)
        best = new_best
    return index, (total.reciprocal() if confidence else None)

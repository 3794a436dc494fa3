# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The output contract of the node and segment_bag, defined once (no ROS needed).

A :class:`~lseg_ros.core.pipeline.SegmentationResult` becomes output images as
``(array, encoding)`` pairs, ready for a sensor_msgs/Image of any message library:

  mask        mono8 (mono16 above 255 labels), label index per pixel
  confidence  mono8 (softmax probability of the winning label x 255, rounded) or 32FC1 (0..1)
  overlay     rgb8, or bgr8 when the input's channel order is BGR
  features    32FC<D>, L2-normalised image embeddings of the feature grid
  similarity  32FC1, cosine of the pixels' embeddings to the free-text query (-1..1)

A label set becomes a :class:`LabelAnnouncement`: the labels JSON text
(``{"labels": [...], "version": n, "embedding_dim": d}``), the L2-normalised raw text
embeddings (K x D float32) and the class list of a vision_msgs/LabelInfo.
"""

from dataclasses import dataclass
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lseg_ros.formats.image_codec import confidence_to_mono8, mask_encoding

#: Output image names, in publishing order.
MASK, CONFIDENCE, OVERLAY, FEATURES = 'mask', 'confidence', 'overlay', 'features'
SIMILARITY = 'similarity'
OUTPUT_NAMES = (MASK, CONFIDENCE, OVERLAY, FEATURES, SIMILARITY)
#: Encodings of the confidence image (mono8 is the default of the node and segment_bag).
CONFIDENCE_ENCODINGS = ('mono8', '32FC1')
DEFAULT_CONFIDENCE_ENCODING = 'mono8'

ImageOutput = Tuple[np.ndarray, str]


def mask_image(mask: np.ndarray) -> ImageOutput:
    """Return the mask image: mono8 for uint8 label indices, mono16 for uint16 ones."""
    return mask, mask_encoding(mask)


def confidence_image(confidence: np.ndarray,
                     encoding: str = DEFAULT_CONFIDENCE_ENCODING) -> ImageOutput:
    """Return the confidence image in ``encoding`` (mono8: x 255 rounded; 32FC1: as is)."""
    if encoding == '32FC1':
        return np.asarray(confidence, np.float32), '32FC1'
    if encoding == 'mono8':
        return confidence_to_mono8(confidence), 'mono8'
    raise ValueError(f'confidence encoding {encoding!r} is not one of '
                     f'{", ".join(CONFIDENCE_ENCODINGS)}')


def overlay_image(overlay: np.ndarray, bgr: bool = False) -> ImageOutput:
    """Return the RGB overlay in the input's channel order (bgr8 for BGR inputs)."""
    if bgr:
        return overlay[:, :, ::-1], 'bgr8'
    return overlay, 'rgb8'


def features_image(features: np.ndarray) -> ImageOutput:
    """Return the (h, w, D) feature grid as a 32FC<D> image."""
    return features, f'32FC{features.shape[2]}'


def similarity_image(similarity: np.ndarray) -> ImageOutput:
    """Return the query similarity map (cosines in [-1, 1]) as a 32FC1 image."""
    return np.asarray(similarity, np.float32), '32FC1'


def output_images(result, confidence_encoding: str = DEFAULT_CONFIDENCE_ENCODING,
                  bgr: bool = False) -> Dict[str, ImageOutput]:
    """Return the output images of ``result`` by name (:data:`OUTPUT_NAMES` order).

    The mask is always there; confidence, overlay, features and the query similarity when
    the request computed them.  ``bgr``: the input's channel order is BGR (the overlay then
    keeps it).
    """
    images = {MASK: mask_image(result.mask)}
    if result.confidence is not None:
        images[CONFIDENCE] = confidence_image(result.confidence, confidence_encoding)
    if result.overlay is not None:
        images[OVERLAY] = overlay_image(result.overlay, bgr)
    if result.features is not None:
        images[FEATURES] = features_image(result.features)
    if result.similarity is not None:
        images[SIMILARITY] = similarity_image(result.similarity)
    return images


def _numpy(array) -> np.ndarray:
    """Return a torch tensor or array-like as a float32 numpy array (on the CPU)."""
    if hasattr(array, 'detach'):
        array = array.detach().cpu().float().numpy()
    return np.asarray(array, np.float32)


def unit_embeddings(text_features) -> np.ndarray:
    """Return (K, D) text embeddings L2-normalised per label, float32."""
    text = _numpy(text_features)
    return text / np.linalg.norm(text, axis=1, keepdims=True)


def labels_json_text(labels: Sequence[str], version: int, dim: int) -> str:
    """Return the labels JSON text: ``{"labels": [...], "version": n, "embedding_dim": d}``."""
    return json.dumps({'labels': list(labels), 'version': int(version),
                       'embedding_dim': int(dim)})


@dataclass(frozen=True)
class LabelAnnouncement:
    """What announces a vocabulary: labels, version and L2-normalised raw text embeddings."""

    labels: Tuple[str, ...]
    version: int
    embeddings: np.ndarray               # (K, D) float32, L2-normalised per label

    @property
    def embedding_dim(self) -> int:
        """D, the length of one embedding."""
        return int(self.embeddings.shape[1])

    def json_text(self) -> str:
        """Return the labels JSON text (``~/labels``, ``/lseg/labels``)."""
        return labels_json_text(self.labels, self.version, self.embedding_dim)

    def class_map(self) -> List[Tuple[int, str]]:
        """Return the ``(class_id, class_name)`` list of a vision_msgs/LabelInfo."""
        return list(enumerate(self.labels))


def label_announcement(label_set, version: Optional[int] = None) -> LabelAnnouncement:
    """Return the announcement of ``label_set`` (with ``version`` instead of its own)."""
    return LabelAnnouncement(tuple(label_set.labels),
                             label_set.version if version is None else int(version),
                             unit_embeddings(label_set.text_features))

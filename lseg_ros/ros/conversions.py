# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""rclpy message <-> numpy conversions for the node (thin wrappers over image_codec).

The output images and the label announcement are defined once in
:mod:`lseg_ros.formats.outputs` (shared with segment_bag); this module only wraps them in
rclpy messages.
"""

from typing import Dict, Optional, Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, String

from lseg_ros.core.errors import ImageError
from lseg_ros.formats.cdr_image import CdrError, parse_image
from lseg_ros.formats.image_codec import (decode_compressed, decode_image,
                                          DEFAULT_MAX_INPUT_PIXELS, image_fields, source_is_bgr)
from lseg_ros.formats.outputs import ImageOutput, LabelAnnouncement, labels_json_text


class WireImage:
    """A sensor_msgs/Image read from the bytes of a raw subscription.

    Has the fields the node uses (``header``, ``height``, ``width``, ``encoding``,
    ``is_bigendian``, ``step``, ``data``); ``data`` is a read-only view of the received
    bytes, so the pixels are never converted to Python objects (see
    :mod:`lseg_ros.formats.cdr_image`).
    """

    __slots__ = ('header', 'height', 'width', 'encoding', 'is_bigendian', 'step', 'data')

    def __init__(self, header, height, width, encoding, is_bigendian, step, data):
        self.header, self.height, self.width = header, height, width
        self.encoding, self.is_bigendian, self.step, self.data = \
            encoding, is_bigendian, step, data


class UnreadableImage:
    """A received message that could not be read: converting it raises ``error``."""

    def __init__(self, error: Exception):
        self.error = error


def image_from_serialized(raw: bytes):
    """Return the Image of a raw subscription's bytes (a :class:`WireImage`).

    Bytes in another encoding than plain CDR are deserialized by rclpy (an ``Image``);
    bytes that neither can read give an :class:`UnreadableImage`.
    """
    try:
        cdr = parse_image(raw)
    except CdrError:
        from rclpy.serialization import deserialize_message
        try:
            return deserialize_message(raw, Image)
        except Exception as error:  # noqa: B902 - rclpy raises its own types
            return UnreadableImage(error)
    header = Header(frame_id=cdr.frame_id)
    header.stamp.sec, header.stamp.nanosec = cdr.stamp_sec, cdr.stamp_nanosec
    return WireImage(header, cdr.height, cdr.width, cdr.encoding, cdr.is_bigendian, cdr.step,
                     cdr.data)


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs Image (or :class:`WireImage`) or CompressedImage to RGB uint8.

    Images declaring more than ``max_pixels`` pixels (0: no limit) raise
    :class:`~lseg_ros.core.errors.ImageTooLargeError` before they are decoded.
    """
    if isinstance(msg, UnreadableImage):
        raise ImageError(f'unreadable Image message: {msg.error}')
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data, max_pixels=max_pixels)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        bool(msg.is_bigendian), max_pixels=max_pixels)


def is_bgr(msg) -> bool:
    """Whether the input's channel order is BGR (the overlay then keeps it)."""
    if isinstance(msg, CompressedImage):
        return source_is_bgr(msg.format, compressed=True)
    return source_is_bgr(msg.encoding)


def to_image_msg(array: np.ndarray, encoding: str, header) -> Image:
    """Build a sensor_msgs/Image with ``header`` from an array of ``encoding``."""
    encoding, height, width, step, data = image_fields(array, encoding)
    msg = Image(header=header, height=height, width=width, encoding=encoding,
                is_bigendian=0, step=step)
    msg.data = data
    return msg


def image_msgs(images: Dict[str, ImageOutput], header) -> Dict[str, Image]:
    """Build the output Images of :func:`lseg_ros.formats.outputs.output_images`, by name."""
    return {name: to_image_msg(array, encoding, header)
            for name, (array, encoding) in images.items()}


def labels_json(labels: Sequence[str], version: int, dim: int) -> String:
    """Build the ``~/labels`` message: ``{"labels": [...], "version": n, "embedding_dim": d}``."""
    return String(data=labels_json_text(labels, version, dim))


def embeddings_msg(weights: np.ndarray) -> Float32MultiArray:
    """(K, D) float32 -> Float32MultiArray with dims ``labels`` x ``embedding``."""
    k, d = weights.shape
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label='labels', size=k, stride=k * d),
                      MultiArrayDimension(label='embedding', size=d, stride=d)]
    msg.data = np.ascontiguousarray(weights, dtype=np.float32).ravel().tolist()
    return msg


def scaled_camera_info(info: CameraInfo, header, width: int, height: int,
                       ax: float = 1.0, bx: float = 0.0, ay: float = 1.0,
                       by: float = 0.0) -> CameraInfo:
    """Return the CameraInfo of an image grid whose index j maps to source pixel ``a * j + b``.

    Intrinsics transform as ``f' = f / a`` and ``c' = (c - b) / a`` (K and P); distortion,
    R and the binning/ROI fields are kept.  With the defaults it only replaces the header.
    """
    out = CameraInfo(header=header, height=height, width=width,
                     distortion_model=info.distortion_model, d=list(info.d), r=list(info.r),
                     binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi)
    k = list(info.k)
    p = list(info.p)
    k[0], k[2] = k[0] / ax, (k[2] - bx) / ax
    k[4], k[5] = k[4] / ay, (k[5] - by) / ay
    p[0], p[2], p[3] = p[0] / ax, (p[2] - bx * p[10]) / ax, p[3] / ax
    p[5], p[6], p[7] = p[5] / ay, (p[6] - by * p[10]) / ay, p[7] / ay
    out.k, out.p = k, p
    return out


def label_info_msg(labels: Sequence[str], header) -> Optional[object]:
    """vision_msgs/LabelInfo for ``labels`` (None where vision_msgs is not installed)."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo(header=header, threshold=0.0,
                     class_map=[VisionClass(class_id=i, class_name=name)
                                for i, name in enumerate(labels)])


def announcement_msgs(announcement: LabelAnnouncement, header):
    """Return ``(~/labels String, ~/text_embeddings, ~/label_info or None)`` messages."""
    return (String(data=announcement.json_text()), embeddings_msg(announcement.embeddings),
            label_info_msg([name for _, name in announcement.class_map()], header))

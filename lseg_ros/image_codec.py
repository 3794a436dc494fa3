# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/Image and CompressedImage payloads <-> numpy, without ROS imports.

Works on the message *fields* (encoding, height, width, step, data, is_bigendian), so the
node (rclpy messages) and the bag tools (rosbags messages) share it.  Decoding gives RGB
uint8; every failure is an :class:`~lseg_ros.core.errors.ImageError` (or its subclass
:class:`~lseg_ros.core.errors.UnsupportedEncodingError`) that says what is wrong.

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 and rgb16/bgr16 (16-bit values
scaled by 1/257 to 8 bits), yuv422 (UYVY), yuv422_yuy2 / yuyv (YUYV), uyvy, and the
8-bit bayer patterns (bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8, demosaiced by
OpenCV).  Compressed images: whatever OpenCV decodes (jpeg, png, ...).
"""

from typing import Tuple

import cv2
import numpy as np

from lseg_ros.core.errors import ImageError, UnsupportedEncodingError

# encoding -> (channels, bytes per channel)
_LAYOUT = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1), 'mono8': (1, 1),
    '8uc1': (1, 1), '8uc3': (3, 1), 'mono16': (1, 2), '16uc1': (1, 2),
    'rgb16': (3, 2), 'bgr16': (3, 2),
    'yuv422': (2, 1), 'uyvy': (2, 1), 'yuv422_yuy2': (2, 1), 'yuyv': (2, 1),
    'bayer_rggb8': (1, 1), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 1), 'bayer_grbg8': (1, 1),
}
# OpenCV names Bayer patterns after the second row; these give RGB output.
_TO_RGB = {
    'bgr8': cv2.COLOR_BGR2RGB, '8uc3': cv2.COLOR_BGR2RGB, 'bgr16': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB, 'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB, '8uc1': cv2.COLOR_GRAY2RGB, 'mono16': cv2.COLOR_GRAY2RGB,
    '16uc1': cv2.COLOR_GRAY2RGB,
    'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUYV, 'yuyv': cv2.COLOR_YUV2RGB_YUYV,
    'bayer_rggb8': cv2.COLOR_BayerBG2RGB, 'bayer_bggr8': cv2.COLOR_BayerRG2RGB,
    'bayer_gbrg8': cv2.COLOR_BayerGR2RGB, 'bayer_grbg8': cv2.COLOR_BayerGB2RGB,
}
SUPPORTED_ENCODINGS = tuple(sorted(_LAYOUT))


def decode_image(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: bool = False) -> np.ndarray:
    """Return the (H, W, 3) uint8 RGB image of a sensor_msgs/Image payload."""
    key = (encoding or '').strip().lower()
    if key not in _LAYOUT:
        raise UnsupportedEncodingError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(_LAYOUT)}')
    channels, depth = _LAYOUT[key]
    if height <= 0 or width <= 0:
        raise ImageError(f'image has no pixels ({width}x{height})')
    row = width * channels * depth
    if step < row:
        raise ImageError(f'step {step} is smaller than width x pixel size = {row} '
                         f'({width} px of {encoding})')
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else \
        data.view(np.uint8).reshape(-1)
    if buffer.size != step * height:
        raise ImageError(f'data has {buffer.size} bytes, expected step x height = '
                         f'{step} x {height} = {step * height}')
    rows = buffer.reshape(height, step)[:, :row]
    if depth == 2:
        dtype = np.dtype('>u2' if is_bigendian else '<u2')
        wide = rows.copy().view(dtype).reshape(height, width, channels)
        pixels = (wide.astype(np.uint32) // 257).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)
    if key in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv') and width % 2:
        raise ImageError(f'{encoding} needs an even width, got {width}')
    code = _TO_RGB.get(key)
    if code is None:                          # rgb8 / rgb16: already RGB
        return np.ascontiguousarray(pixels)
    if channels == 1:
        pixels = pixels.reshape(height, width)
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def source_is_bgr(encoding: str, compressed: bool = False) -> bool:
    """Whether an image's original channel order is BGR (outputs such as overlays keep it).

    Raw images: the encoding starts with ``bgr``.  Compressed images name the original
    encoding in front of a ``;`` (image_transport's ``"bgr8; jpeg compressed bgr8"``); a bare
    ``"jpeg"``/``"png"`` is taken as BGR, what cv_bridge and OpenCV decode them to.
    """
    key = (encoding or '').strip().lower()
    if compressed:
        if ';' not in key:
            return True
        key = key.split(';', 1)[0].strip()
    return key.startswith('bgr')


def decode_compressed(fmt: str, data) -> np.ndarray:
    """Return the RGB uint8 image of a sensor_msgs/CompressedImage payload (jpeg, png, ...)."""
    if 'compresseddepth' in (fmt or '').lower().replace(' ', ''):
        raise UnsupportedEncodingError(f'compressed depth images are not supported ({fmt!r})')
    buffer = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) \
        else data.view(np.uint8).reshape(-1)
    if buffer.size == 0:
        raise ImageError('compressed image has no data')
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f'cannot decode compressed image (format {fmt!r}, {buffer.size} bytes)')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> bytes:
    """Encode an RGB image as jpeg or png bytes (for CompressedImage messages)."""
    ext = '.png' if fmt.lower() == 'png' else '.jpg'
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == '.jpg' else []
    ok, buffer = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f'cannot encode image as {fmt}')
    return buffer.tobytes()


def image_fields(array: np.ndarray, encoding: str) -> Tuple[str, int, int, int, bytes]:
    """Return ``(encoding, height, width, step, data)`` of an array for a sensor_msgs/Image.

    ``array`` is (H, W) or (H, W, C) of the dtype ``encoding`` implies (uint8, uint16 or
    float32, little-endian as on every ROS 2 platform).
    """
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return encoding, height, width, array.strides[0], array.tobytes()


def mask_encoding(mask: np.ndarray) -> str:
    """``mono8`` for uint8 label masks, ``mono16`` for uint16 ones."""
    return 'mono8' if mask.dtype == np.uint8 else 'mono16'


def confidence_to_mono8(confidence: np.ndarray) -> np.ndarray:
    """Map a [0, 1] float confidence to 0..255 uint8 (rounded)."""
    return np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8)

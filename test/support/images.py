# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Small image files whose headers declare huge sizes (decompression bombs)."""

import struct
import zlib

import numpy as np

from lseg_ros.formats.image_codec import encode_compressed


def jpeg_declaring(width, height):
    """Return a small real JPEG (~600 bytes) whose frame header (SOF0) declares width x height."""
    import cv2
    data = bytearray(cv2.imencode('.jpg', np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


def png_declaring(width, height):
    """Return a small real PNG whose IHDR declares width x height (with a valid CRC)."""
    data = bytearray(encode_compressed(np.zeros((16, 16, 3), np.uint8), 'png'))
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    return bytes(data)

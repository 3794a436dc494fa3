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
OpenCV).  Compressed images: JPEG, PNG, BMP, WebP and TIFF (decoded by OpenCV).

Size limit (decompression bombs): every decoder takes ``max_pixels`` (default
:data:`DEFAULT_MAX_INPUT_PIXELS`; 0 = no limit) and refuses an image that *declares* more
pixels (width x height) with :class:`~lseg_ros.core.errors.ImageTooLargeError`, before
anything of that size is allocated:

* raw images: ``width x height`` of the message fields, checked first;
* compressed images: the size in the header (PNG IHDR, JPEG frame header SOF0..SOF15, BMP
  info header, WebP VP8/VP8L/VP8X header, TIFF first IFD), read by :func:`declared_size`
  without decoding.  OpenCV picks its decoder by the same signatures, so the size read is
  the size it would allocate.  A format whose size cannot be read this way (JPEG 2000,
  OpenEXR, GIF, PNM, BigTIFF, ...) is refused while a limit is set: its decoder could
  allocate any size.  A header that is cut short or malformed is refused as corrupt.

Why not ``rosbags-image`` (checked against 0.10.4): its conversions give the same pixels as
this module for every encoding above when rows are unpadded, but it is not right for all
inputs the node takes: it ignores ``step``, so rows with padding (``step`` > width x pixel
size, as drivers with aligned rows send) come out skewed; it has no size limit, and its
CompressedImage path calls ``cv2.imdecode`` on the bytes without reading the header first,
so the decompression-bomb protection above would be lost; a corrupt CompressedImage is an
``AssertionError`` (and, under ``python -O``, no error at all) instead of a clear
:class:`~lseg_ros.core.errors.ImageError`.  It also takes whole messages rather than
fields.  So this module keeps its own decoders.
"""

from pathlib import Path
import struct
from typing import Optional, Tuple

import cv2
import numpy as np

from lseg_ros.core.errors import ImageError, ImageTooLargeError, UnsupportedEncodingError

#: Default largest input image, in pixels (width x height): 4096 x 4096 = 16,777,216, which
#: admits 4K UHD (3840 x 2160) and DCI 4K (4096 x 2160) frames.  0 means no limit.
DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
_JPEG_MAX_STEPS = 10000         # markers and skipped runs before giving up on a JPEG header
_LIMIT_HINT = ('raise the limit with the node parameter max_input_pixels or the tool option '
               '--max-input-pixels (0: no limit)')

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


def check_pixels(width: int, height: int, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                 what: str = 'image') -> None:
    """Raise :class:`ImageTooLargeError` when ``width x height`` exceeds ``max_pixels``.

    ``max_pixels`` 0 means no limit; a negative value raises :class:`ValueError`.
    """
    max_pixels = int(max_pixels or 0)
    if max_pixels < 0:
        raise ValueError(f'max_pixels must be 0 (no limit) or more, got {max_pixels}')
    pixels = int(width) * int(height)
    if max_pixels and pixels > max_pixels:
        raise ImageTooLargeError(
            f'{what} declares {width}x{height} = {pixels:,} pixels, more than the limit of '
            f'{max_pixels:,} pixels; refused before decoding ({_LIMIT_HINT})')


def decode_image(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: bool = False, *,
                 max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Return the (H, W, 3) uint8 RGB image of a sensor_msgs/Image payload.

    An image whose ``width x height`` exceeds ``max_pixels`` (0: no limit) is refused with
    :class:`ImageTooLargeError` before anything is allocated.
    """
    key = (encoding or '').strip().lower()
    if key not in _LAYOUT:
        raise UnsupportedEncodingError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(_LAYOUT)}')
    channels, depth = _LAYOUT[key]
    if height <= 0 or width <= 0:
        raise ImageError(f'image has no pixels ({width}x{height})')
    check_pixels(width, height, max_pixels, f'{encoding} image')
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


def _u8(data) -> np.ndarray:
    """Return ``data`` (bytes-like or array) as a flat uint8 array, without a copy if possible."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, np.uint8)
    except (TypeError, ValueError):                 # a list of ints (rclpy array fields)
        return np.frombuffer(bytes(data), np.uint8)


def _png_size(view) -> Tuple[int, int]:
    if len(view) < 24 or bytes(view[12:16]) != b'IHDR':
        raise ImageError('corrupt PNG: it does not start with its IHDR header')
    width, height = struct.unpack_from('>II', view, 16)
    return width, height


def _jpeg_size(view) -> Tuple[int, int]:
    """Walk the JPEG markers to the first frame header (SOF0..SOF15 but DHT, JPG and DAC)."""
    data = bytes(view)
    size = len(data)
    i = 2
    for _ in range(_JPEG_MAX_STEPS):
        i = data.find(b'\xff', i)           # bytes between markers: the decoder skips them
        if i < 0:
            break
        while i < size and data[i] == 0xFF:  # fill bytes
            i += 1
        if i + 3 > size:
            break
        marker = data[i]
        i += 1
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:      # no segment: skip
            continue
        if marker in (0xD9, 0xDA):           # end of image / start of scan before a frame
            break
        (length,) = struct.unpack_from('>H', data, i)
        if length < 2:
            raise ImageError(f'corrupt JPEG: segment 0xFF{marker:02X} has length {length}')
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 7 > size:
                break
            height, width = struct.unpack_from('>HH', data, i + 3)
            return width, height
        i += length
    raise ImageError('corrupt or truncated JPEG: no frame header (SOF) before its image data')


def _bmp_size(view) -> Tuple[int, int]:
    if len(view) < 26:
        raise ImageError('corrupt BMP: header cut short')
    (header,) = struct.unpack_from('<I', view, 14)
    if header == 12:                                    # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from('<HH', view, 18)
    else:
        width, height = struct.unpack_from('<ii', view, 18)
    return abs(width), abs(height)


def _webp_size(view) -> Tuple[int, int]:
    kind = bytes(view[12:16])
    if kind == b'VP8 ' and len(view) >= 30:
        width, height = struct.unpack_from('<HH', view, 26)
        return width & 0x3FFF, height & 0x3FFF
    if kind == b'VP8L' and len(view) >= 25:
        (bits,) = struct.unpack_from('<I', view, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b'VP8X' and len(view) >= 30:
        width = view[24] | view[25] << 8 | view[26] << 16
        height = view[27] | view[28] << 8 | view[29] << 16
        return width + 1, height + 1
    raise ImageError('corrupt WebP: no VP8, VP8L or VP8X header')


def _tiff_size(view) -> Tuple[int, int]:
    order = '<' if bytes(view[:2]) == b'II' else '>'
    try:
        (offset,) = struct.unpack_from(order + 'I', view, 4)
        (count,) = struct.unpack_from(order + 'H', view, offset)
        found = {}
        for entry in range(count):
            tag, kind = struct.unpack_from(order + 'HH', view, offset + 2 + 12 * entry)
            if tag in (256, 257):
                code = 'H' if kind == 3 else 'I'
                (found[tag],) = struct.unpack_from(order + code, view, offset + 10 + 12 * entry)
    except struct.error:
        raise ImageError('corrupt TIFF: its first directory runs past the data') from None
    if 256 not in found or 257 not in found:
        raise ImageError('corrupt TIFF: no ImageWidth/ImageLength in its first directory')
    return found[256], found[257]


def declared_size(data) -> Optional[Tuple[str, int, int]]:
    """Return ``(format, width, height)`` declared in a compressed image's header.

    Reads only the header (no decoding, no allocation of the image): PNG, JPEG, BMP, WebP
    and TIFF, recognised by the signatures OpenCV uses to pick its decoder.  Returns None
    for any other format; raises :class:`ImageError` for a malformed or truncated header.
    """
    view = memoryview(_u8(data))
    head = bytes(view[:16])
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return ('PNG',) + _png_size(view)
    if head.startswith(b'\xff\xd8\xff'):
        return ('JPEG',) + _jpeg_size(view)
    if head.startswith(b'BM'):
        return ('BMP',) + _bmp_size(view)
    if head.startswith(b'RIFF') and head[8:12] == b'WEBP':
        return ('WebP',) + _webp_size(view)
    if head.startswith((b'II*\x00', b'MM\x00*')):
        return ('TIFF',) + _tiff_size(view)
    return None


def _decode_bytes(buffer: np.ndarray, max_pixels: int, what: str) -> np.ndarray:
    """Check the declared size of an encoded image, then decode it to RGB uint8."""
    if buffer.size == 0:
        raise ImageError(f'{what} has no data')
    if max_pixels:
        size = declared_size(buffer)
        if size is None:
            raise ImageError(
                f'{what} is not JPEG, PNG, BMP, WebP or TIFF: its size cannot be checked '
                f'before decoding, so it is refused while a pixel limit is set ({_LIMIT_HINT})')
        check_pixels(size[1], size[2], max_pixels, f'{what} ({size[0]})')
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f'cannot decode {what} ({buffer.size} bytes; corrupt or unsupported)')
    check_pixels(image.shape[1], image.shape[0], max_pixels, f'decoded {what}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_compressed(fmt: str, data, *,
                      max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Return the RGB uint8 image of a sensor_msgs/CompressedImage payload (jpeg, png, ...).

    The size declared in the header is checked against ``max_pixels`` (0: no limit) before
    decoding (see the module docstring); a larger image raises :class:`ImageTooLargeError`.
    """
    if 'compresseddepth' in (fmt or '').lower().replace(' ', ''):
        raise UnsupportedEncodingError(f'compressed depth images are not supported ({fmt!r})')
    return _decode_bytes(_u8(data), max_pixels, f'compressed image (format {fmt!r})')


def read_image_file(path: str, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Read an image file (png, jpg, ...) as RGB uint8 with the same size check as a message.

    16-bit files are converted to 8 bits (as ``cv2.imread`` does); raises
    :class:`ImageError` when the file is missing, unreadable, too large or not an image.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise ImageError(f'image not found: {path}') from None
    except OSError as error:
        raise ImageError(f'cannot read image {path}: {error}') from None
    return _decode_bytes(data, max_pixels, f'image {path}')


#: File suffixes of the image formats OpenCV decodes here (folders of images).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')


def read_image_folder(folder: str, count: int,
                      max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> list:
    """Return up to ``count`` RGB images of ``folder`` (sorted names); ImageError if none."""
    path = Path(folder)
    if not path.is_dir():
        raise ImageError(f'{folder}: not a folder of images')
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f'{folder}: no images ({", ".join(IMAGE_SUFFIXES)})')
    return [read_image_file(str(p), max_pixels) for p in files[:max(1, count)]]


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

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Image payload decoding: every encoding gives the right colours; bad payloads are refused.

Decompression bombs (images declaring more pixels than the limit) are refused from their
headers, before anything of their size is allocated.
"""

import subprocess
import sys

import numpy as np
import pytest

from lseg_ros.core.errors import ImageError, ImageTooLargeError, UnsupportedEncodingError
from lseg_ros.formats.image_codec import (declared_size, decode_compressed, decode_image,
                                          DEFAULT_MAX_INPUT_PIXELS, encode_compressed,
                                          source_is_bgr)
from lseg_ros.ros.launch_args import launch_overrides
from support.images import jpeg_declaring, png_declaring

H, W = 6, 8
RED, GREEN = (200, 30, 40), (20, 180, 60)


def two_colour_rgb():
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :W // 2] = RED
    rgb[:, W // 2:] = GREEN
    return rgb


def payload(rgb, encoding):
    """Encode an RGB image the way a camera driver would for ``encoding``."""
    if encoding == 'rgb8':
        return rgb
    if encoding == 'bgr8':
        return rgb[:, :, ::-1]
    if encoding == 'rgba8':
        return np.dstack([rgb, np.full((H, W), 255, np.uint8)])
    if encoding == 'bgra8':
        return np.dstack([rgb[:, :, ::-1], np.full((H, W), 255, np.uint8)])
    if encoding == 'rgb16':
        return rgb.astype(np.uint16) * 257
    if encoding == 'bgr16':
        return rgb[:, :, ::-1].astype(np.uint16) * 257
    if encoding in ('yuv422_yuy2', 'yuv422'):
        r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))   # BT.601, video range
        y = np.rint(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)
        u = np.rint(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255)
        v = np.rint(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255)
        out = np.zeros((H, W, 2), np.uint8)
        if encoding == 'yuv422_yuy2':                # Y0 U Y1 V
            out[..., 0] = y
            out[:, 0::2, 1], out[:, 1::2, 1] = u[:, 0::2], v[:, 0::2]
        else:                                        # UYVY: U Y0 V Y1
            out[..., 1] = y
            out[:, 0::2, 0], out[:, 1::2, 0] = u[:, 0::2], v[:, 0::2]
        return out
    if encoding == 'bayer_rggb8':
        bayer = np.zeros((H, W), np.uint8)
        bayer[0::2, 0::2] = rgb[0::2, 0::2, 0]
        bayer[0::2, 1::2] = rgb[0::2, 1::2, 1]
        bayer[1::2, 0::2] = rgb[1::2, 0::2, 1]
        bayer[1::2, 1::2] = rgb[1::2, 1::2, 2]
        return bayer
    raise AssertionError(encoding)


@pytest.mark.parametrize('encoding, tolerance', [
    ('rgb8', 0), ('bgr8', 0), ('rgba8', 0), ('bgra8', 0), ('rgb16', 0), ('bgr16', 0),
    ('yuv422', 6), ('yuv422_yuy2', 6), ('bayer_rggb8', 40)])
def test_colours_survive_each_encoding(encoding, tolerance):
    rgb = two_colour_rgb()
    data = np.ascontiguousarray(payload(rgb, encoding))
    out = decode_image(encoding, H, W, data.strides[0], data.tobytes())
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    # compare away from the colour edge (demosaicing and chroma subsampling blur it)
    for column, colour in ((1, RED), (W - 2, GREEN)):
        assert np.abs(out[2:4, column].astype(int) - colour).max() <= tolerance, (encoding, out)


def test_mono_is_grey_and_16_bit_is_scaled():
    data = np.full((H, W), 65535, np.uint16)
    out = decode_image('mono16', H, W, W * 2, data.tobytes())
    assert (out == 255).all()
    big = data.astype('>u2')
    assert (decode_image('mono16', H, W, W * 2, big.tobytes(), is_bigendian=True) == 255).all()


def test_row_padding_is_ignored():
    rgb = two_colour_rgb()
    padded = np.zeros((H, W * 3 + 8), np.uint8)
    padded[:, :W * 3] = rgb.reshape(H, -1)
    assert (decode_image('rgb8', H, W, W * 3 + 8, padded.tobytes()) == rgb).all()


@pytest.mark.parametrize('encoding, step, size, error', [
    ('32FC3', 96, 6 * 96, UnsupportedEncodingError), ('rgb8', 10, 60, ImageError),
    ('rgb8', 24, 100, ImageError), ('rgb8', 0, 0, ImageError)])
def test_bad_payloads_are_refused(encoding, step, size, error):
    with pytest.raises(error):
        decode_image(encoding, H if size else 0, W, step, bytes(size))


def test_compressed_round_trip_and_corruption():
    rgb = two_colour_rgb()
    assert (decode_compressed('png', encode_compressed(rgb, 'png')) == rgb).all()
    with pytest.raises(ImageError):
        decode_compressed('jpeg', b'\xff\xd8\xff' + bytes(50))
    with pytest.raises(UnsupportedEncodingError):
        decode_compressed('16UC1; compressedDepth png', b'x')


def test_bgr_source_rule():
    assert source_is_bgr('bgr8') and not source_is_bgr('rgb8')
    assert source_is_bgr('jpeg', compressed=True)
    assert not source_is_bgr('rgb8; jpeg compressed bgr8', compressed=True)


def test_launch_overrides_keep_file_values_unless_given():
    assert launch_overrides({'checkpoint': '', 'engine': '', 'backend': '',
                             'use_sim_time': ''}) == {}
    assert launch_overrides({'checkpoint': '/m.ckpt', 'use_sim_time': 'True'}) == {
        'checkpoint': '/m.ckpt', 'use_sim_time': True}
    assert launch_overrides({'use_sim_time': 'false'}) == {'use_sim_time': False}
    with pytest.raises(ValueError):
        launch_overrides({'use_sim_time': 'maybe'})


# ------------------------------------------------------------------ decompression bombs


BOMB_CHECK = '''
import resource, sys
import numpy as np
from lseg_ros.core.errors import ImageTooLargeError
from lseg_ros.formats.image_codec import decode_compressed, decode_image
kind, path = sys.argv[1], sys.argv[2]
data = open(path, 'rb').read()
# the address space may grow by 256 MiB at most from here: any image-sized allocation fails
with open('/proc/self/status') as status:
    vm = [int(line.split()[1]) * 1024 for line in status if line.startswith('VmSize')][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
try:
    if kind == 'raw':
        decode_image('rgb8', 30000, 30000, 90000, data)
    else:
        decode_compressed(kind, data)
except ImageTooLargeError as error:
    print('refused:', error)
except BaseException as error:
    print('other:', type(error).__name__, error)
else:
    print('decoded')
print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


@pytest.mark.parametrize('kind, size', [('jpeg', 30000), ('png', 12000), ('raw', 30000)])
def test_decompression_bombs_are_refused_before_allocation(kind, size, tmp_path):
    data = {'jpeg': lambda: jpeg_declaring(size, size), 'png': lambda: png_declaring(size, size),
            'raw': lambda: bytes(1000)}[kind]()
    assert kind == 'raw' or len(data) < 1000
    path = tmp_path / 'bomb'
    path.write_bytes(data)
    out = subprocess.run([sys.executable, '-c', BOMB_CHECK, kind, str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('refused:'), out.stdout + out.stderr
    assert f'{size}x{size}' in out.stdout and f'{DEFAULT_MAX_INPUT_PIXELS:,}' in out.stdout
    assert 'max_input_pixels' in out.stdout and '--max-input-pixels' in out.stdout


def test_declared_sizes_and_limits():
    import cv2
    image = np.zeros((37, 53, 3), np.uint8)
    for ext, name in (('.jpg', 'JPEG'), ('.png', 'PNG'), ('.bmp', 'BMP'), ('.webp', 'WebP'),
                      ('.tiff', 'TIFF')):
        data = cv2.imencode(ext, image)[1]
        assert declared_size(data) == (name, 53, 37), ext
        assert decode_compressed('x', data, max_pixels=53 * 37).shape == (37, 53, 3)
        with pytest.raises(ImageTooLargeError, match='53x37 = 1,961 pixels'):
            decode_compressed('x', data, max_pixels=53 * 37 - 1)
    assert declared_size(jpeg_declaring(30000, 20000)) == ('JPEG', 30000, 20000)
    assert declared_size(png_declaring(12000, 11000)) == ('PNG', 12000, 11000)
    # a normal JPEG/PNG still decodes; 0 is no limit
    assert decode_compressed('jpeg', encode_compressed(two_colour_rgb())).shape == (H, W, 3)
    assert decode_compressed('png', encode_compressed(two_colour_rgb(), 'png'),
                             max_pixels=0).shape == (H, W, 3)
    # a format whose size cannot be read is refused while a limit is set, decoded without one
    ppm = cv2.imencode('.ppm', image)[1]
    assert declared_size(ppm) is None
    with pytest.raises(ImageError, match='cannot be checked before decoding'):
        decode_compressed('ppm', ppm)
    assert decode_compressed('ppm', ppm, max_pixels=0).shape == (37, 53, 3)
    # raw images: checked before anything else (here the data is far too short)
    with pytest.raises(ImageTooLargeError, match='30000x30000'):
        decode_image('rgb8', 30000, 30000, 90000, bytes(10))
    assert decode_image('rgb8', H, W, W * 3, bytes(H * W * 3), max_pixels=H * W).shape == \
        (H, W, 3)
    with pytest.raises(ImageTooLargeError):
        decode_image('rgb8', H, W, W * 3, bytes(H * W * 3), max_pixels=H * W - 1)
    # truncated or garbage headers are refused as corrupt
    for data in (b'\x89PNG\r\n\x1a\n\x00', b'\xff\xd8\xff\xe0\x00\x10JFIF', b'BM\x00',
                 b'RIFF\x00\x00\x00\x00WEBPVP8 ', b'II*\x00\xff\xff\x00\x00'):
        with pytest.raises(ImageError, match='corrupt'):
            decode_compressed('x', data)


def test_image_files_are_checked_before_decoding(tmp_path):
    from lseg_ros.formats.image_codec import read_image_file
    path = tmp_path / 'bomb.jpg'
    path.write_bytes(jpeg_declaring(30000, 30000))
    with pytest.raises(ImageTooLargeError, match=f'image {path} \\(JPEG\\) declares 30000x30000'):
        read_image_file(str(path))
    good = tmp_path / 'good.png'
    good.write_bytes(encode_compressed(two_colour_rgb(), 'png'))
    assert (read_image_file(str(good)) == two_colour_rgb()).all()

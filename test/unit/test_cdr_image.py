# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Serialized sensor_msgs/Image read without rclpy's conversion (raw subscriptions)."""

import struct
import time

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from lseg_ros.core.errors import ImageError
from lseg_ros.formats.cdr_image import CdrError, parse_image
from lseg_ros.ros.conversions import (image_from_serialized, image_to_rgb, UnreadableImage,
                                      WireImage)


def image(frame_id='cam', encoding='rgb8', height=3, width=5, pad=0, bigendian=0, sec=7,
          nanosec=9):
    channels = {'rgb8': 3, 'mono8': 1, 'mono16': 2, 'bgra8': 4}[encoding]
    step = width * channels + pad
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=bigendian)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.data = (np.arange(step * height) % 251).astype(np.uint8).tobytes()
    return msg


CASES = [{'frame_id': ''}, {'frame_id': 'a'}, {'frame_id': 'ab'}, {'frame_id': 'abc'},
         {'frame_id': 'abcd'}, {'frame_id': 'camera_front/optical'},
         {'frame_id': 'kamera_ü'}, {'encoding': 'mono8', 'width': 3},
         {'encoding': 'mono16', 'bigendian': 1}, {'encoding': 'bgra8', 'pad': 3},
         {'height': 0, 'width': 0}, {'sec': -5, 'nanosec': 999}]


@pytest.mark.parametrize('case', CASES, ids=[str(c) for c in CASES])
def test_parse_image_reads_what_rclpy_reads(case):
    msg = image(**case)
    raw = serialize_message(msg)
    cdr = parse_image(raw)
    ref = deserialize_message(raw, Image)
    assert (cdr.stamp_sec, cdr.stamp_nanosec) == (ref.header.stamp.sec, ref.header.stamp.nanosec)
    assert cdr.frame_id == ref.header.frame_id and cdr.encoding == ref.encoding
    assert (cdr.height, cdr.width, cdr.step, cdr.is_bigendian) == \
        (ref.height, ref.width, ref.step, ref.is_bigendian)
    assert bytes(cdr.data) == bytes(ref.data)
    assert cdr.data.readonly
    wire = image_from_serialized(raw)
    assert isinstance(wire, WireImage) and wire.header == ref.header
    if msg.height:
        assert np.array_equal(image_to_rgb(wire), image_to_rgb(ref))


def big_endian(msg: Image) -> bytes:
    """Return the message in big-endian CDR (what a big-endian host writes)."""
    out = bytearray(b'\x00\x00\x00\x00')

    def align(n):
        while (len(out) - 4) % n:
            out.append(0)

    def string(text):
        data = text.encode() + b'\x00'
        align(4)
        out.extend(struct.pack('>I', len(data)) + data)

    out.extend(struct.pack('>iI', msg.header.stamp.sec, msg.header.stamp.nanosec))
    string(msg.header.frame_id)
    align(4)
    out.extend(struct.pack('>II', msg.height, msg.width))
    string(msg.encoding)
    out.append(msg.is_bigendian)
    align(4)
    out.extend(struct.pack('>I', msg.step))
    out.extend(struct.pack('>I', len(msg.data)) + bytes(msg.data))
    return bytes(out)


def test_parse_image_reads_big_endian_cdr():
    msg = image(frame_id='xy')
    cdr = parse_image(big_endian(msg))
    assert (cdr.stamp_sec, cdr.frame_id, cdr.height, cdr.width, cdr.step) == (7, 'xy', 3, 5, 15)
    assert bytes(cdr.data) == bytes(msg.data)


def test_bad_bytes_are_refused_and_the_frame_counts_as_unreadable():
    raw = serialize_message(image())
    for bad in (b'', b'\x00\x01', raw[:30], raw[:-1], b'\x00\x03' + raw[2:]):
        with pytest.raises(CdrError):
            parse_image(bad)
    assert isinstance(image_from_serialized(raw[:-1]), UnreadableImage)
    with pytest.raises(ImageError, match='unreadable Image message'):
        image_to_rgb(image_from_serialized(raw[:-1]))
    # a string without its NUL
    broken = bytearray(raw)
    broken[4 + 8 + 4 + 3] = ord('x')             # frame_id 'cam' + NUL: the NUL
    with pytest.raises(CdrError, match='NUL'):
        parse_image(bytes(broken))


@pytest.mark.ros
def test_a_cameras_raw_subscription_puts_wire_images_in_its_slot():
    """The node's camera subscribes to raw Images: its slot gets WireImage, not an Image."""
    import rclpy
    import rclpy.executors
    from rclpy.qos import qos_profile_sensor_data

    from lseg_ros.ros.cameras import Camera
    from lseg_ros.ros.frame_slot import LatestSlot

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('raw_camera_test', context=context)
    try:
        camera = Camera(node, '', LatestSlot())
        camera.subscribe(qos_profile_sensor_data, compressed=False)
        assert camera.subscriptions[0].raw
        publisher = node.create_publisher(Image, 'image', qos_profile_sensor_data)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        msg = image(frame_id='raw_cam', height=4, width=6)
        deadline = time.monotonic() + 20
        while not camera.slot.ready and time.monotonic() < deadline:
            publisher.publish(msg)
            executor.spin_once(timeout_sec=0.1)
        got, _ = camera.slot.pop_waiting()
        assert isinstance(got, WireImage) and got.header == msg.header
        assert np.array_equal(image_to_rgb(got), image_to_rgb(msg))
        camera.unsubscribe()
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)

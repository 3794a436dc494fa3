# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One output contract: the node's and segment_bag's messages for a frame agree.

formats/outputs.py is checked without ROS; then the node's rclpy messages
(ros/conversions.py) and segment_bag's rosbags messages (formats/bag.py) of one frame are
compared field by field.
"""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from lseg_ros.formats.outputs import (confidence_image, label_announcement, output_images,
                                      unit_embeddings)

LABELS = 'dog, grass, road, sky'


def fake_result(labels=4, confidence=True, overlay=True, features=True, similarity=False):
    rng = np.random.default_rng(0)
    dtype = np.uint8 if labels <= 255 else np.uint16
    return SimpleNamespace(
        mask=rng.integers(0, labels, (6, 8)).astype(dtype),
        confidence=rng.random((6, 8), dtype=np.float32) if confidence else None,
        overlay=rng.integers(0, 256, (6, 8, 3)).astype(np.uint8) if overlay else None,
        similarity=rng.uniform(-1, 1, (6, 8)).astype(np.float32) if similarity else None,
        features=rng.random((3, 4, 16), dtype=np.float32) if features else None)


# ------------------------------------------------------------------ the contract, no ROS
def test_outputs_module_imports_without_ros():
    code = ('import sys\n'
            "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'rosbags'):\n"
            '    sys.modules[name] = None\n'
            'import lseg_ros.formats.outputs\n'
            "print('ok')\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr


def test_output_images_encodings():
    result = fake_result()
    images = output_images(result)
    assert list(images) == ['mask', 'confidence', 'overlay', 'features']
    assert [encoding for _, encoding in images.values()] == ['mono8', 'mono8', 'rgb8',
                                                             '32FC16']
    np.testing.assert_array_equal(images['mask'][0], result.mask)
    np.testing.assert_array_equal(images['confidence'][0],
                                  np.rint(result.confidence * 255).astype(np.uint8))
    np.testing.assert_array_equal(images['overlay'][0], result.overlay)
    np.testing.assert_array_equal(images['features'][0], result.features)
    # 32FC1 confidence, BGR input
    images = output_images(result, '32FC1', bgr=True)
    assert images['confidence'][1] == '32FC1' and images['confidence'][0].dtype == np.float32
    np.testing.assert_array_equal(images['confidence'][0], result.confidence)
    assert images['overlay'][1] == 'bgr8'
    np.testing.assert_array_equal(images['overlay'][0], result.overlay[:, :, ::-1])
    # only what was computed; mono16 above 255 labels
    images = output_images(fake_result(300, confidence=False, overlay=False, features=False))
    assert list(images) == ['mask'] and images['mask'][1] == 'mono16'
    with pytest.raises(ValueError, match='32FC1'):
        confidence_image(result.confidence, 'mono16')
    # the query similarity map: 32FC1 cosines, as computed
    result = fake_result(similarity=True)
    images = output_images(result)
    assert list(images)[-1] == 'similarity' and images['similarity'][1] == '32FC1'
    np.testing.assert_array_equal(images['similarity'][0], result.similarity)


def test_label_announcement_uses_the_raw_text_embeddings():
    rng = np.random.default_rng(1)
    text = rng.normal(size=(3, 16)).astype(np.float32)
    label_set = SimpleNamespace(labels=('a', 'b', 'c'), version=2, text_features=text,
                                weights=np.zeros((3, 16), np.float32))
    announcement = label_announcement(label_set)
    expected = {'labels': ['a', 'b', 'c'], 'version': 2, 'embedding_dim': 16}
    assert json.loads(announcement.json_text()) == expected
    assert announcement.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(announcement.embeddings, axis=1), 1.0,
                               atol=1e-6)
    np.testing.assert_array_equal(announcement.embeddings,
                                  text / np.linalg.norm(text, axis=1, keepdims=True))
    assert announcement.class_map() == [(0, 'a'), (1, 'b'), (2, 'c')]
    assert label_announcement(label_set, version=5).version == 5


# ------------------------------------------------------- the node and segment_bag agree
@pytest.fixture(scope='module')
def pipeline(rn_checkpoint):
    from lseg_ros.core.pipeline import LsegPipeline
    return LsegPipeline.from_checkpoint(rn_checkpoint, backend='torch', device='cpu',
                                        input_size=64, labels=LABELS)


def as_rclpy(offline, msgtype, rclpy_type):
    """Read segment_bag's rosbags message back as the rclpy message the node builds."""
    from rclpy.serialization import deserialize_message

    from lseg_ros.formats import bag
    return deserialize_message(bytes(bag.typestore().serialize_cdr(offline, msgtype)),
                               rclpy_type)


@pytest.mark.parametrize('confidence_encoding', ['mono8', '32FC1'])
@pytest.mark.parametrize('bgr', [False, True])
def test_node_and_segment_bag_encode_a_frame_alike(pipeline, confidence_encoding, bgr):
    """Both give equal messages (every field) for every output image of a frame."""
    pytest.importorskip('rclpy')
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from lseg_ros.core.pipeline import OutputRequest
    from lseg_ros.formats import bag
    from lseg_ros.ros.conversions import image_msgs
    rgb = np.random.default_rng(2).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    result = pipeline.segment(rgb, OutputRequest(confidence=True, overlay=True,
                                                 features_stride=2))
    images = output_images(result, confidence_encoding, bgr)
    node = image_msgs(images, Header(stamp=Time(sec=7, nanosec=9), frame_id='cam'))
    header = bag.make_header((7, 9), 'cam')
    assert list(node) == ['mask', 'confidence', 'overlay', 'features']
    for name, (array, encoding) in images.items():
        offline = as_rclpy(bag.image_message(array, encoding, header), bag.IMAGE, Image)
        assert node[name] == offline, name
    assert node['confidence'].encoding == confidence_encoding
    assert node['overlay'].encoding == ('bgr8' if bgr else 'rgb8')


def test_node_and_segment_bag_announce_labels_alike(pipeline):
    pytest.importorskip('rclpy')
    from std_msgs.msg import Float32MultiArray, Header, String

    from lseg_ros.formats import bag
    from lseg_ros.ros.conversions import announcement_msgs
    announcement = label_announcement(pipeline.labels)
    labels, embeddings, label_info = announcement_msgs(announcement, Header())
    assert labels == as_rclpy(bag.string_message(announcement.json_text()), bag.STRING,
                              String)
    assert embeddings == as_rclpy(
        bag.float32_array_message(announcement.embeddings, ('labels', 'embedding')),
        bag.FLOAT32_MULTI_ARRAY, Float32MultiArray)
    assert json.loads(labels.data) == {'labels': ['dog', 'grass', 'road', 'sky'],
                                       'version': 1, 'embedding_dim': 512}
    np.testing.assert_allclose(np.asarray(embeddings.data).reshape(4, 512),
                               unit_embeddings(pipeline.labels.text_features), rtol=1e-6)
    if label_info is not None:
        assert [c.class_name for c in label_info.class_map] == ['dog', 'grass', 'road', 'sky']

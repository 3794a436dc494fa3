# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The /lseg node over real ROS 2 (loopback), started the way the launch file starts it."""

import json
import threading
import time

import numpy as np
import pytest

from lseg_ros.core.samples import sample_frame
from support.ros import image_msg, NodeProcess, result_infos, RosClient, stamp_of

pytestmark = pytest.mark.ros

H, W = 48, 64
NODE = '/lseg'


@pytest.fixture(scope='module')
def client():
    ros = RosClient()
    yield ros
    ros.close()


@pytest.fixture(scope='module')
def node(rn_checkpoint, client):
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'input_size': 64, 'labels': 'a, b, c',
                        'device': 'cpu', 'warmup': False},
                       remaps={'image': '/test/image', 'camera_info': '/test/camera_info'})
    client.subscribe(Image, f'{NODE}/mask')
    client.subscribe(String, f'{NODE}/result_info')
    publisher = client.node.create_publisher(Image, '/test/image', 10)
    try:
        client.wait_for(lambda: publish_until_mask(client, publisher, 'rgb8', 0, 1.0), 90)
    except TimeoutError:
        raise AssertionError('node did not answer:\n' + proc.output())
    yield proc, publisher
    assert proc.stop() == 0, proc.output()


def info_of(client, index):
    """Wait for the ~/result_info of frame ``index`` (published right after its mask)."""
    sec = stamp_of(index).sec
    return client.wait_for(lambda: [r for r in result_infos(client, f'{NODE}/result_info')
                                    if r['stamp']['sec'] == sec], 10)[-1]


def masks_with_stamp(client, index):
    stamp = stamp_of(index)
    return [m for m in client.received(f'{NODE}/mask')
            if m.header.stamp.sec == stamp.sec and m.header.stamp.nanosec == stamp.nanosec]


def publish_until_mask(client, publisher, encoding, index, timeout=20.0, rgb=None):
    """Publish frame ``index`` until its mask arrives; return the mask message."""
    msg = image_msg(rgb if rgb is not None else sample_frame(index, H, W), encoding, index)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        found = masks_with_stamp(client, index)
        if found:
            return found[0]
        time.sleep(0.1)
    return None


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
                                      'yuv422', 'yuv422_yuy2', 'bayer_rggb8'])
def test_each_encoding_gives_a_mask_with_input_size_and_header(node, client, encoding):
    index = 10 + ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422',
                  'yuv422_yuy2', 'bayer_rggb8'].index(encoding)
    mask = publish_until_mask(client, node[1], encoding, index)
    assert mask is not None, f'no mask for {encoding}'
    assert (mask.height, mask.width, mask.encoding) == (H, W, 'mono8')
    assert mask.header.frame_id == 'camera' and mask.step == W
    values = np.frombuffer(bytes(mask.data), np.uint8)
    assert values.size == H * W and values.max() < 3


def test_optional_outputs_only_with_subscribers(node, client):
    from sensor_msgs.msg import CameraInfo, Image
    mask = publish_until_mask(client, node[1], 'rgb8', 30)
    assert mask is not None
    assert info_of(client, 30)['outputs'] == ['mask']
    for topic in ('overlay', 'confidence', 'features', 'features/camera_info', 'camera_info'):
        client.subscribe(CameraInfo if 'camera_info' in topic else Image, f'{NODE}/{topic}')
    assert client.set_parameters(NODE, publish_features=True)[0].successful
    camera = client.node.create_publisher(CameraInfo, '/test/camera_info', 10)
    k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    p = [50.0, 0.0, 32.0, 0.0, 0.0, 50.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    camera_info = CameraInfo(width=W, height=H, k=k, p=p, distortion_model='plumb_bob')
    time.sleep(1.0)                                      # let the subscriptions match
    for index, encoding in ((31, 'rgb8'), (32, 'bgr8')):
        camera.publish(camera_info)
        time.sleep(0.2)
        assert publish_until_mask(client, node[1], encoding, index) is not None
        stamp = stamp_of(index)

        def of_frame(topic):
            return [m for m in client.received(f'{NODE}/{topic}')
                    if m.header.stamp == stamp]
        client.wait_for(lambda: all(of_frame(t) for t in ('overlay', 'confidence', 'features')),
                        20)
        overlay, = of_frame('overlay')[:1]
        assert (overlay.encoding, overlay.height, overlay.width) == (encoding, H, W)
        confidence = of_frame('confidence')[0]
        assert (confidence.encoding, confidence.height, confidence.width) == ('mono8', H, W)
        conf = np.frombuffer(bytes(confidence.data), np.uint8)
        assert conf.min() >= 255 // 3 - 1                  # >= 1/K of 255
        features = of_frame('features')[0]
        assert features.encoding == '32FC512' and features.header.frame_id == 'camera'
        grid = np.frombuffer(bytes(features.data), np.float32).reshape(
            features.height, features.width, 512)
        np.testing.assert_allclose(np.linalg.norm(grid, axis=-1), 1.0, rtol=1e-4)
        info_out = client.wait_for(lambda: of_frame('camera_info'), 10)[0]
        assert (info_out.width, info_out.height) == (W, H) and list(info_out.k) == k
        feature_info = client.wait_for(lambda: of_frame('features/camera_info'), 10)[0]
        assert (feature_info.width, feature_info.height) == (features.width, features.height)
        # input_size 64: 48x64 goes through unresized, padded to 64x64; H/2 grid 32x32, stride 4
        # from config/lseg.yaml; cell j <-> pixel a * j with a = 4 * 63 / 31 (align_corners)
        a = 4 * 63 / 31
        assert (features.height, features.width) == (6, 8)
        np.testing.assert_allclose([feature_info.k[0], feature_info.k[2], feature_info.k[4],
                                    feature_info.k[5]], [50 / a, 32 / a, 50 / a, 24 / a])
    assert set(info_of(client, 32)['outputs']) == {'mask', 'confidence', 'overlay', 'features'}
    assert client.set_parameters(NODE, publish_features=False)[0].successful


def test_labels_change_through_set_parameters(node, client):
    from std_msgs.msg import Float32MultiArray, String
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = client.set_parameters(NODE, labels='dog,grass')
    assert results[0].successful, results[0].reason
    client.subscribe(String, f'{NODE}/labels', latched)          # a late subscriber
    client.subscribe(Float32MultiArray, f'{NODE}/text_embeddings', latched)

    def current_labels():
        msgs = client.received(f'{NODE}/labels')
        return msgs and json.loads(msgs[-1].data)
    labels = client.wait_for(lambda: (lambda d: d if d and d['labels'] == ['dog', 'grass']
                                      else None)(current_labels()), 20)
    assert labels['version'] >= 2 and labels['embedding_dim'] == 512
    embeddings = client.wait_for(lambda: client.received(f'{NODE}/text_embeddings'), 10)[-1]
    assert [d.size for d in embeddings.layout.dim] == [2, 512]
    rows = np.array(embeddings.data, np.float32).reshape(2, 512)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    mask = publish_until_mask(client, node[1], 'rgb8', 40, rgb=np.random.default_rng(1)
                              .integers(0, 256, (H, W, 3), dtype=np.uint8))
    info = info_of(client, 40)
    assert info['label_version'] == labels['version'] and info['labels'] == 2
    assert np.frombuffer(bytes(mask.data), np.uint8).max() < 2
    for bad, reason in (('', 'empty'), ('  ,  ', 'empty'), ('dog, dog', 'duplicate'),
                        ('a,,b', 'empty')):
        result = client.set_parameters(NODE, labels=bad)[0]
        assert not result.successful and reason in result.reason, result.reason
    mask = publish_until_mask(client, node[1], 'rgb8', 41)
    info = info_of(client, 41)
    assert info['label_version'] == labels['version'] and info['labels'] == 2


def test_readme_topics_tables_match_the_running_node(node, client):
    """The README's Published/Subscribed topics tables list what /lseg really has."""
    from support.docs import readme_table
    published = {name for name, _ in client.node.get_publisher_names_and_types_by_node(
        'lseg', '/')} - {'/rosout', '/parameter_events'}
    documented = {row[0].strip('`').replace('~/', f'{NODE}/')
                  for row in readme_table('Published topics')}
    # ~/label_info exists only where vision_msgs is installed
    assert published == documented - ({f'{NODE}/label_info'} - published)
    subscribed = {name for name, _ in client.node.get_subscriber_names_and_types_by_node(
        'lseg', '/')} - {'/parameter_events'}
    assert subscribed == {'/test/image', '/test/camera_info'}      # as remapped
    assert {row[0].strip('`') for row in readme_table('Subscribed topics')} == {
        'image', 'image/compressed', 'camera_info'}


def test_a_label_flood_is_refused_at_once_while_frames_flow(node, client):
    """A 20,000-character label is refused before tokenisation (quadratic in a word)."""
    flood = ''.join(np.random.default_rng(7).choice(list('abcdefghij'), 20000))
    start = time.monotonic()
    result = client.set_parameters(NODE, labels=flood)[0]
    took = time.monotonic() - start
    assert not result.successful and 'characters' in result.reason, result.reason
    assert took < 2.0, f'the refusal took {took:.1f} s'       # tokenising it took 13 s
    assert publish_until_mask(client, node[1], 'rgb8', 42, timeout=10.0) is not None


def test_out_of_range_and_read_only_parameters_are_refused(node, client):
    for name, value in (('feature_stride', 0), ('overlay_alpha', 1.5), ('max_rate_hz', -1.0),
                        ('confidence_encoding', 'rgb8'), ('input_size', 320),
                        ('checkpoint', '/other.ckpt'), ('backend', 'torch')):
        result = client.set_parameters(NODE, **{name: value})[0]
        assert not result.successful, name
    assert publish_until_mask(client, node[1], 'rgb8', 50) is not None


def test_bad_frames_are_skipped_and_the_next_good_one_is_processed(node, client):
    from sensor_msgs.msg import Image
    good = image_msg(sample_frame(0, H, W), 'rgb8', 60)
    bad = []
    unknown = image_msg(sample_frame(0, H, W), 'rgb8', 61)
    unknown.encoding = '64FC3'
    bad.append(unknown)
    short_step = image_msg(sample_frame(0, H, W), 'rgb8', 62)
    short_step.step = W                                   # step < width * 3
    bad.append(short_step)
    truncated = image_msg(sample_frame(0, H, W), 'rgb8', 63)
    truncated.data = bytes(truncated.data)[:100]
    bad.append(truncated)
    empty = Image(height=0, width=0, encoding='rgb8', step=0)
    empty.header.stamp = stamp_of(64)
    bad.append(empty)
    for msg in bad:
        node[1].publish(msg)
        time.sleep(0.3)
    assert publish_until_mask(client, node[1], 'rgb8', 65) is not None
    for index in range(61, 65):
        assert not masks_with_stamp(client, index)
    output = node[0].output()
    assert 'frame skipped' in output and 'unsupported image encoding' in output
    assert 'Traceback' not in output
    del good


def test_sim_time_follows_clock(node, client):
    from diagnostic_msgs.msg import DiagnosticArray
    from rosgraph_msgs.msg import Clock
    from builtin_interfaces.msg import Time
    clock = client.node.create_publisher(Clock, '/clock', 10)
    client.subscribe(DiagnosticArray, '/diagnostics')
    assert client.set_parameters(NODE, use_sim_time=True)[0].successful

    def sim_stamped():
        clock.publish(Clock(clock=Time(sec=123456, nanosec=0)))
        return [m for m in client.received('/diagnostics') if m.header.stamp.sec == 123456]
    client.wait_for(sim_stamped, 20, poll=0.2)
    mask = publish_until_mask(client, node[1], 'rgb8', 70)
    assert mask.header.stamp == stamp_of(70)                   # outputs keep the input stamp
    assert client.set_parameters(NODE, use_sim_time=False)[0].successful


def test_overload_drops_old_frames_without_latency_growth(node, client):
    import psutil
    from diagnostic_msgs.msg import DiagnosticArray
    client.subscribe(DiagnosticArray, '/diagnostics')
    process = psutil.Process(node[0].proc.pid)
    rss_before = process.memory_info().rss
    rgb = sample_frame(3, H, W)
    published = {}
    start = time.monotonic()
    index = 1000
    while time.monotonic() - start < 8.0:                # ~200 Hz, far above inference
        msg = image_msg(rgb, 'rgb8', index)
        published[index] = time.monotonic()
        node[1].publish(msg)
        index += 1
        time.sleep(0.005)
    time.sleep(2.0)
    masks = [m for m in client.received(f'{NODE}/mask') if m.header.stamp.sec >= 2000]
    assert len(masks) >= 3
    sent = len(published)
    assert len(masks) < sent / 3                               # most frames were dropped
    frames = [mask.header.stamp.sec - 1000 for mask in masks]
    # Newest frame wins: masks come for frames in order, skipping the frames that were
    # replaced while the model ran, and the last frame published is the last one segmented
    # (a FIFO queue would still be working through old frames).  No timing is asserted.
    assert frames == sorted(frames)
    gaps = np.diff(frames)
    assert gaps.mean() > 3
    assert frames[-1] >= index - 5
    diag = client.wait_for(lambda: [m for m in client.received('/diagnostics')
                                    if any(kv.key == 'frames_dropped' and int(kv.value) > 100
                                           for s in m.status for kv in s.values)], 10)
    values = {kv.key: kv.value for kv in diag[-1].status[0].values}
    assert int(values['frames_dropped']) > 100
    # how the model runs (torch on the CPU: eager, not quantised)
    assert values['mode'] == 'eager' and values['quantization'] == '-'
    assert values['levers'] == '-'                      # fp32 on the CPU: no speed lever
    assert process.memory_info().rss - rss_before < 150 * 2**20


def test_max_rate_limits_processing(node, client):
    assert client.set_parameters(NODE, max_rate_hz=2.0)[0].successful
    try:
        time.sleep(1.0)
        rgb = sample_frame(5, H, W)
        start = time.monotonic()
        index = 3000
        while time.monotonic() - start < 4.0:             # 20 Hz in, at most 2 Hz out
            node[1].publish(image_msg(rgb, 'rgb8', index))
            index += 1
            time.sleep(0.05)
        time.sleep(1.0)
        masks = [m for m in client.received(f'{NODE}/mask') if m.header.stamp.sec >= 4000]
        assert 1 <= len(masks) <= 11             # at most 2 Hz (+1 at the edges)
    finally:
        assert client.set_parameters(NODE, max_rate_hz=0.0)[0].successful


def test_label_info_where_vision_msgs_is_installed(node, client):
    pytest.importorskip('vision_msgs', reason='vision_msgs is not on PyPI; real ROS 2 '
                        'installs have it')
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import LabelInfo
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.subscribe(LabelInfo, f'{NODE}/label_info', latched)
    info = client.wait_for(lambda: client.received(f'{NODE}/label_info'), 20)[-1]
    assert [c.class_id for c in info.class_map] == list(range(len(info.class_map)))


def test_camera_info_of_another_resolution_is_rescaled(node, client):
    from sensor_msgs.msg import CameraInfo
    client.subscribe(CameraInfo, f'{NODE}/camera_info')
    camera = client.node.create_publisher(CameraInfo, '/test/camera_info', 10)
    k = [100.0, 0.0, 64.0, 0.0, 100.0, 48.0, 0.0, 0.0, 1.0]
    p = [100.0, 0.0, 64.0, 0.0, 0.0, 100.0, 48.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    full = CameraInfo(width=2 * W, height=2 * H, k=k, p=p)
    full.header.stamp = stamp_of(80)
    time.sleep(0.5)
    camera.publish(full)
    time.sleep(0.3)
    assert publish_until_mask(client, node[1], 'rgb8', 80) is not None
    info = client.wait_for(lambda: [m for m in client.received(f'{NODE}/camera_info')
                                    if m.header.stamp == stamp_of(80)], 10)[0]
    assert (info.width, info.height) == (W, H)
    # pixel centres aligned: u_full = 2 * u + 0.5  ->  f' = f / 2, c' = (c - 0.5) / 2
    np.testing.assert_allclose([info.k[0], info.k[2], info.k[4], info.k[5]],
                               [50.0, 31.75, 50.0, 23.75])


def test_every_result_uses_one_label_set_while_labels_change(node, client):
    """Stream frames while the vocabulary flips between 2 and 3 labels."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.subscribe(String, f'{NODE}/labels', latched)
    rgb = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)
    stop = threading.Event()

    def stream():
        index = 5000
        while not stop.is_set():
            node[1].publish(image_msg(rgb, 'rgb8', index))
            index += 1
            time.sleep(0.02)
    thread = threading.Thread(target=stream)
    thread.start()
    try:
        for labels in ('dog, grass', 'dog, grass, sky') * 3:
            assert client.set_parameters(NODE, labels=labels)[0].successful
            time.sleep(0.7)
    finally:
        stop.set()
        thread.join()
    time.sleep(1.0)
    versions = {}
    for msg in client.received(f'{NODE}/labels'):
        data = json.loads(msg.data)
        versions[data['version']] = len(data['labels'])
    masks = {(m.header.stamp.sec, m.header.stamp.nanosec): m
             for m in client.received(f'{NODE}/mask') if m.header.stamp.sec >= 6000}
    infos = [r for r in result_infos(client, f'{NODE}/result_info') if r['stamp']['sec'] >= 6000]
    seen = set()
    for info in infos:
        k = versions[info['label_version']]           # announced before any mask of it
        assert info['labels'] == k
        mask = masks.get((info['stamp']['sec'], info['stamp']['nanosec']))
        if mask is not None:
            assert np.frombuffer(bytes(mask.data), np.uint8).max() < k
        seen.add(k)
    assert seen == {2, 3}


def test_the_start_up_log_says_how_the_precision_runs():
    from lseg_ros.ros.node import describe_mode
    assert describe_mode({'mode': 'cuda_graph+compile:default'}) == \
        ' (mode cuda_graph+compile:default)'
    assert describe_mode({'mode': 'eager', 'quantization': 'int8 Q/DQ'}) == \
        ' (mode eager, int8 Q/DQ)'
    assert describe_mode({'quantization': 'fp8 Q/DQ'}) == ' (fp8 Q/DQ)'
    assert describe_mode({'mode': 'cuda_graph', 'levers': 'fold_bn,patch_matmul'}) == \
        ' (mode cuda_graph, levers fold_bn,patch_matmul)'
    assert describe_mode({'mode': 'eager', 'levers': '-'}) == ' (mode eager)'
    assert describe_mode({}) == ''

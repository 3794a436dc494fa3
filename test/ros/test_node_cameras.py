# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Several cameras in one node, and the free-text query heat-map, over real ROS 2."""

import json
import time

import numpy as np
import pytest

from lseg_ros.core.samples import sample_frame
from support.ros import image_msg, NodeProcess, result_infos, RosClient, stamp_of

pytestmark = pytest.mark.ros

NODE = '/lseg_cams'
#: camera -> (height, width): front and side have one size (batched), rear another.
SIZES = {'front': (48, 64), 'side': (48, 64), 'rear': (32, 40)}
SETTINGS = {'input_size': 64, 'labels': 'a, b, c', 'device': 'cpu', 'warmup': False}


@pytest.fixture(scope='module')
def client():
    ros = RosClient('cameras_client')
    yield ros
    ros.close()


@pytest.fixture(scope='module')
def node(rn_checkpoint, client):
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    proc = NodeProcess(dict(SETTINGS, checkpoint=rn_checkpoint, cameras='front, side, rear'),
                       name=NODE.strip('/'),
                       remaps={'rear/image_raw': '/robot/rear_camera/image_raw'})
    publishers = {}
    for name in SIZES:
        client.subscribe(Image, f'{NODE}/{name}/mask')
        client.subscribe(String, f'{NODE}/{name}/result_info')
        topic = '/robot/rear_camera/image_raw' if name == 'rear' else f'/{name}/image_raw'
        publishers[name] = client.node.create_publisher(Image, topic, 10)
    try:
        client.wait_for(lambda: mask_of(client, publishers, 'front', 0, timeout=1.0), 90)
    except TimeoutError:
        raise AssertionError('node did not answer:\n' + proc.output())
    yield proc, publishers
    assert proc.stop() == 0, proc.output()


def frame(name, index, rgb=None):
    h, w = SIZES[name]
    return image_msg(sample_frame(index, h, w) if rgb is None else rgb, 'rgb8', index,
                     frame_id=f'{name}_optical')


def masks_of(client, name, index):
    stamp = stamp_of(index)
    return [m for m in client.received(f'{NODE}/{name}/mask') if m.header.stamp == stamp]


def mask_of(client, publishers, name, index, timeout=20.0, rgb=None):
    """Publish frame ``index`` of camera ``name`` until its mask comes; return it."""
    msg = frame(name, index, rgb)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publishers[name].publish(msg)
        found = masks_of(client, name, index)
        if found:
            return found[0]
        time.sleep(0.1)
    return None


def info_of(client, name, index):
    sec = stamp_of(index).sec
    return client.wait_for(lambda: [r for r in result_infos(client, f'{NODE}/{name}/result_info')
                                    if r['stamp']['sec'] == sec], 10)[-1]


def test_each_camera_gets_masks_with_its_own_header_size_and_counters(node, client):
    from diagnostic_msgs.msg import DiagnosticArray
    client.subscribe(DiagnosticArray, '/diagnostics')
    for offset, name in enumerate(SIZES):
        mask = mask_of(client, node[1], name, 10 + offset)
        assert mask is not None, name
        assert (mask.height, mask.width) == SIZES[name]
        assert mask.header.frame_id == f'{name}_optical'
        assert np.frombuffer(bytes(mask.data), np.uint8).max() < 3
        assert not [m for m in client.received(f'{NODE}/{name}/mask')
                    if m.header.frame_id != f'{name}_optical']

    def statuses():
        found = {}
        for msg in client.received('/diagnostics'):
            for status in msg.status:
                if status.name.startswith(NODE + ': segmentation '):
                    values = {kv.key: kv.value for kv in status.values}
                    found[status.name.rsplit(' ', 1)[1]] = values
        return found if set(found) == set(SIZES) and all(
            int(v['frames_processed']) >= 1 for v in found.values()) else None
    found = client.wait_for(statuses, 15)
    for name, values in found.items():
        assert values['camera'] == name
        assert int(values['frames_received']) >= int(values['frames_processed']) >= 1


def test_same_size_frames_are_batched_and_keep_their_headers(node, client):
    assert client.set_parameters(NODE, batch_window_ms=80.0)[0].successful
    try:
        def batched():
            index = 200 + int(time.monotonic() * 10) % 1000
            node[1]['front'].publish(frame('front', index))
            node[1]['side'].publish(frame('side', index))
            time.sleep(0.3)
            infos = [r for name in ('front', 'side')
                     for r in result_infos(client, f'{NODE}/{name}/result_info')
                     if r['stamp']['sec'] == stamp_of(index).sec]
            together = [r['stages_ms']['batch'] == 2 for r in infos]
            return infos if len(infos) == 2 and all(together) else None
        infos = client.wait_for(batched, 30, poll=0.0)
        assert {r['frame_id'] for r in infos} == {'front_optical', 'side_optical'}
    finally:
        assert client.set_parameters(NODE, batch_window_ms=0.0)[0].successful
    # no batching: one frame per call
    index = 1500
    for name in ('front', 'side'):
        assert mask_of(client, node[1], name, index) is not None
        assert info_of(client, name, index)['stages_ms']['batch'] == 1


def test_a_label_change_applies_to_every_camera(node, client):
    assert client.set_parameters(NODE, labels='dog, grass')[0].successful
    rng = np.random.default_rng(5)
    for offset, name in enumerate(SIZES):
        rgb = rng.integers(0, 256, SIZES[name] + (3,), dtype=np.uint8)

        def new_labels(index=[2000 + 10 * offset]):
            index[0] += 1
            mask = mask_of(client, node[1], name, index[0], timeout=2.0, rgb=rgb)
            return mask is not None and info_of(client, name, index[0])['labels'] == 2 \
                and mask
        mask = client.wait_for(new_labels, 30)
        assert np.frombuffer(bytes(mask.data), np.uint8).max() < 2


def test_query_similarity_peaks_where_the_image_matches_the_query(node, client,
                                                                  rn_checkpoint):
    """The map's maximum lies in the region that matches the query.

    A synthetic case built with the reference weights: the colour the model finds most
    similar to the query fills the left half, the least similar one the right half.
    """
    from lseg_ros.core.pipeline import LsegPipeline, OutputRequest
    from sensor_msgs.msg import Image
    query = 'a red ball'
    pipeline = LsegPipeline.from_checkpoint(rn_checkpoint, backend='torch', device='cpu',
                                            input_size=64, labels='dog, grass')
    pipeline.set_query(query)
    h, w = SIZES['front']
    colours = [(r, g, b) for r in (0, 128, 255) for g in (0, 128, 255) for b in (0, 128, 255)]
    scores = [float(pipeline.segment(np.full((h, w, 3), c, np.uint8),
                                     OutputRequest(similarity=True)).similarity.mean())
              for c in colours]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:, :w // 2] = colours[int(np.argmax(scores))]
    rgb[:, w // 2:] = colours[int(np.argmin(scores))]
    topic = f'{NODE}/front/query/similarity'
    client.subscribe(Image, topic)
    assert client.set_parameters(NODE, query=query)[0].successful
    assert client.set_parameters(NODE, labels='dog, grass')[0].successful

    def similarity(index=[3000]):
        index[0] += 1
        mask = mask_of(client, node[1], 'front', index[0], timeout=2.0, rgb=rgb)
        maps = [m for m in client.received(topic) if m.header.stamp == stamp_of(index[0])]
        return maps and mask and (maps[0], mask, index[0])
    heat, mask, index = client.wait_for(similarity, 30)
    assert (heat.encoding, heat.height, heat.width) == ('32FC1', h, w)
    assert heat.header.frame_id == 'front_optical'
    values = np.frombuffer(bytes(heat.data), np.float32).reshape(h, w)
    row, col = np.unravel_index(np.argmax(values), values.shape)
    assert col < w // 2, f'maximum at column {col} of {w}'
    assert values[:, :w // 2].mean() > values[:, w // 2:].mean()
    expected = pipeline.segment(rgb, OutputRequest(similarity=True))
    np.testing.assert_allclose(values, expected.similarity, atol=1e-3)
    # the mask is still the argmax over the labels, not touched by the query
    assert np.mean(np.frombuffer(bytes(mask.data), np.uint8).reshape(h, w)
                   == expected.mask) > 0.99
    assert info_of(client, 'front', index)['query'] == query
    # only the camera whose map has subscribers computes it
    assert 'similarity' not in info_of(client, 'rear', 2020 + 1)['outputs']
    # empty query: off
    assert client.set_parameters(NODE, query='')[0].successful
    time.sleep(1.0)
    client.clear(topic)
    assert mask_of(client, node[1], 'front', 3900, rgb=rgb) is not None
    time.sleep(0.5)
    assert not client.received(topic)
    assert json.loads(json.dumps(info_of(client, 'front', 3900)))['query'] is None


def test_bad_camera_lists_are_refused_at_start_up(rn_checkpoint):
    for cameras, reason in (('front, front', 'twice'), ('front, 2nd', 'not a valid name'),
                            ('front,,rear', 'not a valid name')):
        proc = NodeProcess(dict(SETTINGS, checkpoint=rn_checkpoint, cameras=cameras),
                           name='lseg_bad_cameras')
        assert proc.wait_exit(60) == 1, proc.output()
        assert reason in proc.output() and 'Traceback' not in proc.output()


def test_the_node_warms_batch_shapes_only_with_a_batch_window():
    from lseg_ros.ros.node import warmup_batch
    assert warmup_batch(4, 0.005) == 4
    assert warmup_batch(4, None) == 1        # batch_window_ms 0: one frame per call
    assert warmup_batch(1, 0.005) == 1


@pytest.mark.parametrize('fail_at', [None, 1])
def test_each_frame_of_a_batch_is_published_as_soon_as_it_is_ready(fail_at):
    """The node publishes frame 0 before the pipeline makes frame 1's outputs."""
    from types import SimpleNamespace
    from lseg_ros.core.pipeline import OutputRequest, SegmentationResult
    from lseg_ros.ros.node import LsegRuntime
    from lseg_ros.ros.params import PARAMS
    events, errors = [], []

    class Camera:
        def __init__(self, name):
            self.name = name

        def request(self, settings, query):
            return OutputRequest()

        def publish(self, msg, rgb, result, request, settings, convert_ms, received):
            events.append(f'publish {self.name}')

    def iter_segment_batch(images, request):
        for index, rgb in enumerate(images):
            events.append(f'result {index}')
            if index == fail_at:
                raise RuntimeError('boom')
            yield SegmentationResult(mask=np.zeros(rgb.shape[:2], np.uint8), label_set=None,
                                     geometry=None)

    node = SimpleNamespace(
        cameras={name: Camera(name) for name in ('front', 'side')},
        pipeline=SimpleNamespace(query=None, iter_segment_batch=iter_segment_batch,
                                 stage=lambda rgb: rgb),
        settings={p.name: p.default for p in PARAMS},
        _on_frame_error=lambda camera, error: errors.append((camera.name, str(error))))
    prepared = LsegRuntime._prepare(node, [(name, frame(name, 7), 0.0)
                                           for name in ('front', 'side')])
    LsegRuntime._process(node, prepared)
    if fail_at is None:
        assert events == ['result 0', 'publish front', 'result 1', 'publish side']
        assert errors == []
    else:
        assert events == ['result 0', 'publish front', 'result 1']
        assert errors == [('side', 'boom')]

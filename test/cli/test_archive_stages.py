# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The stages of segment_bags without Ray: rows are frames, and a failing batch fails its bags."""

import numpy as np

from lseg_ros.archive import stages
from lseg_ros.formats import bag
from lseg_ros.formats.sample_bag import CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC, \
    write_sample_bag

CONFIG = {'image_topics': [IMAGE_TOPIC, COMPRESSED_TOPIC], 'copy_topics': [CAMERA_INFO_TOPIC],
          'max_frames': 0, 'max_pixels': 1 << 24}


def rows_of(batches):
    return [(int(b), int(s), str(k), stages.loads(i)) for batch in batches
            for b, s, k, i in zip(batch['bag'], batch['seq'], batch['kind'], batch['item'])]


def test_decode_gives_one_row_per_frame_and_the_other_messages_ride_along(tmp_path):
    path = tmp_path / 'five'
    write_sample_bag(path, frames=5, height=24, width=32, storage='mcap')
    source = {'bag': np.array([3]), 'path': np.array([str(path)], dtype=object)}
    batches = list(stages.decode_bag(source, CONFIG, chunk=4))
    assert [len(b['item']) for b in batches] == [4, 4, 4]   # start + 10 frames + end, by 4
    rows = rows_of(batches)
    assert [r[1] for r in rows] == list(range(12)) and {r[0] for r in rows} == {3}
    kinds = [r[2] for r in rows]
    assert kinds == ['start'] + ['msg'] * 10 + ['end']
    assert all(item['rgb'].shape == (24, 32, 3) for _, _, kind, item in rows if kind == 'msg')
    # the rows give back every message of the bag, in bag order
    order = []
    for _, _, kind, item in rows[1:]:
        order += [(m['topic'], m['timestamp']) for m in item['before']]
        if kind == 'msg':
            order.append((item['topic'], item['timestamp']))
    with bag.BagReader(path) as reader:
        expected = [(m.topic, m.timestamp) for m in reader.messages(
            [IMAGE_TOPIC, COMPRESSED_TOPIC, CAMERA_INFO_TOPIC])]
    assert order == expected
    assert sum(len(r[3]['before']) for r in rows[1:]) == 5       # the camera_info messages


class FailingPipeline:
    """Segments nothing: every batch raises, as a CUDA error would."""

    def segment_batch(self, images, request, label_set, pad_to=None):
        raise RuntimeError('CUDA error: an illegal memory access was encountered')


def test_a_failing_batch_turns_its_rows_into_errors_and_passes_the_others():
    actor = stages.SegmentActor.__new__(stages.SegmentActor)
    actor.pipeline, actor.request, actor.label_set = FailingPipeline(), None, None
    actor.batch_size, actor.announcement = 2, stages.dumps('labels')
    frame = {'before': [], 'topic': IMAGE_TOPIC, 'timestamp': 1, 'data': None, 'frame': None,
             'rgb': np.zeros((4, 4, 3), np.uint8)}
    batch = stages.make_batch([(0, 1, 'msg', dict(frame)), (1, 0, 'start', {'frames': 1}),
                               (0, 2, 'msg', dict(frame))])
    out = actor(batch)
    assert list(out['kind']) == ['error', 'start', 'error']
    error = stages.loads(out['item'][0])['error']
    assert error.startswith('segmenting frames failed: RuntimeError: CUDA error'), error
    assert stages.loads(out['item'][1]) == {'frames': 1}
    assert stages.loads(out['announcement'][0]) == 'labels'

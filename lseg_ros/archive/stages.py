# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The stages of ``segment_bags``, as plain functions over batches (no Ray import here).

A batch is a dict of equal-length numpy columns (Ray Data's ``numpy`` batch format):

  bag           int    the bag's number in the run
  seq           int    the row's position in its bag (0: ``start``, then one per row)
  kind          str    ``start`` | ``msg`` | ``end`` | ``error``
  item          bytes  pickled dict: what the row carries (see below)
  announcement  bytes  (after :class:`SegmentActor`) the pickled label announcement in the
                       first row of every batch, empty elsewhere

Items: ``start`` {storage, topics, frames}; ``msg`` {before, and for one frame to segment:
topic, timestamp, data (its bytes when the image topic is copied too, else None), frame (a
BagFrame without pixels), rgb (before the actor), result (between actor and encoder),
outputs (``(topic, CDR bytes)`` after the encoder)}; ``end`` {before, start_time};
``error`` {error}.  ``before`` lists the input messages that come before the row's frame in
bag order and are not frames to segment (copied topics, bad frames), as dicts {topic,
timestamp, data, frame (None or an ImageError)}: one ``msg`` row is one frame, so a batch
of ``batch_size`` rows is a batch of that many frames for the GPU.  Every item also carries
the seconds each stage spent on it (``decode_s``, ``infer_s``, ``encode_s``).

:func:`decode_bag` (CPU tasks) reads a bag and decodes its frames; :class:`SegmentActor`
(GPU actors) runs :meth:`LsegPipeline.segment_batch` on frames grouped by size;
:func:`encode_outputs` (CPU tasks) turns results into the serialized output messages with
:func:`lseg_ros.formats.bag_segmenter.frame_outputs`, the code ``segment_bag`` uses.
"""

from dataclasses import dataclass
import pickle
import time
from typing import Dict, Iterator, List, Optional

import numpy as np

from lseg_ros.core.errors import LsegError
from lseg_ros.formats import bag
from lseg_ros.formats.bag_segmenter import (check_inputs, decoded_messages, frame_outputs,
                                            output_prefixes, output_request)

START, MSG, END, ERROR = 'start', 'msg', 'end', 'error'
COLUMNS = ('bag', 'seq', 'kind', 'item')


@dataclass
class ArrayResult:
    """The arrays of a SegmentationResult that cross the object store (numpy only)."""

    mask: np.ndarray
    confidence: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None
    similarity: Optional[np.ndarray] = None      # bags have no query; the output contract asks


def dumps(value) -> bytes:
    """Pickle ``value`` (protocol 5: numpy arrays are copied once)."""
    return pickle.dumps(value, protocol=5)


def loads(data) -> object:
    """Unpickle a row's bytes."""
    return pickle.loads(bytes(data))


def make_batch(rows: List[tuple]) -> Dict[str, np.ndarray]:
    """Return the numpy batch of ``(bag, seq, kind, item dict)`` rows."""
    items = np.empty(len(rows), dtype=object)
    items[:] = [dumps(row[3]) for row in rows]
    return {'bag': np.array([r[0] for r in rows], np.int64),
            'seq': np.array([r[1] for r in rows], np.int64),
            'kind': np.array([r[2] for r in rows], dtype=object),
            'item': items}


#: Messages that are not frames to segment, at most, riding with one row.
MAX_BEFORE = 256


def decode_bag(batch: Dict[str, np.ndarray], config: Dict,
               chunk: int = 16) -> Iterator[Dict[str, np.ndarray]]:
    """Read and decode the bags of ``batch`` (columns ``bag``, ``path``), ``chunk`` rows a batch.

    One ``msg`` row per frame to segment; the other messages ride with the next row (see
    the module docstring).  A bag that cannot be opened, lacks a topic or breaks while being
    read gives an ``error`` row (after the rows read before the damage); a bag read to its
    end gives an ``end`` row.
    """
    for number, path in zip(batch['bag'], batch['path']):
        number = int(number)
        rows: List[tuple] = []
        before: List[Dict] = []
        seq = 0
        clock = time.perf_counter()

        def flush():
            nonlocal clock
            now = time.perf_counter()
            share = (now - clock) / max(1, len(rows))
            for row in rows:
                row[3]['decode_s'] = share
            out = make_batch(rows)
            rows.clear()
            clock = time.perf_counter()
            return out

        def add(kind: str, item: Dict) -> None:
            nonlocal seq, before
            item['before'] = before
            before = []
            rows.append((number, seq, kind, item))
            seq += 1

        try:
            with bag.BagReader(path) as reader:
                check_inputs(reader, config['image_topics'], config['copy_topics'])
                frames = sum(min(reader.topics[t].count,
                                 config['max_frames'] or reader.topics[t].count)
                             for t in config['image_topics'])
                rows.append((number, seq, START, {
                    'storage': reader.storage, 'frames': frames,
                    'topics': {t: reader.topics[t] for t in config['copy_topics']}}))
                seq += 1
                copies = set(config['copy_topics'])
                for message, frame in decoded_messages(
                        reader, config['image_topics'], config['copy_topics'],
                        config['max_frames'], config['max_pixels']):
                    item = {'topic': message.topic, 'timestamp': message.timestamp,
                            'data': message.data if message.topic in copies else None,
                            'frame': frame}
                    if not isinstance(frame, bag.BagFrame):
                        before.append(item)
                        if len(before) >= MAX_BEFORE:
                            add(MSG, {})             # a row of passengers only
                    else:
                        item['rgb'] = frame.rgb
                        frame.rgb = np.empty((0, 0, 3), np.uint8)
                        add(MSG, item)
                    if len(rows) >= chunk:
                        yield flush()
                add(END, {'start_time': reader.start_time})
        except LsegError as error:
            rows.append((number, seq, ERROR, {'error': str(error)}))
        except Exception as error:   # noqa: B902 - any failure of one bag is reported
            rows.append((number, seq, ERROR, {'error': f'{type(error).__name__}: {error}'}))
        if rows:
            yield flush()


def pipeline_options(config: Dict) -> Dict:
    """Return the keyword arguments of LsegPipeline.from_checkpoint for ``config``."""
    from lseg_ros.core.backends.factory import user_options
    # the same backend options as segment_bag (deterministic kernels)
    return dict({'backend': config['backend'], 'device': config['device'],
                 'precision': config['precision'], 'input_size': config['size'],
                 'engine': config.get('engine'), 'onnx': config.get('onnx'),
                 'labels': config['labels']},
                **user_options(config['backend'], config['compile'], deterministic=True))


class SegmentActor:
    """Holds one LsegPipeline (one model load per actor) and segments batches of rows.

    Image rows are grouped by size, and each group is segmented with
    :meth:`LsegPipeline.segment_batch` in chunks of ``batch_size``; other rows pass through.
    """

    def __init__(self, config: Dict):
        import torch

        from lseg_ros.core.pipeline import LsegPipeline
        if config.get('torch_threads'):
            # Ray gives an actor OMP_NUM_THREADS = its CPUs; CPU results depend on the thread
            # count (summation order), so use segment_bag's (the driver's torch default)
            torch.set_num_threads(int(config['torch_threads']))
        from lseg_ros.formats.outputs import label_announcement
        self.pipeline = LsegPipeline.from_checkpoint(config['checkpoint'],
                                                     **pipeline_options(config))
        self.request = output_request(config['confidence'], config['overlay'],
                                      config['alpha'], config['feature_stride'])
        self.batch_size = max(1, int(config['batch_size']))
        self.label_set = self.pipeline.labels
        self.announcement = dumps(label_announcement(self.label_set))

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Segment the image rows of ``batch``; returns it with results and the announcement."""
        items = [loads(data) for data in batch['item']]
        groups: Dict[tuple, List[int]] = {}
        for row, item in enumerate(items):
            if 'rgb' in item:
                groups.setdefault(item['rgb'].shape, []).append(row)
        kinds = np.array(batch['kind'], dtype=object)
        for rows in groups.values():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                clock = time.perf_counter()
                try:
                    # one encoder shape per image size (a tail chunk is padded)
                    results = self.pipeline.segment_batch([items[r]['rgb'] for r in chunk],
                                                          self.request, self.label_set,
                                                          pad_to=self.batch_size)
                except Exception as error:  # noqa: B902 - fail these frames' bags, not the run
                    message = f'segmenting frames failed: {type(error).__name__}: {error}'
                    for row in chunk:
                        kinds[row] = ERROR
                        items[row] = {'error': message}
                    continue
                share = (time.perf_counter() - clock) / len(chunk)
                for row, result in zip(chunk, results):
                    item = items[row]
                    del item['rgb']
                    item['result'] = ArrayResult(result.mask, result.confidence,
                                                 result.overlay, result.features)
                    item['infer_s'] = share
        out = dict(batch)
        out['kind'] = kinds
        out['item'] = np.empty(len(items), dtype=object)
        out['item'][:] = [dumps(item) for item in items]
        announcement = np.empty(len(items), dtype=object)
        announcement[:] = [b''] * len(items)
        if len(items):
            announcement[0] = self.announcement
        out['announcement'] = announcement
        return out


def encode_outputs(batch: Dict[str, np.ndarray], config: Dict) -> Dict[str, np.ndarray]:
    """Replace each row's result by its serialized output messages (``frame_outputs``)."""
    prefixes = output_prefixes(config['image_topics'])
    encoded = np.empty(len(batch['item']), dtype=object)
    for row, data in enumerate(batch['item']):
        item = loads(data)
        if 'result' in item:
            clock = time.perf_counter()
            frame = item['frame']
            item['outputs'] = frame_outputs(frame, item.pop('result'), prefixes[frame.topic],
                                            config['confidence_encoding'])
            item['encode_s'] = time.perf_counter() - clock
            encoded[row] = dumps(item)
        else:
            encoded[row] = data
    out = dict(batch)
    out['item'] = encoded
    return out

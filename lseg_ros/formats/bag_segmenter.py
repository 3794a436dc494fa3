# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Segment the image topics of a rosbag2 bag into a new bag (the library of ``segment_bag``).

ROS-free (rosbags through :mod:`lseg_ros.formats.bag`): :class:`BagSegmenter` writes, for
each input topic T, the topics the /lseg node publishes (``T/lseg/mask``, ``confidence``,
``overlay``, ``features``) plus ``/lseg/labels`` and ``/lseg/text_embeddings``;
:func:`plan_jobs` pairs input and output bags, :func:`check_inputs` and
:func:`check_options` refuse bad inputs before the model loads, :class:`Progress` draws the
progress line and :func:`report` prints what one bag gave.  The command line is
``segment_bag``.
"""

import logging
from pathlib import Path
import queue
import sys
import threading
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from lseg_ros.core.errors import ImageError, ImageTooLargeError, LsegError
from lseg_ros.core.interrupts import deferred
from lseg_ros.formats import bag
from lseg_ros.formats.image_codec import DEFAULT_MAX_INPUT_PIXELS
from lseg_ros.formats.outputs import (CONFIDENCE_ENCODINGS, DEFAULT_CONFIDENCE_ENCODING,
                                      label_announcement, output_images)

LOG = logging.getLogger('segment_bag')

LABELS_TOPIC = '/lseg/labels'
EMBEDDINGS_TOPIC = '/lseg/text_embeddings'
DEFAULT_FEATURE_STRIDE = 4


def output_prefixes(topics: Sequence[str]) -> Dict[str, str]:
    """Map each input topic to the prefix of its output topics (``<topic>/lseg``).

    A trailing ``/compressed`` (image_transport's name) is dropped unless the raw topic is
    segmented too, so ``/cam/image_raw/compressed`` gives ``/cam/image_raw/lseg/mask``.
    """
    prefixes = {}
    for topic in topics:
        base = topic.rstrip('/')
        if base.endswith('/compressed') and base[:-len('/compressed')] not in topics:
            base = base[:-len('/compressed')]
        prefixes[topic] = base + '/lseg'
    return prefixes


class Progress:
    """A progress line on stderr (tqdm): frames done, percentage, frames/s and time left.

    On a terminal tqdm redraws the line in place (at most 10 times a second); otherwise (logs,
    CI) a line ``segment_bag: ...`` is printed at the first frame and then every 10 seconds.
    """

    _FORMAT = '[{bar:24}] {n}/{total} frames {percentage:5.1f} % {rate_noinv_fmt} ETA {remaining}'
    _FORMAT_NO_TOTAL = '{n} frames {rate_noinv_fmt}'

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total = max(0, int(total))
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.start = time.monotonic()
        self.done = 0
        self._last = float('-inf')
        self._bar = None
        if self.tty:
            from tqdm import tqdm
            self._bar = tqdm(file=self.stream, mininterval=0.1, leave=True, **self._meter())

    def _meter(self) -> dict:
        """Return the tqdm meter arguments (total, unit, bar characters, format)."""
        return {'total': self.total or None, 'unit': ' frames', 'ascii': '.#',
                'bar_format': self._FORMAT if self.total else self._FORMAT_NO_TOTAL}

    def rate(self) -> float:
        """Frames per second so far."""
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """Return the current progress text."""
        from tqdm import tqdm
        return tqdm.format_meter(self.done, elapsed=time.monotonic() - self.start,
                                 **self._meter())

    def update(self, count: int = 1) -> None:
        """Count ``count`` more frames and redraw when due."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.enabled:
            now = time.monotonic()
            if now - self._last >= 10.0:
                self._last = now
                self._draw()

    def _draw(self) -> None:
        self.stream.write('segment_bag: ' + self.line() + '\n')
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._draw()


class _Prefetch:
    """Run an iterator in a background thread, ``depth`` items ahead (bag read + decode).

    Items keep their order; an exception of the iterator is raised by the consumer at the
    position where it happened.  ``close`` stops and joins the thread.
    """

    _END = object()

    def __init__(self, iterable: Iterable, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterable,), daemon=True,
                                        name='segment_bag-reader')
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable) -> None:
        try:
            for item in iterable:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as error:  # noqa: B902 - handed to the consumer thread
            self._put((None, error))

    def __iter__(self):
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


def check_inputs(reader: bag.BagReader, image_topics: Sequence[str],
                 copy_topics: Sequence[str] = ()) -> None:
    """Check that the image topics and the topics to copy are in the bag."""
    reader.require_topics(image_topics)
    missing = [t for t in copy_topics if t not in reader.topics]
    if missing:
        raise bag.BagTopicError(f'--copy-topic {missing[0]!r} is not in bag {reader.path}; its '
                                f'topics are: {", ".join(sorted(reader.topics)) or "none"}')


def check_options(image_topics: Sequence[str], alpha: float = 0.5,
                  feature_stride: Optional[int] = None, max_frames: int = 0,
                  max_pixels: int = 0) -> None:
    """Refuse bad option values with a reason (before anything is loaded)."""
    if not image_topics:
        raise LsegError('no image topic given')
    if len(set(image_topics)) != len(image_topics):
        raise LsegError('an image topic is given twice')
    if not 0.0 <= alpha <= 1.0:
        raise LsegError(f'--alpha must be within 0..1, got {alpha}')
    if feature_stride is not None and not 1 <= feature_stride <= 64:
        raise LsegError(f'--feature-stride must be within 1..64, got {feature_stride}')
    if max_frames < 0:
        raise LsegError(f'--max-frames must be 0 or more, got {max_frames}')
    if max_pixels < 0:
        raise LsegError(f'--max-input-pixels must be 0 (no limit) or more, got {max_pixels}')


def decoded_messages(reader: bag.BagReader, image_topics: Sequence[str],
                     copy_topics: Sequence[str], max_frames: int,
                     max_pixels: int = DEFAULT_MAX_INPUT_PIXELS):
    """Yield ``(message, frame or ImageError or None)`` in bag order (runs in the prefetch)."""
    images = set(image_topics)
    wanted = list(image_topics) + [t for t in copy_topics if t not in images]
    for message, index in reader.indexed(reader.messages(wanted)):
        if message.topic not in images:
            yield message, None
        elif not max_frames or index < max_frames:
            try:
                yield message, bag.decode_frame(message, index, max_pixels)
            except ImageError as error:
                yield message, error


def frame_outputs(frame: bag.BagFrame, result, prefix: str,
                  confidence_encoding: str = DEFAULT_CONFIDENCE_ENCODING
                  ) -> List[Tuple[str, bytes]]:
    """Return the serialized output messages of one segmented frame as ``(topic, CDR bytes)``.

    The one place where a frame (its topic, header and channel order) and its
    :class:`~lseg_ros.core.pipeline.SegmentationResult` (or any object with ``mask``,
    ``confidence``, ``overlay`` and ``features``) become output messages: ``segment_bag``
    and ``segment_bags`` both write these bytes, so their bags are identical.
    """
    header = bag.make_header(frame.stamp, frame.frame_id)
    images = output_images(result, confidence_encoding, bgr=frame.overlay_encoding == 'bgr8')
    store = bag.typestore()
    return [(f'{prefix}/{name}',
             bytes(store.serialize_cdr(bag.image_message(array, encoding, header), bag.IMAGE)))
            for name, (array, encoding) in images.items()]


class OutputBag:
    """Write one output bag from the messages of its input bag, in bag order.

    What :class:`BagSegmenter` (one process) and the archive writer of ``segment_bags``
    share: topic registration, the labels written at the first message's bag time, copied
    topics, bad frames (raised, or counted with ``skip_bad_frames``) and the outputs of each
    frame, written all or none.  ``counts``, ``skipped`` and ``too_large`` are per input topic.
    """

    def __init__(self, writer: bag.BagWriter, image_topics: Sequence[str], request,
                 copy_topics: Sequence[str] = (), skip_bad_frames: bool = False,
                 confidence_encoding: str = DEFAULT_CONFIDENCE_ENCODING):
        self.writer = writer
        self.image_topics = list(image_topics)
        self.request = request
        self.copy_topics = list(copy_topics)
        self.skip_bad_frames = skip_bad_frames
        self.confidence_encoding = confidence_encoding
        self.prefixes = output_prefixes(self.image_topics)
        self.counts: Dict[str, int] = dict.fromkeys(self.image_topics, 0)
        self.skipped: Dict[str, int] = dict.fromkeys(self.image_topics, 0)
        self.too_large: Dict[str, int] = dict.fromkeys(self.image_topics, 0)   # of skipped
        self.labels_written = False

    def register(self, topics: Dict[str, bag.TopicInfo]) -> None:
        """Register the output topics (``topics``: the input bag's, for the copied ones)."""
        writer = self.writer
        writer.add_topic(LABELS_TOPIC, bag.STRING, qos='latched')
        writer.add_topic(EMBEDDINGS_TOPIC, bag.FLOAT32_MULTI_ARRAY, qos='latched')
        for topic in self.image_topics:
            prefix = self.prefixes[topic]
            writer.add_topic(prefix + '/mask', bag.IMAGE)
            if self.request.confidence:
                writer.add_topic(prefix + '/confidence', bag.IMAGE)
            if self.request.overlay:
                writer.add_topic(prefix + '/overlay', bag.IMAGE)
            if self.request.features_stride:
                writer.add_topic(prefix + '/features', bag.IMAGE)
        for topic in self.copy_topics:
            writer.add_raw_topic(topics[topic])

    def write_labels(self, announcement, timestamp: int) -> None:
        """Write ``/lseg/labels`` and ``/lseg/text_embeddings`` (a LabelAnnouncement)."""
        self.writer.write(LABELS_TOPIC, timestamp,
                          bag.string_message(announcement.json_text()))
        self.writer.write(EMBEDDINGS_TOPIC, timestamp, bag.float32_array_message(
            announcement.embeddings, ('labels', 'embedding')))
        self.labels_written = True

    def add(self, announcement, topic: str, timestamp: int, data: Optional[bytes] = None,
            frame=None, outputs: Sequence[Tuple[str, bytes]] = ()) -> None:
        """Write what one input message gives, in bag order.

        ``data``: its bytes when ``topic`` is copied; ``frame``: None (not an image to
        segment), an :class:`~lseg_ros.core.errors.ImageError` (a bad frame: raised, or
        skipped and counted) or the :class:`~lseg_ros.formats.bag.BagFrame` whose
        :func:`frame_outputs` are ``outputs``.
        """
        if not self.labels_written:
            self.write_labels(announcement, timestamp)
        if topic in self.copy_topics and data is not None:
            self.writer.write_raw(topic, timestamp, data)
        if isinstance(frame, ImageError):
            if not self.skip_bad_frames:
                raise frame
            self.skipped[topic] += 1
            if isinstance(frame, ImageTooLargeError):
                self.too_large[topic] += 1
            LOG.warning('skipped %s', frame)
        elif frame is not None:
            with deferred():                     # a frame's outputs are written all or none
                for name, payload in outputs:
                    self.writer.write_raw(name, frame.timestamp, payload)
                self.counts[frame.topic] += 1

    def finish(self, announcement, start_time: int) -> None:
        """Write the labels at ``start_time`` when no message came (an empty bag)."""
        if not self.labels_written:
            self.write_labels(announcement, start_time)


class BagSegmenter:
    """Segment the image topics of one input bag into an output bag (library use of the tool).

    ``run()`` returns the number of frames segmented per input topic.  The output bag is
    always closed properly, so on an error what was written before stays readable.
    """

    def __init__(self, pipeline, input_path, output_path,
                 image_topics: Sequence[str], storage: Optional[str] = None,
                 overwrite: bool = False, confidence: bool = True, overlay: bool = True,
                 alpha: float = 0.5, feature_stride: int = 0, copy_topics: Sequence[str] = (),
                 skip_bad_frames: bool = False, max_frames: int = 0, progress: bool = True,
                 protect: Sequence = (), max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
                 confidence_encoding: str = DEFAULT_CONFIDENCE_ENCODING):
        check_options(image_topics, alpha, feature_stride or None, max_frames, max_pixels)
        self.pipeline = pipeline
        self.input_path = input_path
        self.output_path = output_path
        self.image_topics = list(image_topics)
        self.storage = storage
        self.overwrite = overwrite
        self.request = output_request(confidence, overlay, alpha, feature_stride)
        check_confidence_encoding(confidence_encoding)
        self.confidence_encoding = confidence_encoding
        self.copy_topics = list(copy_topics)
        self.skip_bad_frames = skip_bad_frames
        self.max_frames = max(0, int(max_frames))
        self.max_pixels = int(max_pixels)
        self.progress_enabled = progress
        self.prefixes = output_prefixes(self.image_topics)
        self.counts: Dict[str, int] = dict.fromkeys(self.image_topics, 0)
        self.skipped: Dict[str, int] = dict.fromkeys(self.image_topics, 0)
        self.too_large: Dict[str, int] = dict.fromkeys(self.image_topics, 0)   # of skipped
        self.seconds = 0.0
        self.protect = [input_path] + list(protect)      # paths the output must not replace

    # ------------------------------------------------------------------------------ run
    def run(self, reader: Optional[bag.BagReader] = None) -> Dict[str, int]:
        """Segment the bag; see the class docstring."""
        if reader is None:
            with bag.BagReader(self.input_path) as opened:
                return self.run(opened)
        check_inputs(reader, self.image_topics, self.copy_topics)
        total = sum(min(reader.topics[t].count, self.max_frames or reader.topics[t].count)
                    for t in self.image_topics)
        progress = Progress(total, enabled=self.progress_enabled)
        writer = bag.BagWriter(self.output_path, self.storage or reader.storage,
                               overwrite=self.overwrite, protect=self.protect)
        output = OutputBag(writer, self.image_topics, self.request, self.copy_topics,
                           self.skip_bad_frames, self.confidence_encoding)
        # the counters are those of the output bag (one dict each, shared)
        self.counts, self.skipped, self.too_large = output.counts, output.skipped, \
            output.too_large
        announcement = label_announcement(self.pipeline.labels)
        start = time.monotonic()
        prefetch = None
        opened = False
        try:
            with writer:
                opened = True
                output.register(reader.topics)
                prefetch = _Prefetch(decoded_messages(reader, self.image_topics,
                                                      self.copy_topics, self.max_frames,
                                                      self.max_pixels))
                for message, frame in prefetch:
                    outputs = ()
                    if isinstance(frame, bag.BagFrame):
                        result = self.pipeline.segment(frame.rgb, self.request)
                        outputs = frame_outputs(frame, result, self.prefixes[frame.topic],
                                                self.confidence_encoding)
                    output.add(announcement, message.topic, message.timestamp, message.data,
                               frame, outputs)
                    if isinstance(frame, bag.BagFrame):
                        progress.update()
                output.finish(announcement, reader.start_time)
        except LsegError as error:
            if opened:
                done = sum(self.counts.values())
                raise type(error)(f'{error}; the {done} frame(s) segmented before it are kept '
                                  f'in {self.output_path}') from error
            raise
        finally:
            if prefetch is not None:
                prefetch.close()
            self.seconds = time.monotonic() - start
            progress.finish()
        return dict(self.counts)


def output_request(confidence: bool = True, overlay: bool = True, alpha: float = 0.5,
                   feature_stride: int = 0):
    """Return the pipeline's OutputRequest for the bag tools' output options."""
    from lseg_ros.core.pipeline import OutputRequest
    return OutputRequest(confidence=confidence, overlay=overlay, overlay_alpha=alpha,
                         features_stride=feature_stride)


def check_confidence_encoding(encoding: str) -> None:
    """Refuse an unknown --confidence-encoding."""
    if encoding not in CONFIDENCE_ENCODINGS:
        raise LsegError(f'--confidence-encoding must be one of '
                        f'{", ".join(CONFIDENCE_ENCODINGS)}, got {encoding!r}')


def plan_jobs(inputs: Sequence[str], output: str) -> List[Tuple[Path, Path]]:
    """Return ``(input bag, output bag)`` pairs.

    One input bag: written to ``output``.  Several (``--input`` repeated, or a folder of
    bags): each is written to ``output/<its name>``.
    """
    bags = [found for item in inputs for found in bag.find_bags(item)]
    if len(bags) == 1:
        return [(bags[0], Path(output))]
    jobs = []
    names = set()
    for source in bags:
        name = source.stem if source.is_file() else source.name
        if name in names:
            raise LsegError(f'two input bags are named {name!r}; give them separately')
        names.add(name)
        jobs.append((source, Path(output) / name))
    out = Path(output)
    if out.exists() and not out.is_dir() or bag.is_bag(out):
        raise LsegError(f'with several input bags --output must be a folder, not a bag: {out}')
    return jobs


def report(segmenter: 'BagSegmenter', counts: Dict[str, int], target) -> None:
    """Print what one bag gave."""
    total = sum(counts.values())
    rate = total / segmenter.seconds if segmenter.seconds > 0 else 0.0
    print(f'segmented {total} frame(s) of {segmenter.input_path} in {segmenter.seconds:.1f} s '
          f'({rate:.2f} frames/s)')
    for topic in segmenter.image_topics:
        skipped = segmenter.skipped[topic]
        large = segmenter.too_large[topic]
        notes = []
        if skipped - large:
            notes.append(f'{skipped - large} undecodable frame(s) skipped')
        if large:
            notes.append(f'{large} frame(s) above --max-input-pixels '
                         f'{segmenter.max_pixels} skipped')
        print(f'  {topic}: {counts[topic]} frame(s) -> {segmenter.prefixes[topic]}/*'
              + (f' ({", ".join(notes)})' if notes else ''))
    print(bag.describe(target))

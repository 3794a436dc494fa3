# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""rosbag2 bags (sqlite3 and mcap storage) for the bag tools, without ROS imports.

Built on the pure-Python ``rosbags`` library, so ``segment_bag`` and ``make_sample_bag`` work
where no ROS 2 installation (and no rosbag2) is present:

* :class:`BagReader` opens a bag directory (``metadata.yaml`` + storage files) or a single
  ``.db3`` / ``.mcap`` file, lists its topics, yields raw messages in bag-time order and
  decodes ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` messages to RGB
  (:meth:`BagReader.frames`) with :mod:`lseg_ros.formats.image_codec`.
* :class:`BagWriter` writes a bag with the message definitions and type hashes registered
  (rosbag2 metadata version 8, QoS profiles recorded), so ``ros2 bag info`` and
  ``ros2 bag play`` read it; it is closed properly on errors too, so what was written before
  a failure stays a valid bag.

Every failure is a :class:`BagError` (an :class:`~lseg_ros.core.errors.LsegError`) with a
message that says what is wrong and what to do; frames that cannot be decoded raise the
:class:`~lseg_ros.core.errors.ImageError` of the codec, prefixed with where the frame is.

MCAP files that end early (a recording that was killed before ``ros2 bag record`` wrote the
index and footer) are read up to the last complete record with the ``mcap`` package's stream
reader; iterating past that point raises :class:`CorruptBagError`, so tools can keep what
they got and still report the damage.
"""

from dataclasses import dataclass, field
import functools
import logging
import os
from pathlib import Path
import shutil
import struct
import tempfile
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from lseg_ros.core.errors import ImageError, LsegError
from lseg_ros.core.interrupts import deferred
from lseg_ros.formats.image_codec import (decode_compressed, decode_image,
                                          DEFAULT_MAX_INPUT_PIXELS, image_fields,
                                          source_is_bgr as codec_source_is_bgr)

LOG = logging.getLogger(__name__)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
STRING = 'std_msgs/msg/String'
FLOAT32_MULTI_ARRAY = 'std_msgs/msg/Float32MultiArray'
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = ('sqlite3', 'mcap')
#: rosbag2 metadata version written: 8 stores QoS policies as integers, which every
#: rosbag2 since Humble parses (version 9's policy names are Jazzy and later only).
BAG_VERSION = 8
_SUFFIX = {'sqlite3': '.db3', 'mcap': '.mcap'}
_MCAP_MAGIC = b'\x89MCAP0\r\n'


class BagError(LsegError):
    """A bag cannot be opened, read or written."""


class BagTopicError(BagError):
    """A requested topic is not in the bag."""


class UnsupportedMessageError(BagError):
    """A topic has a message type the tool cannot use."""


class CorruptBagError(BagError):
    """A bag file is corrupt or truncated."""


class BagExistsError(BagError):
    """The output bag exists and overwriting was not asked for."""


@functools.lru_cache(maxsize=1)
def typestore():
    """Return the rosbags type store of ROS 2 (message definitions of Humble to Kilted)."""
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_JAZZY)


def _qos(reliable: bool = True, transient_local: bool = False, depth: int = 10):
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth,
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.SYSTEM_DEFAULT, zero, False)


def offered_qos(kind: str):
    """Return the QoS profile recorded for a topic: ``reliable``, ``latched`` or ``sensor_data``.

    ``ros2 bag play`` offers the recorded profile (reliability and durability) when it
    replays the topic; ``latched`` (reliable + transient local) lets late subscribers get the
    last message, as the node's ``~/labels``.
    """
    if kind == 'reliable':
        return _qos()
    if kind == 'latched':
        return _qos(transient_local=True, depth=1)
    if kind == 'sensor_data':
        return _qos(reliable=False, depth=5)
    raise ValueError(f'unknown QoS kind {kind!r}')


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag."""

    name: str
    msgtype: str
    count: int
    offered_qos: tuple = ()
    msgdef: str = ''
    digest: str = ''


@dataclass(frozen=True)
class BagMessage:
    """One serialized (CDR) message with its bag (record) time in nanoseconds."""

    topic: str
    msgtype: str
    timestamp: int
    data: bytes


@dataclass
class BagFrame:
    """One image message decoded to RGB, with where it came from."""

    topic: str
    msgtype: str
    index: int                 # 0-based position of the frame within its topic
    timestamp: int             # bag (record) time, ns
    stamp: Tuple[int, int]     # header stamp (sec, nanosec)
    frame_id: str
    encoding: str              # Image encoding, or CompressedImage format
    rgb: np.ndarray = field(repr=False)

    @property
    def compressed(self) -> bool:
        """Whether the frame came from a CompressedImage."""
        return self.msgtype == COMPRESSED_IMAGE

    @property
    def overlay_encoding(self) -> str:
        """``bgr8`` when the camera's channel order is BGR, else ``rgb8``."""
        return 'bgr8' if source_is_bgr(self.msgtype, self.encoding) else 'rgb8'

    def where(self) -> str:
        """Describe the frame's position for error messages."""
        return f'{self.topic} frame {self.index} (bag time {self.timestamp} ns)'


def source_is_bgr(msgtype: str, encoding: str) -> bool:
    """Whether a bag image's original channel order is BGR (see image_codec.source_is_bgr)."""
    return codec_source_is_bgr(encoding, msgtype == COMPRESSED_IMAGE)


def storage_of(path) -> str:
    """Return the storage (``sqlite3`` or ``mcap``) of an existing bag directory or file."""
    path = Path(path)
    if path.is_file():
        for storage, suffix in _SUFFIX.items():
            if path.suffix == suffix:
                return storage
        raise BagError(f'{path} is not a rosbag2 storage file (.db3 or .mcap)')
    meta = path / 'metadata.yaml'
    if meta.is_file():
        for line in meta.read_text(errors='replace').splitlines():
            if line.strip().startswith('storage_identifier:'):
                value = line.split(':', 1)[1].strip()
                if value in STORAGES:
                    return value
    files = _storage_files(path)
    if files:
        return storage_of(files[0])
    raise BagError(f'{path} is not a rosbag2 bag (no metadata.yaml, .db3 or .mcap file)')


def is_bag(path) -> bool:
    """Whether ``path`` is a bag: a .db3/.mcap file or a directory with metadata.yaml."""
    path = Path(path)
    if path.is_file():
        return path.suffix in ('.db3', '.mcap')
    return path.is_dir() and (path / 'metadata.yaml').is_file()


def find_bags(path) -> List[Path]:
    """Return the bags at ``path``: the bag itself, or the bags in a folder of bags.

    A folder is a bag when it has ``metadata.yaml``, or no sub-bags and exactly one storage
    file (an interrupted recording); otherwise its bag directories and .db3/.mcap files are
    returned in name order.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'input bag not found: {path}')
    if path.is_file() or is_bag(path):
        return [path]
    children = sorted(p for p in path.iterdir() if is_bag(p))
    if not any(p.is_dir() for p in children) and len(children) == 1:
        return [path]
    if not children:
        raise BagError(f'{path} is neither a rosbag2 bag nor a folder of bags (no '
                       'metadata.yaml, .db3 or .mcap file in it)')
    return children


def _storage_files(directory: Path) -> List[Path]:
    return sorted((p for p in directory.iterdir() if p.suffix in ('.db3', '.mcap')),
                  key=lambda p: (len(p.name), p.name))


def _reader_error_types():
    from rosbags.rosbag2 import ReaderError
    errors = [ReaderError, OSError, struct.error, ValueError, KeyError, IndexError, TypeError,
              AssertionError, EOFError]
    try:
        import apsw
        errors.append(apsw.Error)
    except ImportError:    # pragma: no cover - rosbags depends on apsw
        pass
    return tuple(errors)


# ------------------------------------------------------------------------------- reading
class BagReader:
    """Read a rosbag2 bag (directory or single ``.db3`` / ``.mcap`` file) with rosbags.

    Use as a context manager.  A directory without ``metadata.yaml`` (a recording that was
    interrupted) is read through its single storage file.  An MCAP file without its footer
    or index is read record by record (``mcap``'s stream reader) up to its last complete record.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'input bag not found: {self.path}')
        self.storage = storage_of(self.path)
        self.truncated: Optional[str] = None    # why the tolerant MCAP scanner is used
        self._reader = None
        self._scanner: Optional[_McapScanner] = None
        self._topics: Dict[str, TopicInfo] = {}

    # ---------------------------------------------------------------------- open / close
    def open_bag(self) -> 'BagReader':
        """Open the bag; raises :class:`CorruptBagError` when it cannot be read."""
        from rosbags.rosbag2 import Reader
        target = self.path
        if target.is_dir() and not (target / 'metadata.yaml').is_file():
            files = _storage_files(target)
            if len(files) != 1:
                raise BagError(
                    f'{target} has no metadata.yaml and {len(files)} storage files; '
                    'run `ros2 bag reindex` on it (sqlite3) or give one .db3/.mcap file')
            LOG.warning('%s has no metadata.yaml (interrupted recording?); reading %s',
                        target, files[0].name)
            target = files[0]
        try:
            reader = Reader(target)
            reader.open()
        except FileNotFoundError as error:
            raise BagError(f'cannot open bag {self.path}: {error}') from error
        except _reader_error_types() as error:
            mcap = self._mcap_files(target)
            if not mcap:
                raise CorruptBagError(
                    f'cannot open bag {self.path}: {error} (the bag is corrupt or truncated)'
                ) from error
            self._scanner = _McapScanner(mcap)
            self._scanner.scan_topics()
            reason = str(error).rstrip('.')
            if any(word in reason.lower() for word in ('end magic', 'footer', 'summary')):
                reason += (' (no MCAP footer or index: the recording was interrupted or the '
                           'file is truncated)')
            self.truncated = reason
            LOG.warning('%s: %s; reading the complete records before the damage',
                        self.path, self.truncated)
        else:
            self._reader = reader
        self._topics = self._read_topics()
        return self

    def _mcap_files(self, target: Path) -> List[Path]:
        if target.is_file():
            return [target] if target.suffix == '.mcap' else []
        if self.storage != 'mcap':
            return []
        return [p for p in _storage_files(target) if p.suffix == '.mcap']

    def close(self) -> None:
        """Close the bag."""
        reader, self._reader = self._reader, None
        self._scanner = None
        if reader is not None:
            reader.close()

    def __enter__(self) -> 'BagReader':
        return self.open_bag()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------------- topics
    def _read_topics(self) -> Dict[str, TopicInfo]:
        if self._scanner is not None:
            return dict(self._scanner.topics)
        topics = {}
        for name, info in self._reader.topics.items():
            connections = info.connections
            msgtype = info.msgtype or connections[0].msgtype
            qos = tuple(q for c in connections for q in c.ext.offered_qos_profiles)
            topics[name] = TopicInfo(name, msgtype, info.msgcount, qos,
                                     info.msgdef.data if info.msgdef else '',
                                     connections[0].digest or '')
        return topics

    @property
    def topics(self) -> Dict[str, TopicInfo]:
        """All topics of the bag by name."""
        return self._topics

    @property
    def image_topics(self) -> List[str]:
        """Names of the Image and CompressedImage topics."""
        return sorted(n for n, t in self._topics.items() if t.msgtype in IMAGE_TYPES)

    @property
    def start_time(self) -> int:
        """Bag time of the first message (ns); 0 for an empty bag."""
        if self._scanner is not None:
            return self._scanner.start_time
        return self._reader.start_time if self._reader.message_count else 0

    def require_topics(self, topics: Sequence[str], msgtypes: Sequence[str] = IMAGE_TYPES
                       ) -> None:
        """Check that ``topics`` exist with one of ``msgtypes``; raise a clear error if not."""
        for topic in topics:
            info = self._topics.get(topic)
            if info is None:
                images = self.image_topics
                found = (f'its image topics are: {", ".join(images)}' if images else
                         'it has no Image or CompressedImage topics (topics: '
                         + (', '.join(sorted(self._topics)) or 'none') + ')')
                damaged = (f' (only the readable part of the damaged bag was searched: '
                           f'{self.truncated})' if self.truncated else '')
                raise BagTopicError(f'topic {topic!r} is not in bag {self.path}; {found}'
                                    + damaged)
            if info.msgtype not in msgtypes:
                raise UnsupportedMessageError(
                    f'topic {topic!r} in {self.path} has type {info.msgtype}; expected '
                    + ' or '.join(msgtypes))

    # ------------------------------------------------------------------------ messages
    def messages(self, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
        """Yield the serialized messages of ``topics`` (all when None) in bag-time order.

        A read failure in the middle of the bag raises :class:`CorruptBagError` after the
        messages before it were yielded.
        """
        wanted = set(self._topics if topics is None else topics)
        count = 0
        last = None
        if self._scanner is not None:
            source = self._scanner.messages(wanted)
        else:
            connections = [c for c in self._reader.connections if c.topic in wanted]
            if not connections:
                return
            source = ((c.topic, c.msgtype, t, d)
                      for c, t, d in self._reader.messages(connections=connections))
        errors = _reader_error_types()
        while True:
            try:
                topic, msgtype, timestamp, data = next(source)
            except StopIteration:
                return
            except CorruptBagError as error:
                raise CorruptBagError(f'{error} (after {count} messages)') from error
            except errors as error:
                after = f'after {count} messages' + (f', bag time {last} ns' if last else '')
                raise CorruptBagError(f'cannot read {self.path} {after}: {error} '
                                      '(the bag is corrupt or truncated)') from error
            count += 1
            last = timestamp
            yield BagMessage(topic, msgtype, timestamp, bytes(data))

    def frames(self, topics: Sequence[str],
               max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> Iterator[BagFrame]:
        """Yield the image messages of ``topics`` decoded to RGB, in bag-time order.

        Raises :class:`~lseg_ros.core.errors.ImageError` (or its subclasses
        ``UnsupportedEncodingError``, ``ImageTooLargeError`` above ``max_pixels``) for a
        frame that cannot be decoded; callers that want to skip bad frames iterate
        :meth:`messages` and call :func:`decode_frame` instead.
        """
        for message, index in self.indexed(self.messages(topics)):
            yield decode_frame(message, index, max_pixels)

    @staticmethod
    def indexed(messages: Iterable[BagMessage]) -> Iterator[Tuple[BagMessage, int]]:
        """Pair each message with its 0-based index within its topic."""
        counters: Dict[str, int] = {}
        for message in messages:
            index = counters.get(message.topic, 0)
            counters[message.topic] = index + 1
            yield message, index


def read_image_frames(path, topic: Optional[str] = None, count: int = 0) -> List[np.ndarray]:
    """Return the first ``count`` (0: all) frames of an image topic of a bag as RGB arrays.

    ``topic`` may be omitted when the bag has a single Image or CompressedImage topic.
    """
    with BagReader(path) as reader:
        if not topic:
            images = reader.image_topics
            if len(images) != 1:
                raise BagTopicError(
                    f'bag {path} has {len(images)} image topics; name one of: '
                    + (', '.join(images) or 'none'))
            topic = images[0]
        reader.require_topics([topic])
        frames = []
        for frame in reader.frames([topic]):
            frames.append(frame.rgb)
            if count and len(frames) >= count:
                break
    if not frames:
        raise BagError(f'topic {topic} of bag {path} has no messages')
    return frames


def deserialize(message: BagMessage):
    """Return the rosbags message object of a serialized message."""
    try:
        return typestore().deserialize_cdr(message.data, message.msgtype)
    except KeyError as error:
        raise UnsupportedMessageError(
            f'message type {message.msgtype} of {message.topic} is not known') from error
    except Exception as error:      # any failure of the CDR decoder means broken bytes
        raise CorruptBagError(
            f'a {message.msgtype} message on {message.topic} at bag time {message.timestamp} '
            f'ns cannot be deserialized ({type(error).__name__}: {error}); the bag is corrupt'
        ) from error


def decode_frame(message: BagMessage, index: int = 0,
                 max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> BagFrame:
    """Decode an Image or CompressedImage message to a :class:`BagFrame`.

    An image declaring more than ``max_pixels`` pixels (0: no limit) raises
    :class:`~lseg_ros.core.errors.ImageTooLargeError` before it is decoded.
    """
    if message.msgtype not in IMAGE_TYPES:
        raise UnsupportedMessageError(
            f'{message.topic} has type {message.msgtype}, not an image type')
    msg = deserialize(message)
    frame = BagFrame(message.topic, message.msgtype, index, message.timestamp,
                     (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)),
                     msg.header.frame_id, '', np.empty((0, 0, 3), np.uint8))
    try:
        if message.msgtype == IMAGE:
            frame.encoding = msg.encoding
            frame.rgb = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                     bool(msg.is_bigendian), max_pixels=max_pixels)
        else:
            frame.encoding = msg.format
            frame.rgb = decode_compressed(msg.format, msg.data, max_pixels=max_pixels)
    except ImageError as error:
        raise type(error)(f'{frame.where()}: {error}') from error
    if not frame.rgb.flags.writeable:          # a view of the message bytes (rgb8)
        frame.rgb = frame.rgb.copy()
    return frame


class _McapScanner:
    """Read the records of MCAP files front to back, stopping at the first damaged one.

    Used for files rosbags cannot open (no footer or summary: an interrupted recording).
    Records are read one at a time by the ``mcap`` package's :class:`StreamReader` (chunks
    decompressed as they come), so what precedes the damage is read and the damage itself
    is a :class:`CorruptBagError`.
    """

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)
        self.topics: Dict[str, TopicInfo] = {}
        self.start_time = 0

    def scan_topics(self) -> None:
        """Collect topics, types and counts of the readable part."""
        counts: Dict[str, int] = {}
        channels: Dict[Tuple[int, int], Tuple[str, str, tuple, str]] = {}
        start = None
        for path in self.files:
            with open(path, 'rb') as handle:
                if handle.read(8) != _MCAP_MAGIC:
                    raise CorruptBagError(f'{path} is not an MCAP file (bad magic)')
        try:
            for file_index, path in enumerate(self.files):
                for kind, record in self._records(path):
                    if kind == 'channel':
                        channels[(file_index, record[0])] = record[1:]
                    elif kind == 'message':
                        topic = channels.get((file_index, record[0]))
                        if topic is not None:
                            counts[topic[0]] = counts.get(topic[0], 0) + 1
                            start = record[1] if start is None else min(start, record[1])
        except CorruptBagError:
            pass
        for topic, msgtype, qos, msgdef in channels.values():
            self.topics[topic] = TopicInfo(topic, msgtype, counts.get(topic, 0), qos, msgdef)
        self.start_time = start or 0

    def messages(self, wanted) -> Iterator[Tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, timestamp, data)`` of the wanted topics in file order."""
        for path in self.files:
            channels = {}
            for kind, record in self._records(path):
                if kind == 'channel':
                    channels[record[0]] = record[1:]
                elif kind == 'message':
                    channel = channels.get(record[0])
                    if channel is not None and channel[0] in wanted:
                        yield channel[0], channel[1], record[1], record[2]

    @staticmethod
    def _records(path: Path):
        """Yield the channels and messages of one file, reading it record by record."""
        from mcap.exceptions import EndOfFile, RecordLengthLimitExceeded
        from mcap.records import Channel, DataEnd, Message, Schema
        from mcap.stream_reader import StreamReader
        schemas: Dict[int, Tuple[str, str]] = {}
        with open(path, 'rb') as handle:
            if handle.read(8) != _MCAP_MAGIC:
                raise CorruptBagError(f'{path} is not an MCAP file (bad magic)')
            handle.seek(0)
            size = os.fstat(handle.fileno()).st_size
            # no record is longer than the file: a longer one is cut off (or a damaged length)
            records = StreamReader(handle, record_size_limit=size).records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    return
                except (EndOfFile, RecordLengthLimitExceeded):
                    raise CorruptBagError(f'{path} is truncated at byte {size}: its last record '
                                          'is incomplete') from None
                except Exception as error:     # any other failure of the parser: bad bytes
                    raise CorruptBagError(f'{path}: damaged record before byte {handle.tell()}: '
                                          f'{type(error).__name__}: {error}') from error
                if isinstance(record, DataEnd):
                    return
                if isinstance(record, Schema):
                    schemas[record.id] = (record.name, record.data.decode(errors='replace'))
                elif isinstance(record, Channel):
                    name, text = schemas.get(record.schema_id, ('', ''))
                    yield 'channel', (record.id, record.topic, name,
                                      _metadata_qos(record.metadata), text)
                elif isinstance(record, Message):
                    yield 'message', (record.channel_id, record.log_time, record.data)


def _metadata_qos(metadata) -> tuple:
    text = metadata.get('offered_qos_profiles', '')
    if not text:
        return ()
    try:
        from rosbags.rosbag2.metadata import parse_qos
        return tuple(parse_qos(text))
    except Exception:      # QoS is informative only; a bad string must not stop reading
        return ()


# ------------------------------------------------------------------------------- writing
def check_output(path, overwrite: bool = False, protect: Sequence = ()) -> bool:
    """Check that a bag can be written at ``path``; return whether an old one must go first.

    Raises :class:`BagExistsError` when ``path`` exists and ``overwrite`` is false, and
    :class:`BagError` when it is, contains or lies inside one of ``protect`` (e.g. the input
    bag), when its folder cannot be created or written (checked with a temporary file, so
    before anything slow runs) or, with ``overwrite``, when it is not something this tool may
    delete (only bag directories are).
    """
    path = Path(path)
    resolved = path.resolve()
    for other in protect:
        other = Path(other).resolve()
        if resolved == other or resolved in other.parents:
            raise BagError(f'output {path} would overwrite the input bag {other}')
        if other in resolved.parents:
            raise BagError(f'output {path} is inside the input bag {other}; write it '
                           'outside the input bag')
    check_writable(path)
    if not path.exists() and not path.is_symlink():
        return False
    if not overwrite:
        raise BagExistsError(f'output {path} exists; pass --overwrite to replace it')
    if not path.is_dir() or path.is_symlink():
        raise BagError(f'refusing to replace {path}: it is not a bag directory')
    bag_files = ('.db3', '.mcap', '.zstd', '.db3-shm', '.db3-wal', '.db3-journal')
    if any(e.is_dir() or (e.suffix not in bag_files and e.name != 'metadata.yaml')
           for e in path.iterdir()):
        raise BagError(f'refusing to replace {path}: it is not a rosbag2 bag directory '
                       '(it holds other files)')
    return True


def check_writable(path) -> None:
    """Check that ``path`` can be created: its nearest existing folder takes a new file.

    Nothing is left behind (the probe file is removed, no folder is created).  Raises
    :class:`BagError` naming the folder when it is not a folder or cannot be written.
    """
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(0, 'not a folder')
        handle, probe = tempfile.mkstemp(prefix='.lseg_ros_write_test_', dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise BagError(f'cannot write {path}: {folder} cannot be written '
                       f'({error.strerror or error})') from None


def prepare_output(path, overwrite: bool = False, protect: Sequence = ()) -> Path:
    """Make way for a new bag at ``path`` (:func:`check_output`, then delete an old bag)."""
    if check_output(path, overwrite, protect):
        shutil.rmtree(path)
    return Path(path)


class BagWriter:
    """Write a rosbag2 bag (a directory with ``metadata.yaml``) with rosbags.

    ``add_topic`` registers a topic with its message definition and type hash (from the
    ROS 2 type store) and the QoS profile that ``ros2 bag play`` will offer; ``write``
    serializes a rosbags message.  Use as a context manager: the bag is closed (metadata and
    index written) also when the block raises, so a partial output stays readable.  A
    SIGINT/SIGTERM (see :mod:`lseg_ros.core.interrupts`) never splits a message or the
    closing: it takes effect after them.
    """

    def __init__(self, path, storage: str = 'sqlite3', overwrite: bool = False,
                 protect: Sequence = ()):
        if storage not in STORAGES:
            raise BagError(f'unknown storage {storage!r}; use one of {", ".join(STORAGES)}')
        self.path = Path(path)
        self.storage = storage
        self.overwrite = overwrite
        self.protect = tuple(protect)
        self._writer = None
        self._connections: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}

    def open_bag(self) -> 'BagWriter':
        """Create the bag directory and its storage file."""
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        prepare_output(self.path, self.overwrite, self.protect)
        plugin = StoragePlugin.MCAP if self.storage == 'mcap' else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
            self._writer.open()
        except (WriterError, OSError) as error:
            self._writer = None
            raise BagError(f'cannot create bag {self.path}: {error}') from error
        return self

    def add_topic(self, topic: str, msgtype: str, qos: str = 'reliable') -> None:
        """Register ``topic`` with a type of the ROS 2 type store and a QoS kind."""
        self._add(topic, msgtype, [offered_qos(qos)])

    def add_raw_topic(self, info: TopicInfo) -> None:
        """Register a topic copied from another bag (its definition and offered QoS)."""
        if info.msgdef and info.digest:
            self._add(info.name, info.msgtype, list(info.offered_qos), info.msgdef, info.digest)
        else:
            self._add(info.name, info.msgtype, list(info.offered_qos))

    def _add(self, topic, msgtype, qos, msgdef=None, digest=None) -> None:
        if self._writer is None:
            raise BagError('the bag is not open')
        if topic in self._connections:
            raise BagError(f'topic {topic} registered twice in {self.path}')
        try:
            if msgdef is None:
                connection = self._writer.add_connection(
                    topic, msgtype, typestore=typestore(), offered_qos_profiles=qos)
            else:
                connection = self._writer.add_connection(
                    topic, msgtype, msgdef=msgdef, rihs01=digest, offered_qos_profiles=qos)
        except KeyError as error:
            raise UnsupportedMessageError(
                f'cannot write {topic}: message type {msgtype} is not known') from error
        self._connections[topic] = connection
        self.counts[topic] = 0

    def write(self, topic: str, timestamp: int, msg) -> None:
        """Serialize a rosbags message and write it at bag time ``timestamp`` (ns)."""
        connection = self._connections[topic]
        self.write_raw(topic, timestamp, typestore().serialize_cdr(msg, connection.msgtype))

    def write_raw(self, topic: str, timestamp: int, data) -> None:
        """Write serialized (CDR) bytes at bag time ``timestamp`` (ns)."""
        with deferred():
            self._writer.write(self._connections[topic], int(timestamp), data)
            self.counts[topic] += 1

    def close(self) -> None:
        """Write the index and metadata.yaml and close the storage."""
        with deferred():
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    def __enter__(self) -> 'BagWriter':
        return self.open_bag()

    def __exit__(self, *exc) -> None:
        self.close()


# -------------------------------------------------------------------------- message makers
def make_header(stamp: Tuple[int, int], frame_id: str):
    """Return a std_msgs/Header (rosbags type) with ``stamp`` (sec, nanosec)."""
    types = typestore().types
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=int(stamp[0]), nanosec=int(stamp[1])),
        frame_id=frame_id)


def image_message(array: np.ndarray, encoding: str, header):
    """Return a sensor_msgs/Image (rosbags type) holding ``array`` in ``encoding``."""
    encoding, height, width, step, data = image_fields(array, encoding)
    return typestore().types[IMAGE](
        header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
        step=step, data=np.frombuffer(data, np.uint8))


def compressed_message(data: bytes, fmt: str, header):
    """Return a sensor_msgs/CompressedImage (rosbags type)."""
    return typestore().types[COMPRESSED_IMAGE](
        header=header, format=fmt, data=np.frombuffer(data, np.uint8))


def string_message(text: str):
    """Return a std_msgs/String (rosbags type)."""
    return typestore().types[STRING](data=text)


def float32_array_message(array: np.ndarray, labels: Sequence[str]):
    """Return a std_msgs/Float32MultiArray (rosbags type) of a 2-D array, dims ``labels``."""
    types = typestore().types
    rows, cols = array.shape
    dimension = types['std_msgs/msg/MultiArrayDimension']
    dims = [dimension(label=labels[0], size=rows, stride=rows * cols),
            dimension(label=labels[1], size=cols, stride=cols)]
    layout = types['std_msgs/msg/MultiArrayLayout'](dim=dims, data_offset=0)
    return types[FLOAT32_MULTI_ARRAY](
        layout=layout, data=np.ascontiguousarray(array, np.float32).ravel())


def camera_info_message(header, height: int, width: int, fx: float, fy: float, cx: float,
                        cy: float):
    """Return a distortion-free pinhole sensor_msgs/CameraInfo (rosbags type)."""
    types = typestore().types
    roi = types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64)
    p = np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64)
    return types[CAMERA_INFO](
        header=header, height=height, width=width, distortion_model='plumb_bob',
        d=np.zeros(5, np.float64), k=k, r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0,
        roi=roi)


def bag_size(path) -> int:
    """Total size in bytes of a bag directory or file."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def describe(path) -> str:
    """Return a short ``ros2 bag info``-like summary of a bag."""
    with BagReader(path) as reader:
        lines = [f'{path} ({reader.storage}, {bag_size(path) / 1e6:.1f} MB)']
        for name in sorted(reader.topics):
            info = reader.topics[name]
            lines.append(f'  {name}  {info.msgtype}  {info.count} messages')
    return '\n'.join(lines)

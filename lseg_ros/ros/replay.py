# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Replay a rosbag2 bag into the ROS graph the way ``ros2 bag play`` does (rosbags + rclpy).

For tests, the bench and machines without rosbag2 (``lseg_replay`` runs anywhere rclpy does):

* messages are published at their recorded bag times (scaled by ``rate``), in bag order,
  as the recorded serialized bytes (like rosbag2's player: no conversion, any message type
  whose Python package is installed);
* with ``clock`` a ``rosgraph_msgs/Clock`` is published on ``/clock`` (best effort, depth 1:
  rclcpp's ``ClockQoS``, what ``ros2 bag play --clock`` uses) at ``clock_hz`` and, in
  addition, with each message's bag time just before the message goes out, so nodes with
  ``use_sim_time`` see the bag time of every message they receive;
* QoS: ``recorded`` (the default) does what ``ros2 bag play`` does: offer the reliability
  and durability recorded for the topic when all its recorded publishers agreed, else
  reliable + volatile, history keep-last 10.  ``reliable``, ``sensor_data`` (best effort,
  keep last 5) and ``system_default`` force one profile for all topics.

``restamp`` replaces header stamps with the player's clock (live-camera style for latency
measurements); then messages are deserialized and published as rclpy messages.

The command line is ``lseg_replay``.
"""

import importlib
import logging
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from lseg_ros.core.errors import LsegError
from lseg_ros.formats import bag

LOG = logging.getLogger(__name__)

QOS_CHOICES = ('recorded', 'reliable', 'sensor_data', 'system_default')
DEFAULT_CLOCK_HZ = 40.0          # ros2 bag play --clock without a value


def message_class(msgtype: str):
    """Return the rclpy message class of ``pkg/msg/Name`` (None when not installed)."""
    parts = msgtype.split('/')
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f'{parts[0]}.{parts[1]}'), parts[2])
    except (ImportError, AttributeError):
        return None


def publisher_qos(policy: str, offered: Sequence = ()):
    """Return the rclpy QoSProfile a topic is replayed with (see the module docstring)."""
    from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data,
                           qos_profile_system_default, QoSProfile, ReliabilityPolicy)
    if policy == 'sensor_data':
        return qos_profile_sensor_data
    if policy == 'system_default':
        return qos_profile_system_default
    if policy not in ('recorded', 'reliable'):
        raise LsegError(f'unknown QoS policy {policy!r}; use one of {", ".join(QOS_CHOICES)}')
    reliability = ReliabilityPolicy.RELIABLE
    durability = DurabilityPolicy.VOLATILE
    if policy == 'recorded' and offered:
        kinds = {(q.reliability.name, q.durability.name) for q in offered}
        if len(kinds) == 1:
            rel, dur = kinds.pop()
            if rel == 'BEST_EFFORT':
                reliability = ReliabilityPolicy.BEST_EFFORT
            if dur == 'TRANSIENT_LOCAL':
                durability = DurabilityPolicy.TRANSIENT_LOCAL
        else:
            LOG.warning('recorded publishers offered different QoS profiles; replaying with '
                        'reliable + volatile (as ros2 bag play does)')
    return QoSProfile(depth=10, reliability=reliability, durability=durability)


def clock_qos():
    """Return the QoS of ``/clock``: best effort, keep last 1 (rclcpp ``ClockQoS``)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def parse_remaps(items: Sequence[str]) -> Dict[str, str]:
    """Parse ``from:=to`` topic remappings (``ros2 bag play --remap`` syntax)."""
    remap = {}
    for item in items:
        if ':=' not in item:
            raise LsegError(f'remapping {item!r} is not of the form /from:=/to')
        source, target = (part.strip() for part in item.split(':=', 1))
        if not source or not target:
            raise LsegError(f'remapping {item!r} has an empty topic')
        remap[source] = target
    return remap


def iter_ros_messages(bag_path, topics: Optional[Sequence[str]] = None
                      ) -> Iterator[Tuple[str, int, object]]:
    """Yield ``(topic, bag time ns, rclpy message)`` of a bag, deserialized by rclpy."""
    from rclpy.serialization import deserialize_message
    with bag.BagReader(bag_path) as reader:
        names = list(topics) if topics else sorted(reader.topics)
        missing = [n for n in names if n not in reader.topics]
        if missing:
            raise bag.BagTopicError(f'topic {missing[0]!r} is not in bag {bag_path}; its '
                                    f'topics are: {", ".join(sorted(reader.topics)) or "none"}')
        classes = {}
        for name in names:
            cls = message_class(reader.topics[name].msgtype)
            if cls is None:
                raise bag.UnsupportedMessageError(
                    f'{name}: message type {reader.topics[name].msgtype} is not installed')
            classes[name] = cls
        for message in reader.messages(names):
            yield message.topic, message.timestamp, deserialize_message(
                message.data, classes[message.topic])


class BagPlayer:
    """Publish a bag's messages with rclpy at their recorded timing (see the module docstring).

    ``node`` is any rclpy node; the player adds its publishers to it.  ``topics`` selects
    topics (all by default; topics whose message package is not installed are skipped with
    a warning unless asked for).  ``play()`` blocks until the bag is played (``loop``: until
    :meth:`stop`), and returns the number of messages published.  Nothing needs to spin.
    """

    def __init__(self, node, bag_path, topics: Optional[Sequence[str]] = None,
                 rate: float = 1.0, clock: bool = False, clock_hz: float = DEFAULT_CLOCK_HZ,
                 qos: str = 'recorded', remap: Optional[Dict[str, str]] = None,
                 loop: bool = False, restamp: bool = False):
        if not rate > 0.0:
            raise LsegError(f'rate must be above 0, got {rate}')
        if clock and not clock_hz > 0.0:
            raise LsegError(f'clock frequency must be above 0 Hz, got {clock_hz}')
        if qos not in QOS_CHOICES:
            raise LsegError(f'unknown QoS {qos!r}; use one of {", ".join(QOS_CHOICES)}')
        self.node = node
        self.rate = float(rate)
        self.clock = clock
        self.clock_period = 1.0 / clock_hz if clock else 0.0
        self.loop = loop
        self.restamp = restamp
        self.remap = dict(remap or {})
        self.published: Dict[str, int] = {}
        self.last_clock_ns: Optional[int] = None
        self._stop = threading.Event()
        self._publishers: Dict[str, object] = {}
        self._classes: Dict[str, object] = {}
        self._clock_pub = None
        self.reader = bag.BagReader(bag_path).open_bag()
        try:
            self.topics = self._select(topics)
            for name in self.topics:
                info = self.reader.topics[name]
                self._publishers[name] = node.create_publisher(
                    self._classes[name], self.remap.get(name, name),
                    publisher_qos(qos, info.offered_qos))
            if clock:
                from rosgraph_msgs.msg import Clock
                self._clock_pub = node.create_publisher(Clock, '/clock', clock_qos())
        except BaseException:
            self.close()
            raise

    def _select(self, topics: Optional[Sequence[str]]) -> List[str]:
        available = self.reader.topics
        if topics:
            missing = [t for t in topics if t not in available]
            if missing:
                raise bag.BagTopicError(
                    f'topic {missing[0]!r} is not in bag {self.reader.path}; its topics are: '
                    + (', '.join(sorted(available)) or 'none'))
            names = list(dict.fromkeys(topics))
        else:
            names = sorted(available)
        selected = []
        for name in names:
            cls = message_class(available[name].msgtype)
            if cls is None:
                text = (f'{name}: message type {available[name].msgtype} is not installed '
                        '(source its ROS package)')
                if topics:
                    raise bag.UnsupportedMessageError(text)
                LOG.warning('%s; not replayed', text)
                continue
            self._classes[name] = cls
            selected.append(name)
        if not selected:
            raise bag.BagError(f'nothing to replay from {self.reader.path}')
        return selected

    # ----------------------------------------------------------------------------- graph
    @property
    def publishers(self) -> Dict[str, object]:
        """The publishers by bag topic."""
        return dict(self._publishers)

    def wait_for_subscribers(self, count: int = 1, timeout: float = 10.0,
                             topics: Optional[Sequence[str]] = None) -> bool:
        """Wait until each of ``topics`` (default: all) has ``count`` subscribers."""
        names = list(topics) if topics else list(self._publishers)
        deadline = time.monotonic() + timeout
        while True:
            if all(self._publishers[n].get_subscription_count() >= count for n in names):
                return True
            if time.monotonic() >= deadline or self._stop.wait(0.02):
                return False

    def stop(self) -> None:
        """Make :meth:`play` return soon (from another thread)."""
        self._stop.set()

    # ------------------------------------------------------------------------------ play
    def play(self, on_publish: Optional[Callable[[str, int, object], None]] = None) -> int:
        """Play the bag (repeatedly with ``loop``) and return the messages published.

        ``on_publish(topic, bag_time_ns, message)`` is called after each publication
        (``message`` is the serialized bytes, or the rclpy message with ``restamp``).
        """
        total = 0
        while not self._stop.is_set():
            total += self._play_once(on_publish)
            if not self.loop:
                break
        return total

    def _play_once(self, on_publish) -> int:
        count = 0
        wall0 = None
        bag0 = None
        next_tick = 0.0
        self.last_clock_ns = None               # a new pass may start the clock again
        for message in self.reader.messages(self.topics):
            if wall0 is None:
                wall0, bag0 = time.monotonic(), message.timestamp
                self._publish_clock(bag0)
                next_tick = wall0 + self.clock_period
            due = wall0 + (message.timestamp - bag0) / 1e9 / self.rate
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                if self.clock and now >= next_tick:
                    sim = bag0 + int((now - wall0) * self.rate * 1e9)
                    self._publish_clock(min(sim, message.timestamp))
                    next_tick += self.clock_period * max(1, int((now - next_tick)
                                                                // self.clock_period) + 1)
                wake = min(due, next_tick) if self.clock else due
                if self._stop.wait(max(0.0, wake - time.monotonic())):
                    return count
            if self.clock:
                self._publish_clock(message.timestamp)
            payload = self._payload(message)
            self._publishers[message.topic].publish(payload)
            count += 1
            self.published[message.topic] = self.published.get(message.topic, 0) + 1
            if on_publish is not None:
                on_publish(message.topic, message.timestamp, payload)
            if self._stop.is_set():
                break
        return count

    def _payload(self, message: bag.BagMessage):
        if not self.restamp:
            return message.data
        from rclpy.serialization import deserialize_message
        msg = deserialize_message(message.data, self._classes[message.topic])
        if hasattr(msg, 'header'):
            msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_pub is None:
            return
        if self.last_clock_ns is not None and bag_ns < self.last_clock_ns:
            bag_ns = self.last_clock_ns          # never step back within one pass
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock
        sec, nanosec = divmod(int(bag_ns), 1_000_000_000)
        self._clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        self.last_clock_ns = int(bag_ns)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until reliable subscribers acknowledged everything published (or timeout).

        Destroying a reliable publisher right after its last message can lose that message
        (``ros2 bag play --wait-for-all-acked`` exists for this); :meth:`close` flushes.
        """
        from rclpy.duration import Duration
        deadline = time.monotonic() + timeout
        done = True
        for publisher in self._publishers.values():
            left = max(0.0, deadline - time.monotonic())
            try:
                done = publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))) \
                    and done
            except Exception:  # noqa: B902 - the context may be shut down already
                return False
        return done

    def close(self, flush_timeout: float = 2.0) -> None:
        """Flush (see :meth:`flush`), destroy the publishers and close the bag."""
        if self._publishers and flush_timeout > 0:
            self.flush(flush_timeout)
        for publisher in list(self._publishers.values()) + [self._clock_pub]:
            if publisher is not None:
                try:
                    self.node.destroy_publisher(publisher)
                except Exception:  # noqa: B902 - the node or context may be gone already
                    pass
        self._publishers.clear()
        self._clock_pub = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def __enter__(self) -> 'BagPlayer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""BagPlayer / lseg_replay: a bag replayed over real rclpy (loopback) like ``ros2 bag play``."""

import threading
import time

import numpy as np
import pytest

from lseg_ros.cli.replay import entry as lseg_replay
from lseg_ros.formats import bag
from lseg_ros.formats.sample_bag import (CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC,
                                         write_sample_bag)
from lseg_ros.ros.replay import (BagPlayer, clock_qos, iter_ros_messages, parse_remaps,
                                 publisher_qos)

pytestmark = pytest.mark.ros

FRAMES = 6
RATE_HZ = 10.0
TIMEOUT = 20.0


class Ros:
    """An rclpy context of its own with a listener node spinning in a thread."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.listener = rclpy.create_node(
            'replay_listener', context=self.context,
            parameter_overrides=[Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self.player_node = rclpy.create_node('replay_player', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.listener)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.lock = threading.Lock()
        self.received = {}

    def subscribe(self, msg_type, topic, qos):
        self.received.setdefault(topic, [])

        def store(msg):
            with self.lock:
                self.received[topic].append(msg)
        return self.listener.create_subscription(msg_type, topic, store, qos)

    def messages(self, topic):
        with self.lock:
            return list(self.received.get(topic, []))

    def wait_for(self, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.executor.shutdown()
        self.listener.destroy_node()
        self.player_node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp('replay') / 'sample'
    write_sample_bag(path, frames=FRAMES, rate_hz=RATE_HZ, height=24, width=32,
                     storage='mcap')
    return path


@pytest.fixture
def ros():
    node = Ros()
    yield node
    node.close()


def recorded(path, topic):
    """``[(bag time, header stamp ns, frame_id, data bytes)]`` of a topic, read by rclpy."""
    out = []
    for _, timestamp, msg in iter_ros_messages(path, [topic]):
        out.append((timestamp, msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
                    msg.header.frame_id, bytes(msg.data) if hasattr(msg, 'data') else None))
    return out


def stamp_ns(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_replay_publishes_stamps_data_and_clock_at_the_recorded_rate(sample, ros):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    ros.subscribe(Image, IMAGE_TOPIC, reliable)
    ros.subscribe(CompressedImage, COMPRESSED_TOPIC, reliable)
    ros.subscribe(CameraInfo, CAMERA_INFO_TOPIC, reliable)
    ros.subscribe(Clock, '/clock', clock_qos())
    rate = 2.0
    with BagPlayer(ros.player_node, sample, rate=rate, clock=True, clock_hz=100.0) as player:
        assert player.topics == sorted([IMAGE_TOPIC, COMPRESSED_TOPIC, CAMERA_INFO_TOPIC])
        assert player.wait_for_subscribers(1, timeout=TIMEOUT), 'no subscriber matched'
        start = time.monotonic()
        assert player.play() == 3 * FRAMES
        elapsed = time.monotonic() - start
        last_clock = player.last_clock_ns
    images = recorded(sample, IMAGE_TOPIC)
    duration = (images[-1][0] - recorded(sample, CAMERA_INFO_TOPIC)[0][0]) / 1e9
    assert elapsed >= 0.9 * duration / rate, 'played faster than the recorded timing'
    for topic in (IMAGE_TOPIC, COMPRESSED_TOPIC, CAMERA_INFO_TOPIC):
        assert ros.wait_for(lambda t=topic: len(ros.messages(t)) >= FRAMES), topic
    got = ros.messages(IMAGE_TOPIC)
    assert [stamp_ns(m) for m in got] == [r[1] for r in images]
    assert [bytes(m.data) for m in got] == [r[3] for r in images]
    assert {m.header.frame_id for m in got} == {'camera_optical_frame'}
    assert [stamp_ns(m) for m in ros.messages(COMPRESSED_TOPIC)] == \
        [r[1] for r in recorded(sample, COMPRESSED_TOPIC)]
    # /clock: bag time, never backwards, ends at the last message's bag time
    assert ros.wait_for(lambda: ros.messages('/clock'))
    clocks = [m.clock.sec * 10**9 + m.clock.nanosec for m in ros.messages('/clock')]
    first_bag_time = min(r[0] for t in (IMAGE_TOPIC, COMPRESSED_TOPIC, CAMERA_INFO_TOPIC)
                         for r in recorded(sample, t))
    assert clocks == sorted(clocks)
    assert first_bag_time <= clocks[0] and clocks[-1] <= last_clock
    assert last_clock == recorded(sample, COMPRESSED_TOPIC)[-1][0]
    assert len(clocks) >= FRAMES
    # a node with use_sim_time runs on the bag's clock
    assert ros.wait_for(lambda: ros.listener.get_clock().now().nanoseconds == clocks[-1])


def test_remap_qos_restamp_and_latched_topics(sample, ros, tmp_path):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    best_effort = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
    ros.subscribe(Image, '/replayed', best_effort)
    before = time.time_ns()
    with BagPlayer(ros.player_node, sample, topics=[IMAGE_TOPIC], rate=10.0,
                   qos='sensor_data', remap={IMAGE_TOPIC: '/replayed'}, restamp=True) as player:
        profile = player.publishers[IMAGE_TOPIC].qos_profile
        assert profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert player.wait_for_subscribers(1, timeout=TIMEOUT)
        player.play()
    assert ros.wait_for(lambda: len(ros.messages('/replayed')) >= FRAMES - 1)
    assert all(stamp_ns(m) >= before for m in ros.messages('/replayed'))    # restamped
    # a topic recorded reliable + transient local (segment_bag's /lseg/labels) is replayed
    # latched: a subscriber that comes after the message still gets it
    latched = tmp_path / 'latched'
    with bag.BagWriter(latched, 'sqlite3') as writer:
        writer.add_topic('/lseg/labels', bag.STRING, qos='latched')
        writer.write('/lseg/labels', 5, bag.string_message('{"labels": ["a"]}'))
    with BagPlayer(ros.player_node, latched) as player:
        profile = player.publishers['/lseg/labels'].qos_profile
        assert profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert player.play() == 1
        ros.subscribe(String, '/lseg/labels', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        assert ros.wait_for(lambda: ros.messages('/lseg/labels'))
        assert ros.messages('/lseg/labels')[0].data == '{"labels": ["a"]}'


def test_stop_from_another_thread_ends_a_looping_player(sample, ros):
    with BagPlayer(ros.player_node, sample, topics=[CAMERA_INFO_TOPIC], rate=1.0,
                   loop=True) as player:
        threading.Timer(0.3, player.stop).start()
        start = time.monotonic()
        player.play()
        assert time.monotonic() - start < 5.0


def test_publisher_qos_follows_ros2_bag_play():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    reliable = bag.offered_qos('reliable')
    best_effort = bag.offered_qos('sensor_data')
    latched = bag.offered_qos('latched')
    assert publisher_qos('recorded', [best_effort]).reliability == ReliabilityPolicy.BEST_EFFORT
    assert publisher_qos('recorded', [latched]).durability == DurabilityPolicy.TRANSIENT_LOCAL
    # nothing recorded, or publishers that disagreed: reliable, volatile, keep last 10
    for offered in ([], [reliable, best_effort]):
        profile = publisher_qos('recorded', offered)
        assert profile.reliability == ReliabilityPolicy.RELIABLE
        assert profile.durability == DurabilityPolicy.VOLATILE and profile.depth == 10
    assert publisher_qos('reliable', [best_effort]).reliability == ReliabilityPolicy.RELIABLE
    assert clock_qos().reliability == ReliabilityPolicy.BEST_EFFORT and clock_qos().depth == 1
    assert parse_remaps(['/a:=/b', ' /c := /d ']) == {'/a': '/b', '/c': '/d'}


def test_cli(sample, capsys):
    assert lseg_replay([str(sample), '--topics', CAMERA_INFO_TOPIC, '--rate', '20',
                        '--clock', '--remap', f'{CAMERA_INFO_TOPIC}:=/ci']) == 0
    out = capsys.readouterr().out
    assert f'{CAMERA_INFO_TOPIC} -> /ci' in out and f'published {FRAMES} messages' in out
    assert lseg_replay([str(sample), '--topics', '/nope']) == 1
    assert "topic '/nope' is not in bag" in capsys.readouterr().err
    assert lseg_replay([str(sample), '--rate', '0']) == 1
    assert lseg_replay([str(sample), '--remap', 'nonsense']) == 1


def test_iter_ros_messages_gives_rclpy_messages(sample):
    from sensor_msgs.msg import CompressedImage
    messages = list(iter_ros_messages(sample, [COMPRESSED_TOPIC]))
    assert len(messages) == FRAMES
    assert all(isinstance(m, CompressedImage) for _, _, m in messages)
    assert np.frombuffer(bytes(messages[0][2].data), np.uint8)[:2].tolist() == [0xFF, 0xD8]


# ------------------------------------------------------------------ through the /lseg node
@pytest.mark.parametrize('compressed', [False, True], ids=['raw', 'compressed'])
def test_bag_replayed_through_the_node_with_sim_time(sample, rn_checkpoint, compressed):
    """ros2 bag play --clock + use_sim_time + input_qos reliable: masks carry the bag stamps."""
    node_harness = pytest.importorskip('support.ros')
    pytest.importorskip('lseg_ros.ros.node')
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    topic = COMPRESSED_TOPIC if compressed else IMAGE_TOPIC
    remaps = ({'image/compressed': COMPRESSED_TOPIC} if compressed else {'image': IMAGE_TOPIC})
    remaps['camera_info'] = CAMERA_INFO_TOPIC
    proc = node_harness.NodeProcess(
        {'checkpoint': rn_checkpoint, 'input_size': 64, 'labels': 'a, b', 'device': 'cpu',
         'warmup': False, 'use_sim_time': True, 'input_qos': 'reliable',
         'compressed_input': compressed}, remaps=remaps)
    client = node_harness.RosClient('replay_node_test')
    try:
        client.subscribe(Image, '/lseg/mask')
        client.subscribe(DiagnosticArray, '/diagnostics')
        client.subscribe(String, '/lseg/labels', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        try:    # the labels are latched once the model is loaded: the node is ready
            client.wait_for(lambda: client.received('/lseg/labels'), 120)
        except TimeoutError:
            raise AssertionError('node did not start:\n' + proc.output())
        player_node = client.rclpy.create_node('replay_node_player', context=client.context)
        with BagPlayer(player_node, sample, topics=[topic, CAMERA_INFO_TOPIC],
                       clock=True) as player:
            assert player.wait_for_subscribers(1, TIMEOUT, topics=[topic]), proc.output()
            player.play()
        stamps = [r[1] for r in recorded(sample, topic)]
        bag_times = [r[0] for r in recorded(sample, topic)]
        # newest frame wins: the last frame is always segmented, maybe some before it
        try:
            client.wait_for(lambda: any(stamp_ns(m) == stamps[-1]
                                        for m in client.received('/lseg/mask')), 60)
        except TimeoutError:
            raise AssertionError('no mask of the last frame:\n' + proc.output())
        masks = client.received('/lseg/mask')
        assert {stamp_ns(m) for m in masks} <= set(stamps)
        assert all(m.header.frame_id == 'camera_optical_frame' and (m.height, m.width) == (24, 32)
                   for m in masks)
        # use_sim_time: the node's clock is the bag's (diagnostics are stamped with it)
        client.clear('/diagnostics')
        client.wait_for(lambda: client.received('/diagnostics'), 10)
        diag = client.received('/diagnostics')[-1]
        assert bag_times[0] <= stamp_ns(diag) <= bag_times[-1] + 10**9, stamp_ns(diag)
        player_node.destroy_node()
    finally:
        client.close()
        code = proc.stop()
    assert code == 0, proc.output()

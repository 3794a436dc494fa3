# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node with default settings keeps up with a camera, and stops cleanly.

Transport: every process here (this one through conftest, the node through
``node_process.start_node``) runs with the package's Fast DDS profile
(config/fastdds.xml: shared memory with a 64 MiB segment, UDPv4), as the launch file,
bench and demo do; discovery is limited to localhost (scripts/test.sh).
"""

import os
import signal
import threading
import time

import numpy as np
import pytest

from support.ros import NodeProcess, RosClient, stamp_of


pytestmark = pytest.mark.ros

ERROR_MARKS = ('ERROR', 'Failed to publish', 'Traceback', 'terminate called', 'Aborted')


def camera_frame(index: int, height: int = 480, width: int = 640):
    """Return a 640x480 rgb8 Image with a unique stamp."""
    from sensor_msgs.msg import Image
    rng = np.random.default_rng(index)
    data = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding='rgb8', is_bigendian=0, step=width * 3)
    msg.header.stamp = stamp_of(index)
    msg.header.frame_id = 'camera'
    msg.data = data.tobytes()
    return msg


@pytest.fixture
def client():
    ros = RosClient('camera_client')
    yield ros
    ros.close()


def start(checkpoint, name, **params):
    """Start lseg_node with the parameters file's defaults plus ``params``."""
    return NodeProcess(dict({'checkpoint': checkpoint}, **params), name=name,
                       remaps={'image': f'/{name}/camera/image_raw'})


def wait_ready(client, proc, name, timeout=120.0):
    """Wait for the latched ~/labels (the node is up)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    topic = f'/{name}/labels'
    client.subscribe(String, topic, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    try:
        client.wait_for(lambda: client.received(topic) or proc.proc.poll() is not None, timeout)
    except TimeoutError:
        raise AssertionError(proc.output())
    assert proc.proc.poll() is None, proc.output()


def camera(client, topic):
    """Return a best-effort publisher (a camera driver's QoS) matched with the node."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    publisher = client.node.create_publisher(Image, topic, qos_profile_sensor_data)
    client.wait_for(lambda: publisher.get_subscription_count() > 0, 30)
    return publisher


def stream(publisher, first, count, rate, stop=None):
    """Publish ``count`` 640x480 frames at ``rate`` Hz."""
    frames = [camera_frame(first + i) for i in range(min(count, 8))]
    next_time = time.monotonic()
    for i in range(count):
        if stop is not None and stop.is_set():
            break
        msg = frames[i % len(frames)]
        msg.header.stamp = stamp_of(first + i)
        publisher.publish(msg)
        next_time += 1.0 / rate
        time.sleep(max(0.0, next_time - time.monotonic()))


def test_default_settings_segment_every_frame_of_a_640x480_camera(rn_checkpoint, client):
    """Best-effort 640x480 rgb8 at a rate the model holds: >= 95 % of the frames segmented."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    name = 'lseg_cam'
    # Only the checkpoint and a small network input (so that a CPU holds the rate) differ
    # from config/lseg.yaml: device auto, input_qos sensor_data (best effort), warm-up on.
    proc = start(rn_checkpoint, name, input_size=64)
    try:
        wait_ready(client, proc, name)
        client.subscribe(Image, f'/{name}/mask',
                         QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        # One publisher throughout: the first frames of a new publisher can be sent before
        # the node's reader has matched it.
        publisher = camera(client, f'/{name}/camera/image_raw')
        stream(publisher, 0, 3, 2.0)                                # first-frame warm-up
        time.sleep(2.0)
        client.clear(f'/{name}/mask')
        count, rate = 40, 5.0
        stream(publisher, 100, count, rate)
        wanted = {(stamp_of(100 + i).sec, stamp_of(100 + i).nanosec) for i in range(count)}

        def segmented():
            return {(m.header.stamp.sec, m.header.stamp.nanosec)
                    for m in client.received(f'/{name}/mask')} & wanted
        try:
            client.wait_for(lambda: len(segmented()) == count, 10.0)
        except TimeoutError:
            pass
        got = len(segmented())
        assert got >= 0.95 * count, f'{got} of {count} frames segmented\n' + proc.output()
        masks = client.received(f'/{name}/mask')
        assert all((m.height, m.width) == (480, 640) for m in masks)
    finally:
        assert proc.stop() == 0, proc.output()
    output = proc.output()
    assert 'Fast DDS profile' in output and 'fastdds.xml' in output, output


@pytest.mark.parametrize('how', [signal.SIGINT, signal.SIGTERM])
def test_stop_while_streaming_is_clean(rn_checkpoint, client, how):
    """Ctrl-C / SIGTERM while frames are being segmented: exit 0 and no error lines."""
    from sensor_msgs.msg import Image
    name = f'lseg_stop_{how.name.lower()}'
    proc = start(rn_checkpoint, name, input_size=64, warmup=False)
    stop = threading.Event()
    try:
        wait_ready(client, proc, name)
        client.subscribe(Image, f'/{name}/mask')
        feeder = threading.Thread(target=stream, args=(
            camera(client, f'/{name}/camera/image_raw'), 0, 100000, 30.0, stop), daemon=True)
        feeder.start()
        client.wait_for(lambda: len(client.received(f'/{name}/mask')) >= 3, 60)
        os.killpg(proc.proc.pid, how)
        code = proc.wait_exit(30)
    finally:
        stop.set()
        if proc.proc.poll() is None:
            proc.stop()
    output = proc.output()
    assert code == 0, output
    assert not [mark for mark in ERROR_MARKS if mark in output], output


def test_ctrl_c_while_new_labels_are_embedded_exits_0(rn_checkpoint, client):
    """SIGINT while the label thread is inside the text encoder: bounded, exit 0, no abort."""
    name = 'lseg_busy_labels'
    proc = start(rn_checkpoint, name, input_size=64, warmup=False, device='cpu')
    try:
        wait_ready(client, proc, name)
        labels = ','.join(f'thing number {i}' for i in range(4000))
        results = client.set_parameters(f'/{name}', labels=labels)
        assert results[0].successful, results[0].reason
        time.sleep(1.0)                      # the label thread is now embedding 4000 labels
        start_stop = time.monotonic()
        os.killpg(proc.proc.pid, signal.SIGINT)
        code = proc.wait_exit(60)
        took = time.monotonic() - start_stop
    finally:
        if proc.proc.poll() is None:
            proc.stop()
    output = proc.output()
    assert code == 0, output
    assert not [mark for mark in ERROR_MARKS if mark in output], output
    if 'text embeddings of new labels are being computed' not in output:
        pytest.skip(f'the labels were embedded before the signal ({took:.1f} s to exit)')

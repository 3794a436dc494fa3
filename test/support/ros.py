# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start lseg_node the way the launch file does, and talk to it over real ROS 2 (loopback)."""

import json
import os
from pathlib import Path
import threading
import time
from typing import Callable, Dict, List

import numpy as np

from lseg_ros.ros.node_process import start_node, stop_node


class NodeProcess:
    """An lseg_node subprocess with its output collected in a file."""

    def __init__(self, params, remaps=None, log_path=None, **kwargs):
        self.log_path = Path(log_path or f'/tmp/lseg_node_{os.getpid()}_{time.time_ns()}.log')
        self.proc = start_node(params, remaps, str(self.log_path), **kwargs)

    def output(self) -> str:
        """Return everything the node printed so far."""
        return self.log_path.read_text()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end; return its exit code."""
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int:
        """SIGINT (like Ctrl-C / launch), then wait; returns the exit code."""
        return stop_node(self.proc)


class RosClient:
    """An rclpy node in the test process, spinning in a background thread."""

    def __init__(self, name='lseg_test_client'):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        # One thread, as in the node: two make callbacks fight the test's thread for the GIL.
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.lock = threading.Lock()
        self.messages: Dict[str, list] = {}

    def subscribe(self, msg_type, topic: str, qos=None):
        """Collect every message of ``topic``; returns the subscription."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.messages.setdefault(topic, [])

        def store(msg):
            with self.lock:
                self.messages[topic].append(msg)
        return self.node.create_subscription(msg_type, topic, store, qos)

    def received(self, topic: str) -> list:
        """Return a copy of the messages of ``topic`` so far."""
        with self.lock:
            return list(self.messages.get(topic, []))

    def clear(self, topic: str = None) -> None:
        """Forget collected messages (of one topic or all)."""
        with self.lock:
            for key in ([topic] if topic else list(self.messages)):
                self.messages[key] = []

    def wait_for(self, predicate: Callable[[], object], timeout: float = 30.0,
                 poll: float = 0.05):
        """Wait until ``predicate()`` is truthy; returns its value (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f'condition not met within {timeout} s')

    def set_parameters(self, node_name: str, **values):
        """Set parameters through <node>/set_parameters, the service ``ros2 param set`` calls."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        client = self.node.create_client(SetParameters, f'{node_name}/set_parameters')
        try:
            assert client.wait_for_service(timeout_sec=20.0), 'no set_parameters service'
            request = SetParameters.Request(parameters=[
                Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
            future = client.call_async(request)
            self.wait_for(future.done, 20.0)
            return future.result().results
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        """Stop spinning and shut this client's context down.

        The spin thread is joined first, so the node (and its DDS participant) is destroyed
        here and not by whichever thread drops the last reference to it.
        """
        self.executor.shutdown()
        self.thread.join(timeout=10.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def stamp_of(index: int):
    """Return a unique header stamp for frame ``index``."""
    from builtin_interfaces.msg import Time
    return Time(sec=1000 + index, nanosec=index * 1000)


def image_msg(rgb: np.ndarray, encoding: str, index: int, frame_id: str = 'camera'):
    """Build a sensor_msgs/Image of ``encoding`` from an RGB frame (test encoder)."""
    import cv2
    from sensor_msgs.msg import Image
    h, w = rgb.shape[:2]
    convert = {
        'rgb8': lambda x: x, 'bgr8': lambda x: x[:, :, ::-1],
        'rgba8': lambda x: np.dstack([x, np.full((h, w), 255, np.uint8)]),
        'bgra8': lambda x: np.dstack([x[:, :, ::-1], np.full((h, w), 255, np.uint8)]),
        'mono8': lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY),
        'mono16': lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257,
        'yuv422': lambda x: np.zeros((h, w, 2), np.uint8) + 128,
        'yuv422_yuy2': lambda x: np.zeros((h, w, 2), np.uint8) + 128,
        'bayer_rggb8': lambda x: x[:, :, 1].copy(),
    }
    data = np.ascontiguousarray(convert[encoding](rgb))
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=data.strides[0])
    msg.header.stamp = stamp_of(index)
    msg.header.frame_id = frame_id
    msg.data = data.tobytes()
    return msg


def result_infos(client: RosClient, topic: str) -> List[dict]:
    """Decode the JSON ``~/result_info`` messages received so far."""
    return [json.loads(m.data) for m in client.received(topic)]

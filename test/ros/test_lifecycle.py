# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The managed node through the lifecycle services (what ``ros2 lifecycle set`` calls).

The node runs in this process with its own rclpy context (its own DDS participant), so the
test can check that the model is gone after cleanup; every transition and frame goes
through ROS 2 from a client in another context.  A second test runs the executable.
"""

import gc
import os
import signal
import threading
import time
import uuid
import weakref

import pytest

from lseg_ros.core.samples import sample_frame
from support.ros import image_msg, NodeProcess, RosClient, stamp_of

pytestmark = pytest.mark.ros

NAME = 'lseg_managed'          # plus a suffix per test (see the managed fixture)
IMAGE = '/managed/image'


class Lifecycle:
    """Calls /<node>/change_state and /<node>/get_state like ``ros2 lifecycle``."""

    def __init__(self, client: RosClient, node: str):
        from lifecycle_msgs.srv import ChangeState, GetState
        self.client = client
        self.change = client.node.create_client(ChangeState, f'{node}/change_state')
        self.get = client.node.create_client(GetState, f'{node}/get_state')
        assert self.change.wait_for_service(timeout_sec=20.0), 'no change_state service'
        assert self.get.wait_for_service(timeout_sec=20.0), 'no get_state service'

    def _call(self, service, request, timeout=120.0):
        future = service.call_async(request)
        self.client.wait_for(future.done, timeout)
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, transition: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request()
        request.transition.label = transition          # as `ros2 lifecycle set <label>`
        request.transition.id = {
            'configure': Transition.TRANSITION_CONFIGURE,
            'activate': Transition.TRANSITION_ACTIVATE,
            'deactivate': Transition.TRANSITION_DEACTIVATE,
            'cleanup': Transition.TRANSITION_CLEANUP,
            'shutdown': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}[transition]
        return self._call(self.change, request).success


@pytest.fixture
def client():
    ros = RosClient('lifecycle_client')
    yield ros
    ros.close()


@pytest.fixture
def managed(rn_checkpoint):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from lseg_ros.ros.lifecycle_node import LsegLifecycleNode
    # A name of its own per test: the previous test's node, already destroyed, can still be
    # in the client's discovery data, and its stale change_state service would satisfy
    # wait_for_service before this node's service is matched (the request is then lost).
    name = f'{NAME}_{uuid.uuid4().hex[:8]}'
    context = rclpy.context.Context()
    rclpy.init(context=context)
    settings = {'checkpoint': rn_checkpoint, 'input_size': 64, 'labels': 'a, b, c',
                'device': 'cpu', 'warmup': False}
    node = LsegLifecycleNode(
        context=context, cli_args=['--ros-args', '-r', f'__node:={name}', '-r',
                                   f'image:={IMAGE}'],
        parameter_overrides=[Parameter(k, value=v) for k, v in settings.items()])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    node.shutdown()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def subscribers(client, publisher, expected, settle=1.0):
    """Return the image topic's subscription count once it is ``expected`` (or after 20 s)."""
    try:
        client.wait_for(lambda: publisher.get_subscription_count() == expected, 20)
    except TimeoutError:
        pass
    time.sleep(settle)                       # and it stays so
    return publisher.get_subscription_count()


def publish_until_mask(client, publisher, name, index, timeout=30.0):
    msg = image_msg(sample_frame(index, 48, 64), 'rgb8', index)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        if [m for m in client.received(f'/{name}/mask') if m.header.stamp == stamp_of(index)]:
            return True
        time.sleep(0.1)
    return False


def test_transitions_load_run_stop_and_release_the_model(managed, client):
    from sensor_msgs.msg import Image
    name = managed.get_name()
    lifecycle = Lifecycle(client, f'/{name}')
    publisher = client.node.create_publisher(Image, IMAGE, 10)
    client.subscribe(Image, f'/{name}/mask')
    assert lifecycle.state() == 'unconfigured'
    assert managed.pipeline is None
    assert subscribers(client, publisher, 0) == 0

    assert lifecycle.transition('configure')
    assert lifecycle.state() == 'inactive'
    assert managed.pipeline is not None
    model = weakref.ref(managed.pipeline.backend)
    assert subscribers(client, publisher, 0) == 0            # no subscription before activate

    assert lifecycle.transition('activate') and lifecycle.state() == 'active'
    assert subscribers(client, publisher, 1, settle=0.0) == 1
    assert publish_until_mask(client, publisher, name, 1)

    assert lifecycle.transition('deactivate') and lifecycle.state() == 'inactive'
    assert subscribers(client, publisher, 0) == 0
    assert managed.pipeline is not None                      # still loaded

    assert lifecycle.transition('cleanup') and lifecycle.state() == 'unconfigured'
    assert managed.pipeline is None
    gc.collect()
    assert model() is None, 'the image encoder is still referenced after cleanup'
    assert subscribers(client, publisher, 0) == 0

    # a parameter set while unconfigured is used by the next configure
    assert client.set_parameters(f'/{name}', labels='dog, grass')[0].successful
    assert lifecycle.transition('configure') and lifecycle.transition('activate')
    assert managed.pipeline.labels.labels == ('dog', 'grass')
    assert publish_until_mask(client, publisher, name, 2)
    assert lifecycle.transition('deactivate') and lifecycle.transition('cleanup')
    assert lifecycle.transition('shutdown') and lifecycle.state() == 'finalized'
    assert managed.finished


def test_a_failed_configure_stays_unconfigured(managed, client):
    lifecycle = Lifecycle(client, f'/{managed.get_name()}')
    managed.settings['checkpoint'] = '/does/not/exist.ckpt'
    assert not lifecycle.transition('configure')
    assert lifecycle.state() == 'unconfigured' and managed.pipeline is None


def test_the_executable_exits_on_the_shutdown_transition(rn_checkpoint, client):
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'device': 'cpu'}, name='lseg_exe',
                       executable='lseg_lifecycle_node')
    try:
        lifecycle = Lifecycle(client, '/lseg_exe')
        assert lifecycle.state() == 'unconfigured'
        assert lifecycle.transition('shutdown')
        assert proc.wait_exit(20) == 0, proc.output()
    finally:
        proc.stop()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_the_executable_exits_on_ctrl_c_and_sigterm(rn_checkpoint, client, signum):
    """Ctrl-C (launch) and SIGTERM end the managed node, whatever executor spins it."""
    name = f'lseg_sig_{uuid.uuid4().hex[:8]}'
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'device': 'cpu'}, name=name,
                       executable='lseg_lifecycle_node')
    try:
        lifecycle = Lifecycle(client, f'/{name}')
        assert lifecycle.state() == 'unconfigured'
        os.killpg(proc.proc.pid, signum)
        assert proc.wait_exit(20) == 0, proc.output()
        assert 'executor: ' in proc.output()
    finally:
        proc.stop()


def test_cleanup_keeps_the_model_while_a_deactivated_frame_worker_is_still_inside_it(
        monkeypatch):
    """A frame worker that outlived deactivate's join must not lose its model to cleanup."""
    from types import SimpleNamespace

    import torch

    from lseg_ros.ros import node as node_module
    from lseg_ros.ros.workers import FRAME_THREAD
    monkeypatch.setattr(node_module, 'SHUTDOWN_WAIT_S', 0.1)
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name=FRAME_THREAD, daemon=True)
    worker.start()
    closed = []
    runtime = SimpleNamespace(
        cameras={}, _timer=None, slots=None, label_worker=None, _lingering=[],
        frame_worker=SimpleNamespace(thread=worker), pub_labels=None, pub_embeddings=None,
        pub_label_info=None, pub_diagnostics=None,
        pipeline=SimpleNamespace(device=torch.device('cpu'),
                                 backend=SimpleNamespace(close=lambda: closed.append(1))))
    runtime._join = lambda threads: node_module.LsegRuntime._join(runtime, threads)
    busy = node_module.LsegRuntime._deactivate(runtime)
    assert busy == [node_module.BUSY[FRAME_THREAD]]
    busy = node_module.LsegRuntime._cleanup(runtime)
    assert busy == [node_module.BUSY[FRAME_THREAD]]
    assert not closed and runtime.pipeline is not None        # kept for the busy worker
    release.set()
    worker.join(5)
    assert node_module.LsegRuntime._cleanup(runtime) == []
    assert closed == [1] and runtime.pipeline is None          # released once it is done

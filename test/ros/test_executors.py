# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The executor that spins the node: rclpy's events executor where rclpy has one."""

import io
import sys
import threading

import pytest

from lseg_ros.ros import executors
from lseg_ros.ros.executors import executor_name, make_executor, spin_until_shutdown

pytestmark = pytest.mark.ros

HAS_EVENTS = executors.events_executor_class() is not None


@pytest.fixture
def real_stderr(monkeypatch):
    """Give a stderr with a file number (the events executor enables faulthandler)."""
    monkeypatch.setattr(sys, 'stderr', sys.__stderr__)


@pytest.fixture
def context():
    """Return an initialised rclpy context of the test's own; shut down afterwards."""
    import rclpy
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.mark.skipif(not HAS_EVENTS, reason='rclpy has no EventsExecutor (before Kilted)')
def test_auto_is_the_events_executor_where_rclpy_has_one(real_stderr, context):
    assert executor_name(make_executor('auto', context)) == 'events'
    assert executor_name(make_executor('single', context)) == 'single'
    assert executor_name(make_executor('multi', context)) == 'multi'


def test_without_an_events_executor_auto_is_the_single_one(monkeypatch, context):
    monkeypatch.setattr(executors, 'events_executor_class', lambda: None)
    assert executor_name(make_executor('auto', context)) == 'single'
    with pytest.raises(ValueError, match='Kilted'):
        make_executor('events', context)
    with pytest.raises(ValueError, match='one of auto, events, single, multi'):
        make_executor('fast', context)


def test_a_stderr_without_a_file_number_falls_back_to_the_single_executor(monkeypatch,
                                                                          context):
    def events(context=None):
        raise io.UnsupportedOperation('fileno')
    monkeypatch.setattr(executors, 'events_executor_class', lambda: events)
    assert executor_name(make_executor('auto', context)) == 'single'
    with pytest.raises(io.UnsupportedOperation):
        make_executor('events', context)


@pytest.mark.parametrize('kind', ['events', 'single'])
def test_spinning_runs_raw_subscriptions_and_stops_when_asked(real_stderr, context, kind):
    """Spin_until_shutdown runs callbacks (EventsExecutor.spin() of rclpy 9.1.2 ran none)."""
    if kind == 'events' and not HAS_EVENTS:
        pytest.skip('rclpy has no EventsExecutor (before Kilted)')
    import rclpy
    from std_msgs.msg import String
    node = rclpy.create_node(f'lseg_test_executor_{kind}', context=context)
    got = threading.Event()
    node.create_subscription(String, f'/lseg_test_executor_{kind}', lambda raw: got.set(), 10,
                             raw=True)
    publisher = node.create_publisher(String, f'/lseg_test_executor_{kind}', 10)
    executor = make_executor(kind, context=context)
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=spin_until_shutdown, args=(executor, stop, context))
    spinner.start()
    try:
        for _ in range(50):
            publisher.publish(String(data='hello'))
            if got.wait(0.1):
                break
        assert got.is_set()
    finally:
        stop.set()
        spinner.join(5.0)
        executor.shutdown()
        node.destroy_node()
    assert not spinner.is_alive()
